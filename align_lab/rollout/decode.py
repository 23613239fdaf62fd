"""One decoding step of a Llama or Qwen2 causal LM written with torch functions on the model's own
weights: the same operations in the same order as the transformers modules (SDPA attention), without
their per-module overhead, which dominates a small model's decoding time on CPU. Other model classes
and configurations decode with the model's forward (sampling.py checks `fast_decode_supported`)."""

from __future__ import annotations

import collections
import os
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import Tensor

from align_lab.models.lora import causal_lm
from align_lab.models.sequences import is_partitioned
from align_lab.rollout.onednn import packed_linear


def fast_decode_supported(model) -> bool:
    """True for the configurations decode_step reproduces exactly (tested against the model's forward)."""
    cfg = model.config
    rope = getattr(cfg, "rope_parameters", None) or {}
    return (
        _own_weights(model)
        and cfg.model_type in ("llama", "qwen2")
        and getattr(cfg, "_attn_implementation", None) == "sdpa"
        and cfg.hidden_act == "silu"
        and rope.get("rope_type", "default") == "default"
        and not getattr(cfg, "use_sliding_window", False)
        and getattr(cfg, "pretraining_tp", 1) == 1
    )


def _own_weights(model) -> bool:
    """The transformers model (inside a peft wrapper: `causal_lm`), its weights whole: every module that
    wraps another (holds a `base_layer`) a plain LoRA linear (`_plain_lora`), and nothing partitioned
    (DeepSpeed ZeRO-3 parameters hold a `ds_tensor`); other adapters only their own forward knows."""
    inner = causal_lm(model)
    return (
        hasattr(getattr(inner, "model", None), "embed_tokens")
        and all(_plain_lora(m) for m in inner.modules() if hasattr(m, "base_layer"))
        and not is_partitioned(model)
    )


def _plain_lora(module) -> bool:
    """A peft LoRA linear whose forward is base(x) + B(A(x)) x scaling per active adapter (`_lora`):
    adapters on, not merged into the base, no dropout, no variant (DoRA and the like)."""
    return (
        isinstance(getattr(module, "base_layer", None), torch.nn.Linear)
        and hasattr(module, "lora_A")
        and not module.merged
        and not module.disable_adapters
        and not getattr(module, "lora_variant", None)
        and not any(getattr(module, "use_dora", {}).values())
        and all(isinstance(d, torch.nn.Identity) for d in module.lora_dropout.values())
    )


def _lora(layer, x: Tensor, left: bool) -> Tensor:
    """A plain LoRA linear's forward (peft's lora.Linear.forward, the same operations in its order):
    the base layer (`_linear`), then each active adapter's B(A(x)) x scaling added."""
    y = _linear(layer.base_layer, x, left)
    dtype = y.dtype
    for name in layer.active_adapters:
        if name in layer.lora_A:
            a, b = layer.lora_A[name].weight, layer.lora_B[name].weight
            h = x if x.dtype == a.dtype else x.to(a.dtype)
            y = y + F.linear(F.linear(h, a), b) * layer.scaling[name]
    return y.to(dtype)


def _rms_norm(norm, x: Tensor) -> Tensor:
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * h.to(x.dtype)


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


ALIGNMENT = 64  # bytes: where c10's CPU allocator starts every tensor it allocates


def hidden_size(model) -> int | None:
    """The hidden size of `model` (a transformers model, a peft wrapper's included), None if it has none."""
    return getattr(getattr(causal_lm(model), "config", None), "hidden_size", None)


def align_weights(model) -> int:
    """Moves every CPU parameter and buffer that does not start on an ALIGNMENT-byte boundary, and is
    the one tensor of its storage, into storage of its own (the same values and Parameter objects: a
    parameter shared by two modules, such as tied embeddings, is one and stays one); returns how many
    moved. W @ h^T's last bits depend on where W lies (on the AVX2 EPYC MKL takes another path for a
    weight 4-12 bytes off a 16-byte boundary, as a view into a loaded safetensors file is), so
    decode_matmul=fast aligns first: a resumed run, an async rollout's fresh copy and the live policy
    then draw the same tokens. A tensor that shares its storage (a view into a flat buffer that a
    library updates, such as DeepSpeed ZeRO-1/2's) stays: moving it would cut it off from the buffer,
    and its place in the buffer is the same in every copy of the model."""
    tensors = [*model.parameters(), *model.buffers()]
    viewers = collections.Counter(t.untyped_storage().data_ptr() for t in tensors)
    moved = 0
    with torch.no_grad():
        for t in tensors:
            storage = t.untyped_storage()
            alone = viewers[storage.data_ptr()] == 1 and storage.nbytes() == t.numel() * t.element_size()
            if t.device.type == "cpu" and t.data_ptr() % ALIGNMENT and alone:
                t.data = t.data.clone(memory_format=torch.contiguous_format)
                moved += 1
    return moved


def _linear(layer, x: Tensor, left: bool = False) -> Tensor:
    """layer(x) for x (..., in). left: as W @ x^T, the weights the matmul's many-rows operand, where
    F.linear makes them its few-columns one: the same products summed in another order (other last
    bits), and on the AVX2 EPYC at 8 rows the 30 layers' matmuls 1.2x and the LM head's 2.3x faster
    (benchmarks/RESULTS.md, decode_kernels). Its bits also depend on the weights' address (MKL takes
    another path for a matrix not 16-byte aligned, as the toy policy from the stage cache is), which
    F.linear's do not: `prefill` aligns the weights first (`align_weights`; docs/rollout.md, item 7)."""
    if hasattr(layer, "base_layer"):  # a LoRA linear (fast_decode_supported admits plain ones only)
        return _lora(layer, x, left)
    if getattr(layer, "packed", None) is not None:  # decode_matmul=packed (onednn.py)
        return packed_linear(x, layer.packed, layer.bias)
    if not left:
        return F.linear(x, layer.weight, layer.bias)
    y = torch.mm(layer.weight, x.reshape(-1, x.shape[-1]).t()).t().reshape(*x.shape[:-1], -1)
    return y if layer.bias is None else y + layer.bias


HEAD_ROWS = 512  # vocabulary rows per matmul of the decode step's LM head
_HEAD_CHUNKS_EXACT: dict[tuple, bool] = {}  # (x shape, weight shape, dtype, threads) -> chunks exact here


def _lm_head(head, x: Tensor, left: bool = False) -> Tensor:
    """head(x), (B, 1, V), as HEAD_ROWS-row matmuls where that gives the bits of one matmul (left: one
    W @ x^T, `_linear`'s, contiguous for the sampler's reductions over V).

    At decode shapes (B rows of a few) MKL's one matmul over a 49,152 x 576 head reads its weights at
    about half the speed of 512-row pieces (aed8269:benchmarks/RESULTS.md, 2026-11-23). Whether the pieces sum
    in the same order is the BLAS library's choice, so it is checked here, once per shape and thread
    count, on the first call (which returns the one matmul); otherwise the one matmul is kept. On a GPU
    the one matmul is the fast one (96 pieces are 96 kernel launches a token)."""
    if hasattr(head, "base_layer"):  # LoRA on the LM head: its own forward's order, in one piece
        return _lora(head, x, left).contiguous()
    w = head.weight
    if left or getattr(head, "packed", None) is not None:
        return _linear(head, x, left=True).contiguous()
    if head.bias is not None or w.shape[0] <= HEAD_ROWS or w.device.type != "cpu":
        return F.linear(x, w, head.bias)
    key = (tuple(x.shape), tuple(w.shape), w.dtype, torch.get_num_threads())
    exact = _HEAD_CHUNKS_EXACT.get(key)
    if exact is None:
        whole = F.linear(x, w)  # (B, 1, V)
        _HEAD_CHUNKS_EXACT[key] = torch.equal(_in_chunks(x, w), whole)
        return whole
    return _in_chunks(x, w) if exact else F.linear(x, w)


def _in_chunks(x: Tensor, w: Tensor) -> Tensor:
    return torch.cat([F.linear(x, rows) for rows in w.split(HEAD_ROWS)], dim=-1)  # (B, 1, V)


def _attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, exact: bool = True
) -> Tensor:
    """One query token's attention, (B, H, 1, D), for grouped-query attention (H query heads over H_kv
    key/value heads). exact: as transformers' sdpa_attention_forward computes it: with no mask, SDPA's own
    enable_gqa; with a mask, the H / H_kv query heads of a key/value head packed as query positions.
    Otherwise (decode_matmul=packed's step, not the forward's bits anyway; `fast` attends as the forward)
    on a CPU the faster way for the dtype, mask or not: float32 enable_gqa, 16-bit the heads packed.
    torch's CPU SDPA with enable_gqa in bfloat16 took 290-430 us a call at SmolLM2's decode shapes (8
    rows, 70-127 positions) against 61-80 packed, the same bits; float32 50-68 against 72-87 (EPYC Zen 5,
    2026-12-05; measured there only)."""
    B, H, _, D = q.shape
    n_rep = H // k.shape[1]
    if n_rep == 1:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    if exact or q.device.type != "cpu":
        force = os.environ.get("TRANSFORMERS_SDPA_FORCE_GQA", "0") == "1"
        gqa = force or (mask is None and D == v.shape[-1] <= 256)
    else:
        gqa = q.dtype == torch.float32
    if gqa:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
    packed = q.reshape(B, H // n_rep, n_rep, D)  # (B, H_kv, n_rep, D)
    return F.scaled_dot_product_attention(packed, k, v, attn_mask=mask, scale=scale).reshape(B, H, 1, D)


def preallocate(prefill: list[tuple[Tensor, Tensor]], n: int, length: int) -> list[tuple[Tensor, Tensor]]:
    """Per layer (keys, values), each (B, H_kv, length, D): the prefill's (B/n, H_kv, P, D) repeated for
    the n samples of each prompt (contiguous rows) in positions :P; decode_step writes the rest in place."""
    kv = []
    for keys, values in prefill:
        rows, H, P, D = keys.shape
        k = keys.new_empty(rows * n, H, length, D)  # (B, H_kv, length, D)
        v = values.new_empty(rows * n, H, length, D)  # (B, H_kv, length, D)
        k.view(rows, n, H, length, D)[:, :, :, :P] = keys[:, None]
        v.view(rows, n, H, length, D)[:, :, :, :P] = values[:, None]
        kv.append((k, v))
    return kv


def _in_one(together: SimpleNamespace | None, linears: tuple, x: Tensor, left: bool) -> list[Tensor]:
    """Each of `linears` applied to x: one matmul where they are `fused` (`together`), else one each."""
    if together:
        return packed_linear(x, together.packed, together.bias).split(together.sizes, dim=-1)
    return [_linear(p, x, left) for p in linears]


def decode_step(
    model, tokens: Tensor, position: Tensor, kv: list, filled: int, attn: Tensor | None, left: bool = False
):
    """Next-token logits (B, V) for one new token per row; writes its keys/values into kv at `filled`.
    left: every matmul as W @ h^T (`_linear`; decode_matmul=fast), not bit for bit the forward's.
    model: the transformers model, or its `mirrored` decoder (whose `fused` linears it multiplies as one).

    Args:
        tokens: (B,) the last sampled tokens; position: (B, 1) their position ids.
        kv: per layer (keys, values), each (B, H_kv, L_max, D) (`preallocate`), positions < filled set.
        attn: (B, filled+1) 1 = attend, or None.
    """
    model = causal_lm(model)  # a peft wrapper's transformers model, its LoRA layers in place
    exact = getattr(model, "exact", True)  # attends as the forward unless `mirrored` packed its weights
    base = model.model
    B, L = tokens.shape[0], filled + 1
    x = F.embedding(tokens[:, None], base.embed_tokens.weight)  # (B, 1, d)
    rotary = base.rotary_emb
    freqs = position[..., None].float() * rotary.inv_freq.float()  # (B, 1, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (B, 1, D)
    cos = (emb.cos() * rotary.attention_scaling).to(x.dtype)[:, None]  # (B, 1, 1, D)
    sin = (emb.sin() * rotary.attention_scaling).to(x.dtype)[:, None]  # (B, 1, 1, D)
    mask = attn.bool()[:, None, None, :] if attn is not None else None  # (B, 1, 1, L)
    for layer, (keys, values) in zip(base.layers, kv, strict=True):
        a = layer.self_attn
        h = _rms_norm(layer.input_layernorm, x)  # (B, 1, d)
        q, k, v = (
            y.view(B, 1, -1, a.head_dim).transpose(1, 2)
            for y in _in_one(getattr(a, "qkv", None), (a.q_proj, a.k_proj, a.v_proj), h, left)
        )  # (B, H, 1, D), (B, H_kv, 1, D) x 2
        q = q * cos + _rotate_half(q) * sin  # (B, H, 1, D)
        keys[:, :, filled:L] = k * cos + _rotate_half(k) * sin
        values[:, :, filled:L] = v
        o = _attention(q, keys[:, :, :L], values[:, :, :L], mask, a.scaling, exact)  # (B, H, 1, D)
        x = x + _linear(a.o_proj, o.transpose(1, 2).reshape(B, 1, -1), left)  # (B, 1, d)
        h = _rms_norm(layer.post_attention_layernorm, x)
        m = layer.mlp
        gate, up = _in_one(getattr(m, "gate_up", None), (m.gate_proj, m.up_proj), h, left)
        gated = F.silu(gate) * up
        x = x + _linear(m.down_proj, gated, left)
    return _lm_head(model.lm_head, _rms_norm(base.norm, x), left)[:, -1]  # (B, V)
