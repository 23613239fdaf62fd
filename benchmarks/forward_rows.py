"""A no-graph forward's memory a row, measured against the memory model's forward_row_bytes.

The memory plan (align_lab/train/memory/planner.py) sizes step 3's, the reference's and evaluation's forwards
without a graph by `forward_row_bytes` (align_lab/train/memory/footprint.py). This runs `response_logprobs`
under torch.no_grad() on a Llama of SmolLM2-135M's shapes with random weights (or --config's model),
each row count in its own process, and reads the process's peak resident memory after a one-row
warm-up: the growth between two row counts over their difference is the bytes a row, for rows that
share prompts (groups of --group: the prompt's KV cache given to its samples) and rows that do not
(one forward over prompt and response).

    python -m benchmarks run forward_rows               # SmolLM2's shapes, 58 + 64 tokens, 8 and 32 rows
    python -m benchmarks run forward_rows --config DIR  # a config folder (gpu_runs.py --export)

--graph measures an update's row instead: the forward with a graph and the backward of the log-probs'
mean, against the plan's BACKWARD x row_bytes. --dtype bf16 runs it under bf16 autocast (as
hardware.dtype=bf16), against the plan's bf16 row. --device cuda reads torch.cuda.max_memory_allocated
(every row count in one process, its peak reset before each) instead of the resident peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

from benchmarks.harness import arguments, machine, machine_line, report
from benchmarks.options import at_least

NEEDS = ()
SMOKE = ("--hidden", "64", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--ffn", "128",
         "--vocab", "512", "--prompt", "8", "--response", "8", "--rows", "4,8")  # fmt: skip
SMOL = {"hidden": 576, "layers": 30, "heads": 9, "kv_heads": 3, "ffn": 1536, "vocab": 49152}


def build(a):
    import torch

    from benchmarks.gpu import build as llama

    torch.manual_seed(0)
    return llama(a.vocab, a.hidden, a.layers, a.heads, a.ffn, a.config, a.kv_heads).eval()


def peak_mib(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(a) -> dict:
    """Each row count's peak growth over a one-group pass, in this process (MiB): on a CPU one row
    count a process (the resident peak cannot be reset), on a GPU every one."""
    import contextlib

    import torch

    from align_lab.models.sequences import response_logprobs

    torch.set_num_threads(1)
    model = build(a).to(a.device).train(a.graph)
    counts, P, V = [int(n) for n in a.worker.split(",")], a.prompt, model.config.vocab_size
    group = a.group if a.shared else 1
    bf16 = a.dtype == "bf16"
    autocast = torch.autocast(a.device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def rows(B: int) -> tuple:
        prompts = torch.randint(1, V, (B // group, P)).repeat_interleave(group, 0)  # (B, P)
        responses = torch.randint(1, V, (B, a.response))  # (B, T)
        batch = (prompts, torch.ones_like(prompts), responses, torch.ones(B, a.response))
        return tuple(t.to(a.device) for t in batch)

    def run(batch: tuple) -> None:
        with torch.set_grad_enabled(a.graph), autocast:
            logprobs, _ = response_logprobs(model, *batch)
        if a.graph:
            logprobs.float().mean().backward()

    run(rows(group))  # warm-up: one group (and the gradients, when --graph)
    out = {}
    for B in counts:
        batch = rows(B)
        if a.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        before = peak_mib(a.device)
        run(batch)
        out[B] = peak_mib(a.device) - before
        del batch
    return {"growth_mib": out}


def predicted(a) -> float:
    """The plan's bytes a row of the workers' model (its config alone: no weights built here), MiB:
    forward_row_bytes, or with --graph BACKWARD x row_bytes at --dtype."""
    from transformers import AutoConfig

    from align_lab.train.memory.footprint import Dims, forward_row_bytes, row_bytes
    from align_lab.train.memory.planner import BACKWARD

    if a.config:
        dims = Dims.of(AutoConfig.from_pretrained(a.config))
    else:
        kv_width = a.kv_heads * a.hidden // a.heads
        dims = Dims(a.hidden, a.layers, a.ffn, a.heads, a.vocab, kv_width)
    if a.graph:
        return BACKWARD * row_bytes(dims, a.prompt, a.response, dtype=a.dtype) / 2**20
    return forward_row_bytes(dims, a.prompt, a.response) / 2**20


def measure(a, counts: list[int], shared: bool) -> dict[int, float]:
    """Each row count's growth: one worker process on a GPU, one a row count on a CPU."""
    groups = [counts] if a.device == "cuda" else [[n] for n in counts]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    growth = {}
    for ns in groups:
        args = [sys.executable, "-m", "benchmarks.forward_rows", *a.argv, "--worker", ",".join(map(str, ns))]
        out = subprocess.run(args + (["--shared"] if shared else []), capture_output=True, text=True, env=env)
        if out.returncode:
            raise SystemExit(f"forward_rows worker failed:\n{out.stderr[-3000:]}")
        last = json.loads(out.stdout.strip().splitlines()[-1])
        growth |= {int(k): v for k, v in last["growth_mib"].items()}
    return growth


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__)
    parser.add_argument("--config", default=None, help="a model config folder (overrides the sizes)")
    parser.add_argument("--hidden", type=at_least(1), default=SMOL["hidden"])
    parser.add_argument("--layers", type=at_least(1), default=SMOL["layers"])
    parser.add_argument("--heads", type=at_least(1), default=SMOL["heads"])
    parser.add_argument("--kv-heads", type=at_least(1), default=SMOL["kv_heads"])
    parser.add_argument("--ffn", type=at_least(1), default=SMOL["ffn"])
    parser.add_argument("--vocab", type=at_least(1), default=SMOL["vocab"])
    parser.add_argument("--prompt", type=at_least(1), default=58, help="prompt tokens (arith_word's longest)")
    parser.add_argument("--response", type=at_least(1), default=64, help="response tokens")
    parser.add_argument("--group", type=at_least(1), default=4, help="samples a prompt, for shared prompts")
    parser.add_argument("--rows", default="8,32", help="two row counts")
    parser.add_argument("--graph", action="store_true", help="an update's row: forward, backward")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="bf16: under bf16 autocast")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)  # row counts, in a worker
    parser.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args(argv)
    if a.worker:
        return print(json.dumps(worker(a)), flush=True)
    a.argv = list(sys.argv[1:] if argv is None else argv)  # the workers' sizes
    print(machine_line(machine()), flush=True)
    low, high = (int(r) for r in a.rows.split(","))
    model_mib = predicted(a)
    out = []
    for shared in (True, False):
        growth = measure(a, [low, high], shared)
        per_row = (growth[high] - growth[low]) / (high - low)
        what = f"groups of {a.group} sharing a prompt" if shared else "distinct prompts"
        out.append({"rows": what, "MiB a row": round(per_row, 2), "predicted": round(model_mib, 2)})
        print(f"{what}: {per_row:.2f} MiB a row measured, {model_mib:.2f} predicted", flush=True)
    notes = {k: getattr(a, k) for k in ("prompt", "response", "graph", "dtype", "device")}
    report("forward_rows", a, out, notes=notes)


if __name__ == "__main__":
    main()
