"""Peak memory (RSS) and wall time of DPO against the reference-free SimPO and ORPO, one process a run.

    HF_HUB_OFFLINE=1 ALIGN_LAB_CACHE=/work/studies/cache .venv/bin/python benchmarks/reference_free_memory.py
    ... benchmarks/reference_free_memory.py --worlds toy --algos dpo,simpo

Each run is one `python -m align_lab` process (what a user types); its peak RSS is the kernel's
ru_maxrss of that child (os.wait4), its wall time the process's. SimPO and ORPO hold no reference model
while training (train/context.py): evaluation loads the SFT policy for its reference numbers and frees
it, so their peak is the larger of training without a reference and evaluation with one. The summary's
eval/gold_reward and eval/kl are printed beside, and whether the run built a shared stage (a cold cache
inflates the first run's time: `--warmup` worlds get a first, untimed run). benchmarks/RESULTS.md
records them.
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
WORLDS = {
    "toy": ["train.steps=20", "tracker=none"],
    "smollm2": [
        "model=smollm2_135m",
        "task=arith_word",
        "reward=verifier",
        "train.steps=3",
        "train.eval_every=0",
        "task.n_eval=8",
        "task.n_pairs=16",
        "train.keep_checkpoint=false",
        # the preset's sizes before it was sized for a laptop (2026-11-26): the figures in RESULTS.md
        "train.rollout_size=64",
        "train.minibatch_size=32",
        "train.eval_samples=4",
        "rollout.temperature=1.0",
        "tracker=none",
    ],
}


def measure(world: str, algo: str, threads: int, root: Path = ROOT) -> dict:
    """One run of the align_lab in `root`: peak RSS (MiB), wall s, and the summary's numbers."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"refree-{world}-{algo}-"))
    cmd = [sys.executable, "-m", "align_lab", f"algo={algo}", *WORLDS[world], f"hydra.run.dir={run_dir}"]
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(root)}
    start = time.perf_counter()
    # stderr to a file outside the run folder, not a pipe: a full pipe would block the run
    log = run_dir.with_suffix(".stderr")
    with open(log, "w") as err:
        child = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    stderr = log.read_text(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{world} {algo} failed:\n{stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "world": world,
        "algo": algo,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "wall_s": wall,
        "gold": summary.get("eval/gold_reward"),
        "kl": summary.get("eval/kl"),
        "built": [name for name, stage in summary.get("stages", {}).items() if not stage.get("hit")],
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| world | algo | peak RSS MiB | vs dpo | wall s | eval/gold_reward | eval/kl |",
        "|---" * 7 + "|",
    ]
    for r in rows:
        dpo = next((d for d in rows if d["world"] == r["world"] and d["algo"] == "dpo"), None)
        ratio = f"{r['peak_rss_mib'] / dpo['peak_rss_mib']:.2f}" if dpo else "-"
        lines.append(
            f"| {r['world']} | {r['algo']} | {r['peak_rss_mib']:.0f} | {ratio} | {r['wall_s']:.0f} | "
            f"{r['gold']:.4f} | {r['kl']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", default="toy,smollm2")
    parser.add_argument("--algos", default="dpo,simpo,orpo")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run")
    parser.add_argument("--warmup", default="toy", help="worlds whose stages a first, untimed run builds")
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree to run (e.g. a git archive)")
    args = parser.parse_args()
    rows = []
    for world in args.worlds.split(","):
        if world in args.warmup.split(","):
            measure(world, args.algos.split(",")[0], args.threads, args.root)
        for algo in args.algos.split(","):
            rows.append(measure(world, algo, args.threads, args.root))
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
