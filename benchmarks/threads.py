"""Seconds per step of the default run at 1 and 2 torch threads, on an idle machine and beside a
concurrent CPU load (busy processes, as other jobs on a shared machine), alternating the thread
counts so that both see the same conditions. Used to choose `hardware.num_threads`' default.

Usage: .venv/bin/python benchmarks/threads.py [--steps 20] [--load 3] [--repeats 2]
Prints one line per condition and thread count: median time/step_s over the run's steps.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def spin(stop) -> None:
    while not stop.is_set():
        sum(range(10_000))


def step_seconds(threads: int, steps: int, out: Path) -> list[float]:
    run_dir = out / f"t{threads}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "align_lab", f"hydra.run.dir={run_dir}", f"train.steps={steps}"]
    cmd += [f"hardware.num_threads={threads}", "train.eval_every=0", "tracker.kind=none"]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [x["time/step_s"] for x in lines if "eval/gold_reward" not in x]  # the last step also evaluates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--load", type=int, default=3, help="busy processes beside the run (0: idle only)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(tempfile.mkdtemp(prefix="align_lab_threads_"))
    step_seconds(1, 1, out)  # build (or find) the cached stages first
    for load in sorted({0, args.load}):
        stop = mp.Event()
        spinners = [mp.Process(target=spin, args=(stop,), daemon=True) for _ in range(load)]
        for p in spinners:
            p.start()
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for threads in (1, 2):
                times[threads] += step_seconds(threads, args.steps, out)
        stop.set()
        for p in spinners:
            p.join()
        for threads, t in times.items():
            print(
                f"load {load} busy processes on {os.cpu_count()} cores, {threads} thread(s): "
                f"{statistics.median(t):.3f} s/step (median of {len(t)} steps)",
                flush=True,
            )


if __name__ == "__main__":
    main()
