"""The copies of a policy an HF rollout samples instead of the policy itself (rollout/hf.py
`sampled_model`): rollout.dtype=bfloat16's low-precision copy, and a ZeRO-3 policy's whole copy
(rollout.zero3_whole_copy) its partitions are gathered into."""

from __future__ import annotations

import copy

import torch

from align_lab.models.sequences import is_partitioned
from align_lab.value_checks import check


def whole_copy(model):
    """An unpartitioned float32 model of a ZeRO-3 model's class and config, for sampling only (its
    weights come from gather_into); eval mode, no gradients, on the default device. Its initial
    weights are drawn on forked generators: the run's draws are those it makes without the copy."""
    from transformers import AutoModelForCausalLM

    gpus = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=gpus):
        clone = AutoModelForCausalLM.from_config(model.config)
    return clone.float().requires_grad_(False).eval()


def gather_into(model, clone):
    """Copies a ZeRO-3 model's weights, gathered from every process, into `clone`; returns it."""
    import deepspeed

    params = list(model.parameters())
    with deepspeed.zero.GatheredParameters(params), torch.no_grad():
        for mine, theirs in zip(clone.parameters(), params, strict=True):
            mine.copy_(theirs)
    return clone


def low_precision_copy(model, dtype: torch.dtype):
    """A copy of `model` for sampling only: parameters in `dtype` (tied ones stay tied), buffers as they
    are (rotary inv_freq stays float32, as in a model loaded in that dtype), no gradients, eval mode."""
    check(
        not is_partitioned(model),
        "rollout.dtype",
        dtype,
        "float32 with a ZeRO-3 partitioned policy (no process holds its whole weights to copy)",
    )
    clone = copied_without_grads(model)
    for p in clone.parameters():
        p.data = p.data.to(dtype)
        p.requires_grad_(False)
    clone.config.dtype = dtype
    return clone.eval()


def copied_without_grads(model: torch.nn.Module) -> torch.nn.Module:
    """copy.deepcopy of `model` without its parameters' gradients (deepcopy would copy them: a whole
    model's worth of memory the copy never reads); `model` keeps its own."""
    grads = [p.grad for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    try:
        return copy.deepcopy(model)
    finally:
        for p, g in zip(model.parameters(), grads, strict=True):
            p.grad = g
