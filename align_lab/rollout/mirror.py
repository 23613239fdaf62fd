"""A rollout's decoder: decode.py's step into a KV cache allocated once (`CacheDecoder`), on the model's
decoder as plain objects (`mirrored`), one rollout long: its very weights, or oneDNN's packed copies of
them (rollout.decode_matmul=packed), the linears that read one input packed as one (`fused`)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import Tensor

from align_lab.models.lora import causal_lm
from align_lab.rollout.decode import decode_step
from align_lab.rollout.onednn import packed, packs


def mirrored(model, rows: int | None = None) -> SimpleNamespace:
    """`model`'s decoder as plain objects holding its very tensors (no copy), with the attributes
    decode_step reads: it reads weights hundreds of times a token, and nn.Module's attribute lookup
    (parameters and buffers go through `__getattr__`) cost a tiny policy's decode step about a fifth of
    its time. A LoRA linear stays its module (`_lora` reads its adapters). Valid while the weights are
    these tensors: one rollout (`CacheDecoder` makes one a rollout). rows: each plain linear
    also holds its weight `packed` for that many rows (decode_matmul=packed; None: not packed), q, k and
    v one packed weight (`self_attn.qkv`), gate and up another (`mlp.gate_up`) where `fused` can."""
    lm = causal_lm(model)
    base = lm.model

    copies = []  # the packed copies made: none, and the step multiplies (and attends) as the forward

    def linear(m):
        if hasattr(m, "base_layer"):
            return m
        copy = packed(m.weight, rows) if rows else None
        if copy is not None:
            copies.append(copy)
        return SimpleNamespace(weight=m.weight, bias=m.bias, packed=copy)

    def norm(m):
        return SimpleNamespace(weight=m.weight, variance_epsilon=m.variance_epsilon)

    def group(owner, names: tuple, key: str) -> dict:
        """`owner`'s linears `names` as one packed matmul (`key`: `fused`), their own entries None; else
        `key` None and each linear its own entry."""
        parts = tuple(getattr(owner, name) for name in names)
        together = fused(parts, rows) if rows else None
        if together is not None:
            copies.append(together)
        return {
            key: together,
            **{n: None if together else linear(p) for n, p in zip(names, parts, strict=True)},
        }

    def layer(m):
        a, mlp = m.self_attn, m.mlp
        attn = {**group(a, ("q_proj", "k_proj", "v_proj"), "qkv"), "o_proj": linear(a.o_proj)}
        ffn = {**group(mlp, ("gate_proj", "up_proj"), "gate_up"), "down_proj": linear(mlp.down_proj)}
        return SimpleNamespace(
            self_attn=SimpleNamespace(**attn, head_dim=a.head_dim, scaling=a.scaling),
            mlp=SimpleNamespace(**ffn),
            input_layernorm=norm(m.input_layernorm),
            post_attention_layernorm=norm(m.post_attention_layernorm),
        )

    rotary = base.rotary_emb
    body = SimpleNamespace(
        embed_tokens=SimpleNamespace(weight=base.embed_tokens.weight),
        rotary_emb=SimpleNamespace(inv_freq=rotary.inv_freq, attention_scaling=rotary.attention_scaling),
        layers=[layer(m) for m in base.layers],
        norm=norm(base.norm),
    )
    head = lm.lm_head
    lm_head = head if hasattr(head, "base_layer") else linear(head)
    return SimpleNamespace(model=body, lm_head=lm_head, exact=not copies)  # exact: decode._attention


def fused(linears: tuple, rows: int) -> SimpleNamespace | None:
    """Plain linears that read the same input as one oneDNN matmul on their weights stacked and packed
    for `rows` rows (decode_matmul=packed; decode._in_one): q, k and v, or gate and up, one weight read
    a step instead of three or two (SmolLM2's float32 decode step about 1 ms of 20 faster on the EPYC
    Zen 5: docs/rollout.md item 9). oneDNN sums each output over the inputs in the same order whatever
    the weight's other rows: the outputs are the separate matmuls' bit for bit there
    (tests/unit/rollout/test_decode_packed.py). None (each multiplied alone) where one is a LoRA linear,
    where only some have a bias, or without packed kernels."""
    if any(hasattr(m, "base_layer") for m in linears) or not packs(linears[0].weight.dtype):
        return None
    biases = [m.bias for m in linears]
    if any(b is None for b in biases) and not all(b is None for b in biases):
        return None
    weight = packed(torch.cat([m.weight.detach() for m in linears]), rows)
    if weight is None:
        return None
    bias = None if biases[0] is None else torch.cat([b.detach() for b in biases])
    return SimpleNamespace(packed=weight, bias=bias, sizes=[m.weight.shape[0] for m in linears])


class CacheDecoder:
    """decode.py's step into a KV cache allocated once (`preallocate`), for prompts of P positions:
    `step(tokens, position, t, attn)` feeds the t-th sampled tokens and returns the next logits;
    `keep(rows)` drops every other row from the cache (the rows the next steps compute). left: the
    step's matmuls as W @ h^T (rollout.decode_matmul=fast); packed_rows: oneDNN's (=packed), or None."""

    def __init__(self, model, kv: list, P: int, left: bool = False, packed_rows: int | None = None) -> None:
        self.model, self.kv, self.P, self.left = mirrored(model, packed_rows), kv, P, left  # plain

    def __call__(self, tokens: Tensor, pos: Tensor, t: int, attn: Tensor | None) -> Tensor:
        return decode_step(self.model, tokens, pos, self.kv, self.P + t, attn, self.left)

    def keep(self, rows: Tensor) -> None:
        for i, (keys, values) in enumerate(self.kv):  # layer by layer: one layer's copy at a time
            self.kv[i] = (keys[rows], values[rows])
