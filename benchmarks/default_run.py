"""Wall time of the default `python -m align_lab` from an empty stage cache, then with cached stages.

    .venv/bin/python -m benchmarks run default_run [--rounds 2]

Each round: a new empty stage cache, the default run (the toy world, 150 steps, W&B offline files), then
the same run again on the stages the first built. Prints per run the wall time of the process, the held-out
gold reward against SFT's, and each stage's seconds (a hit: read from the cache).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks.harness import TINY, align_lab, arguments, machine, machine_line, ratios, report
from benchmarks.options import at_least

NEEDS = ()
SMOKE = ("--steps", "2", "--tiny")
ARMS = ("empty cache", "cached stages")


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__, tiny=True)
    parser.add_argument(
        "--steps", type=at_least(1), default=None, help="train.steps (default: the default run's)"
    )
    args = parser.parse_args(argv)
    extra = [f"train.steps={args.steps}"] if args.steps else []
    extra += list(TINY) if args.tiny else []
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    print(machine_line(machine()), flush=True)
    rows = []
    for r in range(args.rounds):  # the arms cannot alternate: the second needs the first's stages
        with tempfile.TemporaryDirectory(prefix="align_lab_default_") as tmp:
            env["ALIGN_LAB_CACHE"] = str(Path(tmp) / "cache")
            for arm in ARMS:
                run = align_lab(extra, Path(tmp) / arm.replace(" ", "_"), env)
                s = run.summary
                stages = ", ".join(
                    f"{k} {v['seconds']:.1f}s{' (hit)' if v['hit'] else ''}" for k, v in s["stages"].items()
                )
                rows.append(
                    {
                        "run": arm,
                        "round": r,
                        "wall s": run.wall_s,
                        "gold": round(s["eval/gold_reward"], 3),
                        "SFT gold": round(s["eval/gold_reward_sft"], 3),
                        "stages": stages,
                    }
                )
                print(rows[-1], flush=True)
    wall = {arm: statistics.median(row["wall s"] for row in rows if row["run"] == arm) for arm in ARMS}
    report("default_run", args, rows, ratio={"wall s over the empty cache's": ratios(wall, ARMS[0])})


if __name__ == "__main__":
    main()
