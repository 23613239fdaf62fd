"""Sampling with a KV cache: one model step per new token and nothing else per step.

transformers' `generate` spends about a third of a small model's decoding time outside the model
(input preparation, processor and stopping-criteria objects, cache bookkeeping), and the model's
modules spend more than half of the rest in per-module overhead. This loop keeps only what decides the
tokens, done as `generate` does it, and decodes Llama/Qwen2 with decode.py's step: with one seed and
sampler="multinomial" it draws the same tokens as `generate` (tests/unit/rollout/test_rollout_sampling.py);
the default, "inverse_cdf", draws from the same distribution with one uniform a row. It also returns the
log-prob of each sampled token under the distribution it was drawn from (`sampled_logprobs`).
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager

import torch
from torch import Tensor

from align_lab.models.sequences import is_partitioned
from align_lab.rl import logprobs_from_logits
from align_lab.rollout.base import check_finite_logits
from align_lab.rollout.decode import align_weights, fast_decode_supported, preallocate
from align_lab.rollout.decode_matmul import last_logits
from align_lab.rollout.mirror import CacheDecoder


def warp(logits: Tensor, temperature: float, top_k: int, top_p: float) -> Tensor:
    """Next-token scores after temperature, top-k, top-p: generate's warpers in its order, (B, V)."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    if temperature != 1.0:
        logits = TemperatureLogitsWarper(temperature)(None, logits)
    if top_k != 0:
        logits = TopKLogitsWarper(top_k=top_k)(None, logits)
    if top_p < 1.0:
        logits = TopPLogitsWarper(top_p=top_p)(None, logits)
    return logits


def sampled_logprobs(warped: Tensor, tokens: Tensor) -> Tensor:
    """log softmax(warped) at the sampled tokens, (B, V), (B,) -> (B,): the log-prob under the very
    distribution `torch.multinomial` (or Gumbel-max) drew from, renormalised over the tokens top-k /
    top-p kept. The trainer's log-probs use temperature only (the whole vocabulary), so with top-k or
    top-p their ratio to these is the kept mass at the position (docs/rollout.md)."""
    return logprobs_from_logits(warped, tokens)


def inverse_cdf(probs: Tensor, u: Tensor | None = None) -> Tensor:
    """One token per row of probs (B, V), (B,): the first token whose cumulative probability (summed
    in float64) exceeds u x the row's total, u ~ U[0, 1) (B, 1) float64: given (each row's own, from
    RowNoise), else drawn from torch's generator.
    A sample of the distribution torch.multinomial(probs, 1) samples, which draws V exponentials a row
    (on a CPU one thread: 6.8 ms against 0.3 ms a decode step at SmolLM2's 8 x 49,152); other tokens
    for one seed. Tokens of probability 0 (cut by top-k / top-p) are never drawn."""
    cdf = probs.to(torch.float64).cumsum(-1)  # (B, V)
    total = cdf[:, -1:].contiguous()  # (B, 1)
    if u is None:
        u = torch.rand(total.shape, dtype=torch.float64, device=probs.device)  # (B, 1)
    token = torch.searchsorted(cdf, u * total, right=True)  # (B, 1): the first token whose cdf exceeds it
    last = torch.searchsorted(cdf, total)  # (B, 1): the last token with mass (u x total may round to total)
    return torch.minimum(token, last).squeeze(1)


def multinomial(probs: Tensor) -> Tensor:
    """One token per row of probs (B, V), (B,), as transformers' generate draws it."""
    return torch.multinomial(probs, num_samples=1).squeeze(1)


SAMPLERS = {"inverse_cdf": inverse_cdf, "multinomial": multinomial}  # rollout.sampler


def draw(
    logits: Tensor,
    temperature: float,
    top_k: int,
    top_p: float,
    greedy: bool,
    noise: RowNoise | None,
    sampler: str = "inverse_cdf",
    u: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One step's tokens (B,) from next-token logits (B, V), and each one's log-prob under the warped
    distribution it was drawn from (B,): argmax for greedy (log-prob 0, a certain choice), else a draw
    from the warped probabilities: `inverse_cdf` on the uniforms `u` (B, 1) (from torch's generator if
    None), or `torch.multinomial` as transformers' generate draws (`sampler`: "multinomial"; with the
    rows' own `noise`, Gumbel-max with each row's noise, which generate can draw too)."""
    if greedy:
        return logits.argmax(-1), logits.new_zeros(logits.shape[0])
    warped = warp(logits, temperature, top_k, top_p)  # (B, V)
    if sampler == "multinomial":
        next_tokens = noise(None, warped).argmax(-1) if noise is not None else multinomial(warped.softmax(-1))
    else:
        next_tokens = inverse_cdf(torch.softmax(warped, dim=-1), u)  # (B,)
    return next_tokens, sampled_logprobs(warped, next_tokens)


def prefill(
    model,
    prompt_ids: Tensor,
    prompt_attn: Tensor,
    max_new_tokens: int,
    n: int,
    padded: bool,
    left: bool = False,
    packed: bool = False,
):
    """(last logits (B, V), last positions (B, 1), step) after one forward of the B/n distinct prompts,
    their KV cache and logits repeated for the n samples of each. `step(tokens, position, t, attn)` feeds
    the t-th sampled tokens (B,) and returns the next logits (B, V): decode.py's step into a KV cache
    allocated once for P + max_new_tokens positions (Llama/Qwen2; left: its W @ h^T matmuls), else the
    model's forward. packed: the step's weights reordered for oneDNN (rollout.decode_matmul=packed)."""
    P = prompt_ids.shape[1]
    position_ids = (prompt_attn.cumsum(-1) - 1).clamp(min=0)  # (B/n, P); left pads read position 0
    keep = last_logits(model, P)  # the last position's logits only (decode_matmul.py)
    out = model(
        input_ids=prompt_ids,
        attention_mask=prompt_attn if padded else None,
        position_ids=position_ids,
        use_cache=True,
        return_dict=True,
        **keep,
    )
    logits = out.logits[:, -1].repeat_interleave(n, dim=0)  # (B, V)
    position = position_ids[:, -1:].repeat_interleave(n, dim=0)  # (B, 1)
    cache = out.cache if "cache" in out else out.past_key_values  # transformers >= 5.2x: `cache`
    if fast_decode_supported(model):
        prefilled = [(layer.keys, layer.values) for layer in cache.layers]  # per layer (B/n, H_kv, P, D)
        if left:  # W @ h^T's bits depend on where the weights lie: the same place for every copy
            align_weights(model)
        kv = preallocate(prefilled, n, P + max_new_tokens)
        return logits, position, CacheDecoder(model, kv, P, left, logits.shape[0] if packed else None)
    cache.batch_repeat_interleave(n)

    name = cache_keyword(model)

    def step(tokens: Tensor, pos: Tensor, t: int, attn: Tensor | None) -> Tensor:
        return model(
            input_ids=tokens[:, None],
            attention_mask=attn,
            position_ids=pos,
            use_cache=True,
            return_dict=True,
            **{name: cache},
        ).logits[:, -1]

    return logits, position, step


def cache_keyword(model) -> str:
    """The forward's keyword for the KV cache: `cache` from transformers 5.2x (`past_key_values` warns
    there, a FutureWarning each decode), asked of the model under a PEFT wrapper, whose forward takes
    **kwargs (ZeRO-3 with LoRA warned three times a run: seventh hunt of 2026-12-04)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def rows_to_keep(unfinished: Tensor) -> Tensor | None:
    """Indices of the rows still sampling (unfinished (b,) bool), at least two while two are left (a
    one-row matmul takes another BLAS path, with other bits); None when that is every row."""
    keep = unfinished.clone()
    if int(keep.sum()) < 2 <= len(keep):
        keep[(~keep).nonzero()[: 2 - int(keep.sum()), 0]] = True
    return None if bool(keep.all()) else keep.nonzero()[:, 0]


@contextmanager
def no_default_device():
    """Runs the block with torch's default device unset (set back after): `torch.set_default_device`
    (hardware.device=cuda, per thread) costs a Python call on every torch operation, and a decode step
    is a thousand small ones. The loop makes every tensor from its inputs, so it needs no default."""
    device = torch.get_default_device()
    if device.type == "cpu":
        yield
        return
    torch.set_default_device(None)
    try:
        yield
    finally:
        torch.set_default_device(device)


def draw_rows(logits: Tensor, rows: Tensor, B: int, pad: int, **how) -> tuple[Tensor, Tensor]:
    """`draw` (`how`: its settings) for the b rows a step computed (logits (b, V), `rows` their indices
    among B), as (B,) tokens and log-probs (pad and 0 elsewhere). With inverse_cdf each of the B rows
    draws its uniform (from its own generator with row seeds), so a row draws what it draws in the
    whole batch whichever rows the step computed."""
    u = None
    if how["sampler"] == "inverse_cdf" and not how["greedy"]:
        noise, device = how["noise"], logits.device
        every = (
            noise.uniforms() if noise is not None else torch.rand(B, 1, dtype=torch.float64, device=device)
        )
        u = every.to(device)[rows]  # (b, 1)
    drawn, drawn_logprobs = draw(logits, **how, u=u)  # (b,) x 2
    tokens = torch.full((B,), pad, dtype=drawn.dtype, device=drawn.device).index_copy(0, rows, drawn)
    return tokens, drawn_logprobs.new_zeros(B).index_copy(0, rows, drawn_logprobs)


@torch.no_grad()
@no_default_device()
def sample_with_cache(
    model,
    prompt_ids: Tensor,
    prompt_attn: Tensor,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    noise: RowNoise | None = None,
    n: int = 1,
    sampler: str = "inverse_cdf",
    weights_left: bool = False,
    packed: bool = False,
) -> tuple[Tensor, Tensor]:
    """Response ids (B, T'), B = n x prompts, T' <= max_new_tokens, as `model.generate(do_sample=not
    greedy)` returns them for the prompts each repeated n times (the n samples of a prompt contiguous),
    and each token's log-prob under the warped distribution it was drawn from (B, T') (0 for greedy
    and after a row's EOS). Logits with a NaN or an infinity raise NonFiniteLogits (diverged weights).

    One `prefill` a distinct prompt, generate's forward inputs and warpers, one `draw` a step (sampler
    "multinomial": generate's draws). Ended rows get pad, and with inverse_cdf leave decode.py's step
    (`rows_to_keep`); weights_left / packed: W @ h^T / oneDNN's matmuls (rollout.decode_matmul). `noise`:
    per-row seeds. A ZeRO-3 model across processes forwards in every process till all processes' rows end."""
    P = prompt_ids.shape[1]
    padded = not bool(prompt_attn.all())  # no padding: no mask, as generate
    limits = (max_new_tokens, n, padded, weights_left, packed)
    logits, position, step = prefill(model, prompt_ids, prompt_attn, *limits)
    B, device = logits.shape[0], logits.device
    generated = prompt_attn.new_ones(B, max_new_tokens)  # (B, max_new_tokens)
    attn_all = torch.cat([prompt_attn.repeat_interleave(n, dim=0), generated], 1)  # (B, P + max_new_tokens)
    unfinished, in_step = torch.ones(B, dtype=torch.bool, device=device), partitioned_across_processes(model)
    # inverse_cdf drops ended rows from the decode step (decode-shape matmuls are faster with fewer
    # rows); multinomial's draws depend on the row count: it keeps every row, as generate does
    drop_ended = sampler == "inverse_cdf" and isinstance(step, CacheDecoder)
    rows = torch.arange(B, device=device)  # (b,) the rows the decode step computes
    how = dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy, noise=noise, sampler=sampler)
    tokens, logprobs = [], []
    for t in range(max_new_tokens):
        logits = logits.to(dtype=torch.float32, copy=True)  # (b, V)
        check_finite_logits(logits)
        next_tokens, step_logprobs = draw_rows(logits, rows, B, pad_token_id, **how)  # (B,) x 2
        next_tokens = torch.where(unfinished, next_tokens, pad_token_id)  # (B,)
        tokens.append(next_tokens)
        logprobs.append(torch.where(unfinished, step_logprobs, 0.0))
        unfinished &= next_tokens != eos_token_id
        if t == max_new_tokens - 1 or not any_unfinished(unfinished, in_step):
            break
        keep = rows_to_keep(unfinished[rows]) if drop_ended else None
        if keep is not None:
            step.keep(keep)
            rows, position = rows[keep], position[keep]
        position = position + 1
        attn = attn_all[rows, : P + t + 1] if padded else None
        logits = step(next_tokens[rows], position, t, attn)  # (b, V)
    if not tokens:
        return prompt_ids.new_zeros(B, 0), logits.new_zeros(B, 0)
    return torch.stack(tokens, dim=1), torch.stack(logprobs, dim=1)  # (B, T'), (B, T')


def partitioned_across_processes(model) -> bool:
    """True for a DeepSpeed ZeRO-3 model (its parameters hold a `ds_tensor` partition) in a process
    group of more than one process: its forwards are collective."""
    import torch.distributed as dist

    return dist.is_initialized() and dist.get_world_size() > 1 and is_partitioned(model)


def any_unfinished(unfinished: Tensor, every_process: bool = False) -> bool:
    """Whether any row is still being sampled: here, or (every_process) in any process."""
    if not every_process:
        return bool(unfinished.any())
    import torch.distributed as dist

    flag = unfinished.any().long().reshape(1)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


class RowNoise:
    """A generator per row, so that row i's t-th token depends on seeds[i] alone: called (as a
    transformers logits processor), it adds Gumbel(0, 1) noise to each row's scores, and argmax(logits
    + noise) is a sample of softmax(logits) (the Gumbel-max trick; V draws a row); `uniforms` gives one
    U[0, 1) a row for inverse_cdf."""

    def __init__(self, seeds: list[int]) -> None:
        self.generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]

    def uniforms(self) -> Tensor:
        """One float64 U[0, 1) from each row's generator, (B, 1)."""
        return torch.stack([torch.rand(1, generator=g, dtype=torch.float64) for g in self.generators])

    def __call__(self, input_ids, scores: Tensor) -> Tensor:
        V = scores.shape[-1]
        u = torch.stack([torch.rand(V, generator=g, device="cpu") for g in self.generators])  # (B, V)
        gumbel = -torch.log(-torch.log(u.clamp(1e-12, 1 - 1e-7)))
        return scores + gumbel.to(scores.device, scores.dtype)
