"""How close each step ran to this machine's limits (docs/performance.md): `perf/rollout_mbu` and
`perf/update_mfu` in metrics.jsonl, their means over the run in summary.json.

- rollout MBU (memory-bandwidth utilisation): the bytes a decode must read, over the rollout's time, over
  the machine's measured read bandwidth. Decoding one token position reads every weight once for the
  whole batch (the rows of a step share the read) plus each row's KV cache so far, so the bytes are
  decode steps x weight bytes + KV positions read x bytes per KV position (open-instruct's count);
- update MFU (model FLOPs utilisation): 6 x parameters x trained tokens (2 FLOPs a parameter a token for
  the forward, 4 for the backward), over the update's time, over the machine's measured matmul rate.

The machine's figures are measured once (`measure`, about a second: a read of 1 GiB and a 2048-square
matmul, the `floor` benchmark's probes) and kept in the stage cache dir (machine_limits.json), one entry
per CPU model, device, dtype and thread count; ALIGN_LAB_MACHINE_LIMITS="<bytes/s>,<FLOP/s>" sets them
instead (the tests do: no test measures). Neither the measurement nor the metrics touch an RNG.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

import torch

FILE = "machine_limits.json"
ENV = "ALIGN_LAB_MACHINE_LIMITS"


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the weights a decode step reads: every parameter once (tied ones once), less an input
    embedding that is not the LM head (a lookup reads only the rows' own entries)."""
    return sum(p.numel() * p.element_size() for p in _matmul_params(model))


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters a token's forward multiplies with: all (tied once), less an untied input embedding."""
    return sum(p.numel() for p in _matmul_params(model))


def _matmul_params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    params = list(model.parameters())  # tied weights appear once
    get_in, get_out = (getattr(model, n, None) for n in ("get_input_embeddings", "get_output_embeddings"))
    embed = get_in() if callable(get_in) else None
    head = get_out() if callable(get_out) else None
    if embed is None or (head is not None and head.weight is embed.weight):
        return params
    return [p for p in params if p is not embed.weight]


def kv_bytes_per_position(config, dtype_bytes: int) -> int:
    """Bytes of one position's K and V in every layer: 2 x layers x KV heads x head dim x dtype bytes
    (0 for a model whose config does not say them)."""
    layers = getattr(config, "num_hidden_layers", None)
    heads = getattr(config, "num_attention_heads", None)
    if not layers or not heads:
        return 0
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def kv_positions(prompt_lengths: torch.Tensor, response_lengths: torch.Tensor) -> int:
    """KV positions a rollout's decode reads, summed over rows: a row of prompt P and response R reads
    P + t positions at its t-th decode step, t = 0..R-1: R x P + R (R - 1) / 2."""
    p, r = prompt_lengths.long(), response_lengths.long()  # (B,), (B,)
    return int((r * p + r * (r - 1) // 2).sum())


def rollout_mbu(
    decode_steps: int, weights: int, kv_read: int, kv_bytes: int, seconds: float, bandwidth: float
) -> float:
    """(decode_steps x weights + kv_read x kv_bytes) bytes / seconds / bandwidth (bytes/s)."""
    return (decode_steps * weights + kv_read * kv_bytes) / seconds / bandwidth


def update_flops(params: int, tokens: int) -> int:
    """6 x params x tokens: a forward's 2 FLOPs a parameter a token (one multiply-add) and a backward's 4
    (the gradients of the inputs and of the weights); attention's own FLOPs are left out."""
    return 6 * params * tokens


def update_mfu(params: int, tokens: int, seconds: float, peak: float) -> float:
    """update_flops / seconds / peak (FLOP/s)."""
    return update_flops(params, tokens) / seconds / peak


def _best(fn, repeats: int, device: torch.device) -> float:
    """The fastest of `repeats` timed calls (the least disturbed by other processes), in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


READ_BYTES = 2**30  # the read the bandwidth is timed on: the `floor` benchmark's (benchmarks/floor.py)
SIDE = 2048  # the square matmul the rate is timed on: the `floor` benchmark's
PROBE = 2  # the probe's version in machine_limits.json: an entry of another is measured again


def measure(device: torch.device, dtype: torch.dtype, repeats: int = 5) -> dict:
    """This machine's read bandwidth (bytes/s: a sum over a 1 GiB tensor) and matmul rate (FLOP/s: a
    2048-square matmul in `dtype`) with the current torch threads, the `floor` benchmark's probes, so a
    run's 1 / MBU is that benchmark's multiple of the floor; no RNG is drawn. Until probe 2 (2026-12-05)
    the read was twice the last-level cache, which the cache still partly served (`python -m benchmarks
    run machine_limits`: 64 MiB at 104-127 GB/s, 1 GiB at 81-85, 4 GiB at 81 on an EPYC Zen 5)."""
    x = torch.ones(READ_BYTES // 4, device=device)
    x.sum()
    bandwidth = x.numel() * 4 / _best(x.sum, repeats, device)
    del x
    n = SIDE
    a = torch.ones(n, n, dtype=dtype, device=device)
    b = torch.ones(n, n, dtype=dtype, device=device)
    a @ b
    peak = 2 * n**3 / _best(lambda: a @ b, repeats, device)
    return {
        "bandwidth": bandwidth,
        "peak_flops": peak,
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def limits_key(device: torch.device, dtype: torch.dtype) -> str:
    """What the figures depend on: CPU model (GPU name), device, dtype, torch threads."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_model()
    return f"{name} | {device.type} | {str(dtype).removeprefix('torch.')} | {torch.get_num_threads()} threads"


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "?")


def from_env(value: str) -> dict:
    """ALIGN_LAB_MACHINE_LIMITS="<bytes/s>,<FLOP/s>" as limits; one line naming it if it is not that (inf
    too: every MBU and MFU then 0.0, a figure no measurement gave: seventh hunt of 2026-12-04, e2)."""
    said = f"{ENV}={value!r}: must be '<bytes/s>,<FLOP/s>', two finite positive numbers"
    try:
        bandwidth, peak = (float(v) for v in value.split(","))
    except ValueError:
        raise ValueError(said) from None
    if not all(math.isfinite(x) and x > 0 for x in (bandwidth, peak)):
        raise ValueError(said)
    return {"bandwidth": bandwidth, "peak_flops": peak, "measured": ENV}


def check_env() -> None:
    """ALIGN_LAB_MACHINE_LIMITS read as a run is admitted: it was read at the first step, after the stages
    trained, a 64-line traceback (seventh hunt of 2026-12-04, e1)."""
    from align_lab.config import ConfigError

    if value := os.environ.get(ENV):
        try:
            from_env(value)
        except ValueError as e:
            raise ConfigError(str(e)) from None


def machine_limits(cache_dir: Path, device: torch.device, dtype: torch.dtype, measure_fn=None) -> dict:
    """This machine's limits: ALIGN_LAB_MACHINE_LIMITS, else cache_dir/machine_limits.json's entry, else
    measured now and added there."""
    if value := os.environ.get(ENV):
        return from_env(value)
    path, key = Path(cache_dir) / FILE, limits_key(device, dtype)
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if known.get(key, {}).get("probe") != PROBE:  # not yet, or by an older probe
        known[key] = (measure_fn or measure)(device, dtype) | {"probe": PROBE}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1) + "\n")
        tmp.replace(path)  # whole or not at all: runs beside each other may write it at once
    return known[key]


def model_facts(model: torch.nn.Module, sampled: torch.dtype | None = None) -> dict:
    """What the step figures need of the policy: weight bytes and KV bytes a position at `sampled`, the
    dtype of the weights the rollout reads (rollout.dtype=bfloat16's copy, vLLM's own; None: the
    policy's), and matmul parameters."""
    first = next(model.parameters())
    config = getattr(model, "config", None)
    size = first.element_size() if sampled is None else torch.empty(0, dtype=sampled).element_size()
    # the live policy's own bytes, each parameter at its dtype (a LoRA's float32 adapters on a bfloat16
    # base); a copy in one dtype: every parameter at that
    weights = weight_bytes(model) if sampled is None else matmul_params(model) * size
    return {
        "weights": weights,
        "params": matmul_params(model),
        "kv_bytes": kv_bytes_per_position(config, size) if config is not None else 0,
        "device": first.device,
        "dtype": first.dtype,
    }


def step_perf(metrics: dict, facts: dict, limits: dict, trained_tokens: int | None) -> dict:
    """A step's perf/rollout_mbu (where it sampled: perf/decode_steps, perf/kv_positions, perf/response_
    tokens and time/generated_tokens_per_s in `metrics`; the rollout's time is its tokens over that rate,
    its own sampling time also when it was sampled ahead) and perf/update_mfu (where it trained
    `trained_tokens` in time/train_s)."""
    out = {}
    rate = metrics.get("time/generated_tokens_per_s", 0.0)
    if "perf/decode_steps" in metrics and metrics.get("perf/response_tokens") and rate > 0:
        seconds = metrics["perf/response_tokens"] / rate
        out["perf/rollout_mbu"] = rollout_mbu(
            metrics["perf/decode_steps"],
            facts["weights"],
            metrics["perf/kv_positions"],
            facts["kv_bytes"],
            seconds,
            limits["bandwidth"],
        )
    train_s = metrics.get("time/train_s", 0.0)
    if trained_tokens and train_s > 0:
        out["perf/update_mfu"] = update_mfu(facts["params"], trained_tokens, train_s, limits["peak_flops"])
    return out


def prime(state: dict, policy: torch.nn.Module, cache_dir) -> None:
    """The machine's limits in the run's `state`, measured where not yet known (`machine_limits`). Called
    before the first step (run/build.py): the 1 GiB read then lies beside the weights alone, before any
    gradient, optimiser state or activation, so below the run's later memory for a model past about 90M
    parameters (gradients and AdamW's moments, 12 bytes a parameter, outgrow it); measured at the first
    step's end instead, it lay beside all of them."""
    if "limits" not in state:
        first = next(policy.parameters())
        state["limits"] = machine_limits(Path(cache_dir), first.device, first.dtype)


def observe(
    state: dict,
    policy: torch.nn.Module,
    cache_dir,
    metrics: dict,
    done: int,
    sampled: torch.dtype | None = None,
) -> dict:
    """The step's perf/ figures, for the loop's end of step: `state` (the run's, empty at its start)
    keeps the policy's facts (its weights read at `sampled`, the rollout's dtype), the machine's limits,
    the last cumulative trained-token count (a step's tokens are the difference; the first step after a
    resume has no figure) and each figure's values."""
    if "facts" not in state:
        state["facts"] = model_facts(policy, sampled)
        state.setdefault("values", {})
    prime(state, policy, cache_dir)
    trained = metrics.get("counters/trained_tokens")
    last = state.get("trained", 0 if done == 1 else None)
    tokens = None if trained is None or last is None else trained - last
    state["trained"] = trained
    out = step_perf(metrics, state["facts"], state["limits"], tokens)
    for k, v in out.items():
        state["values"].setdefault(k, []).append(v)
    return out


def run_means(state: dict) -> dict:
    """Each perf/ figure's mean over the run's steps (this segment's), for summary.json."""
    return {k: sum(v) / len(v) for k, v in state.get("values", {}).items() if v}
