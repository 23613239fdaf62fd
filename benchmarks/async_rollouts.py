"""Wall time of bounded-staleness runs with and without async rollouts (train.async_rollouts), side by side.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/async_rollouts.py              # the toy world
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/async_rollouts.py --world smollm2 --steps 4

Each setting is one `python -m align_lab` process (what a user runs), rounds of every setting in turn
(so a change in the machine's load hits every setting alike), all with rollout.seed_per_sample=true
(async needs it; the sync runs use it too, so that each sync/async pair must print the same numbers).
Reported per setting: `loop s`, the sum of the steps' time/step_s (the training loop's wall time, the
warm-up's k extra rollouts included, evaluation excluded), its median over rounds; `step s`, the median
time/step_s of steps 2.. (what a long run pays per step); the final eval/gold_reward (sync = async);
and the mean sampling time per rollout (time/rollout_sampling_s on the sampling thread, time/rollout_s
in the loop). The shared stages are built once by a first run, before the timed ones.
docs/off_policy.md records the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORLDS = {
    # the default run (toy_prefs, tiny_llama, REINFORCE++, 64 responses per step), shorter
    "toy": ["train.eval_every=0", "train.checkpoint_every=0"],
    # docs/real_model_study.md's preset: SmolLM2-135M on arith_word, one optimiser step per rollout
    "smollm2": [
        "model=smollm2_135m",
        "task=arith_word",
        "reward=verifier",
        "rollout.temperature=0.7",
        "model.max_response_tokens=16",
        "task.max_operand=10",
        "task.n_train=512",
        "task.n_eval=8",
        "train.rollout_size=8",
        "train.minibatch_size=8",
        "train.eval_every=0",
        "train.eval_samples=1",
        "train.checkpoint_every=0",
        "train.keep_checkpoint=false",
    ],
}
SETTINGS = {
    "k=0 (on-policy)": ["train.max_staleness=0"],
    "k=1 sync": ["train.max_staleness=1"],
    "k=1 async": ["train.max_staleness=1", "train.async_rollouts=true"],
    "k=2 sync": ["train.max_staleness=2"],
    "k=2 async": ["train.max_staleness=2", "train.async_rollouts=true"],
}


def run_one(overrides: list[str], run_dir: Path) -> tuple[list[dict], dict, float]:
    """One run in its own process: (metrics rows, summary, process wall seconds)."""
    cmd = [sys.executable, "-m", "align_lab", "tracker=none", f"hydra.run.dir={run_dir}", *overrides]
    start = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return rows, json.loads((run_dir / "summary.json").read_text()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", choices=sorted(WORLDS), default="toy")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", default="null", help="hardware.num_threads (null: every allowed core)")
    parser.add_argument(
        "--cache", type=Path, default=None, help="a stage cache to reuse (default: a new one)"
    )
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names of SETTINGS")
    args = parser.parse_args()
    import torch

    common = [
        *WORLDS[args.world],
        f"train.steps={args.steps}",
        "rollout.seed_per_sample=true",
        f"hardware.num_threads={args.threads}",
    ]
    chosen = {name: SETTINGS[name] for name in args.settings.split(",")}
    print(
        f"# {datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} cores, "
        f"{torch.backends.cpu.get_cpu_capability()}, load {os.getloadavg()[0]:.1f}; "
        f"python benchmarks/async_rollouts.py {' '.join(sys.argv[1:])}",
        flush=True,
    )
    results: dict[str, list] = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory(prefix="align_lab_async_") as tmp:
        cache = f"cache_dir={args.cache or Path(tmp) / 'cache'}"
        run_one([*common, cache, "train.steps=1", "train.max_staleness=0"], Path(tmp) / "warm")  # stages
        for r in range(args.rounds):
            for i, (name, extra) in enumerate(chosen.items()):
                rows, summary, seconds = run_one([*common, cache, *extra], Path(tmp) / f"r{r}_{i}")
                results[name].append((rows, summary, seconds))
                print(f"round {r} {name}: loop {sum(x['time/step_s'] for x in rows):.1f} s", flush=True)
    print()
    print(
        "| setting | loop s (median) | step s (median, steps 2..) | sampling s/rollout | process s "
        "| gold reward |"
    )
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        loops = [sum(x["time/step_s"] for x in rows) for rows, _, _ in runs]
        steps = [x["time/step_s"] for rows, _, _ in runs for x in rows[1:]]
        key = "time/rollout_sampling_s" if "async" in name else "time/rollout_s"
        sampling = statistics.mean(x[key] for rows, _, _ in runs for x in rows[1:])
        gold = {summary["eval/gold_reward"] for _, summary, _ in runs}
        process = statistics.median(s for _, _, s in runs)
        golds = ", ".join(f"{g:.4f}" for g in sorted(gold))
        print(
            f"| {name} | {statistics.median(loops):.1f} | {statistics.median(steps):.3f} | {sampling:.3f} | "
            f"{process:.1f} | {golds} |"
        )


if __name__ == "__main__":
    main()
