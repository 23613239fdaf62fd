"""Wall time of a 6-run local sweep of the default run (hardware=submitit_local, seeds 0-5) against
the same 6 runs one after another, on this machine, from the same warm stage cache. The sweep runs
`hardware.max_parallel` runs at once (default: cores / cores per run), each with one torch thread.

Usage: .venv/bin/python benchmarks/local_sweep.py [--runs 6] [--steps 150] [--unthrottled]
  --unthrottled also times the sweep as it was before max_parallel: every run at once, torch's
  default thread count (hardware.max_parallel=<runs> hardware.num_threads=0).
Prints one line per mode and the ratio sweep / sequential.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def align_lab(*args: str) -> None:
    cmd = [sys.executable, "-m", "align_lab", *args, "tracker.kind=none"]  # -m before overrides
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=150, help="train.steps (150: the default run)")
    ap.add_argument("--unthrottled", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(tempfile.mkdtemp(prefix="align_lab_sweep_"))
    steps = f"train.steps={args.steps}"
    seeds = ",".join(str(s) for s in range(args.runs))
    align_lab(f"hydra.run.dir={out / 'warm'}", "train.steps=1")  # the shared stages, once

    def sequential() -> None:
        for seed in range(args.runs):
            align_lab(f"hydra.run.dir={out / 'seq' / str(seed)}", steps, f"seed={seed}")

    def sweep(name: str, *extra: str):
        where = f"hydra.sweep.dir={out / name}"
        return lambda: align_lab("-m", "hardware=submitit_local", steps, f"seed={seeds}", where, *extra)

    seq_s = timed(sequential)
    sweep_s = timed(sweep("sweep"))
    manifest = json.loads((out / "sweep" / "study.json").read_text())
    print(f"{args.runs} runs one after another: {seq_s:.1f} s", flush=True)
    n = manifest["max_parallel"]
    print(f"{args.runs}-run local sweep (max_parallel {n}): {sweep_s:.1f} s", flush=True)
    print(f"ratio sweep / sequential: {sweep_s / seq_s:.2f}", flush=True)
    if args.unthrottled:
        old_s = timed(sweep("unthrottled", f"hardware.max_parallel={args.runs}", "hardware.num_threads=0"))
        print(f"{args.runs}-run sweep, all at once, torch default threads: {old_s:.1f} s", flush=True)
        print(f"ratio unthrottled / sequential: {old_s / seq_s:.2f}", flush=True)


if __name__ == "__main__":
    main()
