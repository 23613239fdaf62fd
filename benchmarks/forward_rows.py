"""A no-graph forward's memory a row, measured against the memory model's forward_row_bytes.

The memory plan (align_lab/train/memory.py) sizes step 3's, the reference's and evaluation's forwards
without a graph by `forward_row_bytes` (align_lab/train/footprint.py). This runs `response_logprobs`
under torch.no_grad() on a Llama of SmolLM2-135M's shapes with random weights (or --config's model),
each row count in its own process, and reads the process's peak resident memory after a one-row
warm-up: the growth between two row counts over their difference is the bytes a row, for rows that
share prompts (groups of --group: the prompt's KV cache given to its samples) and rows that do not
(one forward over prompt and response).

    python -m benchmarks run forward_rows               # SmolLM2's shapes, 58 + 64 tokens, 8 and 32 rows
    python -m benchmarks run forward_rows --config DIR  # a config folder (gpu_runs.py --export)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

from benchmarks.harness import arguments, machine, machine_line, report

NEEDS = ()
SMOKE = ("--hidden", "64", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--ffn", "128",
         "--vocab", "512", "--prompt", "8", "--response", "8", "--rows", "4,8")  # fmt: skip
SMOL = {"hidden": 576, "layers": 30, "heads": 9, "kv_heads": 3, "ffn": 1536, "vocab": 49152}


def build(a):
    import torch

    from benchmarks.gpu import build as llama

    torch.manual_seed(0)
    return llama(a.vocab, a.hidden, a.layers, a.heads, a.ffn, a.config, a.kv_heads).eval()


def worker(a) -> dict:
    """One row count's peak growth over a one-row forward, in this process (MiB)."""
    import torch

    from align_lab.models.sequences import response_logprobs

    torch.set_num_threads(1)
    model = build(a)
    B, P, T, V = a.worker, a.prompt, a.response, model.config.vocab_size
    group = a.group if a.shared else 1
    prompts = torch.randint(1, V, (B // group, P)).repeat_interleave(group, 0)  # (B, P)
    responses = torch.randint(1, V, (B, T))  # (B, T)
    rows = (prompts, torch.ones_like(prompts), responses, torch.ones(B, T))
    with torch.no_grad():
        response_logprobs(model, *(r[:group] for r in rows))  # warm-up: one group
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        response_logprobs(model, *rows)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rows": B, "growth_mib": (after - before) / 1024}


def predicted(a) -> float:
    """forward_row_bytes of the workers' model (its config alone: no weights built here), MiB."""
    from transformers import AutoConfig

    from align_lab.train.footprint import Dims, forward_row_bytes

    if a.config:
        dims = Dims.of(AutoConfig.from_pretrained(a.config))
    else:
        kv_width = a.kv_heads * a.hidden // a.heads
        dims = Dims(a.hidden, a.layers, a.ffn, a.heads, a.vocab, kv_width)
    return forward_row_bytes(dims, a.prompt, a.response) / 2**20


def measure(a, rows: int, shared: bool) -> float:
    args = [sys.executable, "-m", "benchmarks.forward_rows", *a.argv, "--worker", str(rows)]
    args += ["--shared"] if shared else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["growth_mib"]


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__)
    parser.add_argument("--config", default=None, help="a model config folder (overrides the sizes)")
    parser.add_argument("--hidden", type=int, default=SMOL["hidden"])
    parser.add_argument("--layers", type=int, default=SMOL["layers"])
    parser.add_argument("--heads", type=int, default=SMOL["heads"])
    parser.add_argument("--kv-heads", type=int, default=SMOL["kv_heads"])
    parser.add_argument("--ffn", type=int, default=SMOL["ffn"])
    parser.add_argument("--vocab", type=int, default=SMOL["vocab"])
    parser.add_argument("--prompt", type=int, default=58, help="prompt tokens (arith_word's longest)")
    parser.add_argument("--response", type=int, default=64, help="response tokens")
    parser.add_argument("--group", type=int, default=4, help="samples a prompt, for shared prompts")
    parser.add_argument("--rows", default="8,32", help="two row counts")
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)  # rows, in a worker
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
        growth = {n: measure(a, n, shared) for n in (low, high)}
        per_row = (growth[high] - growth[low]) / (high - low)
        what = f"groups of {a.group} sharing a prompt" if shared else "distinct prompts"
        out.append({"rows": what, "MiB a row": round(per_row, 2), "predicted": round(model_mib, 2)})
        print(f"{what}: {per_row:.2f} MiB a row measured, {model_mib:.2f} predicted", flush=True)
    report("forward_rows", a, out, notes={"prompt": a.prompt, "response": a.response})


if __name__ == "__main__":
    main()
