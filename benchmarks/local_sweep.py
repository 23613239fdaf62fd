"""Wall time of a 6-run local sweep of the default run (hardware=submitit_local, seeds 0-5) against
the same 6 runs one after another, on this machine, from the same warm stage cache.

    .venv/bin/python -m benchmarks run local_sweep [--runs 6] [--steps 150] [--unthrottled]

The sweep runs `hardware.max_parallel` runs at once (default: cores / cores per run), each with one torch
thread. `--unthrottled` also times the sweep as it was before max_parallel: every run at once, torch's
default thread count (hardware.max_parallel=<runs> hardware.num_threads=0). Rounds alternate the order
of the arms. Prints each arm's wall time and its ratio to the sequential runs'.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.harness import TINY, align_lab, arguments, machine, machine_line, ratios, report, schedule
from benchmarks.options import at_least

NEEDS = ()
SMOKE = ("--runs", "1", "--steps", "2", "--tiny", "--no-stage-run")  # the fewest processes


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__, tiny=True)
    parser.add_argument("--runs", type=at_least(1), default=6)
    parser.add_argument("--steps", type=at_least(1), default=150, help="train.steps (150: the default run)")
    parser.add_argument("--unthrottled", action="store_true")
    parser.add_argument("--no-stage-run", action="store_true", help="skip the untimed stage-building run")
    args = parser.parse_args(argv)
    print(machine_line(machine()), flush=True)
    world = list(TINY) if args.tiny else []
    common = [f"train.steps={args.steps}", "tracker=none", *world]
    seeds = ",".join(str(s) for s in range(args.runs))
    with tempfile.TemporaryDirectory(prefix="align_lab_sweep_") as tmp:
        out = Path(tmp)
        # the shared stages, once (its cache)
        if not args.no_stage_run:
            align_lab(["train.steps=1", "tracker=none", *world], out / "warm")

        def sequential(where: Path) -> None:
            for seed in range(args.runs):
                align_lab([*common, f"seed={seed}"], where / str(seed))

        def sweep(where: Path, *extra: str) -> None:  # -m before the overrides
            align_lab(
                [
                    "-m",
                    "hardware=submitit_local",
                    *common,
                    f"seed={seeds}",
                    f"hydra.sweep.dir={where}",
                    *extra,
                ],
            )

        arms = {
            "sequential": sequential,
            "local sweep": sweep,
            **(
                {
                    "unthrottled sweep": lambda w: sweep(
                        w, f"hardware.max_parallel={args.runs}", "hardware.num_threads=0"
                    )
                }
                if args.unthrottled
                else {}
            ),
        }
        rows = []
        for i, (r, arm) in enumerate(schedule(list(arms), args.rounds)):
            where, start = out / f"{i}", time.perf_counter()
            arms[arm](where)
            row = {"arm": arm, "round": r, "runs": args.runs, "wall s": time.perf_counter() - start}
            if arm != "sequential":
                row["max_parallel"] = json.loads((where / "study.json").read_text())["max_parallel"]
            rows.append(row)
            print(row, flush=True)
    wall = {arm: statistics.median(row["wall s"] for row in rows if row["arm"] == arm) for arm in arms}
    report("local_sweep", args, rows, ratio={"wall s over sequential": ratios(wall, "sequential")})


if __name__ == "__main__":
    main()
