"""Wall time of bounded-staleness runs with and without async rollouts (train.async_rollouts), side by side.

    .venv/bin/python -m benchmarks run async_rollouts                        # the toy world
    .venv/bin/python -m benchmarks run async_rollouts --world smollm2 --steps 4

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

import statistics
import tempfile
from pathlib import Path

from benchmarks.harness import TINY, align_lab, arguments, machine, machine_line, ratios, report, schedule
from benchmarks.options import at_least, names

NEEDS = ()
SMOKE = (
    "--world",
    "tiny",
    "--steps",
    "3",
    "--rounds",
    "1",
    "--settings",
    "k=1 async",  # one setting, the async path: the fewest processes
    "--threads",
    "1",
    "--no-stage-run",
)
WORLDS = {
    # the default run (toy_prefs, tiny_llama, REINFORCE++, 64 responses per step), shorter
    "toy": ["train.eval_every=0", "train.checkpoint_every=0"],
    "tiny": ["train.eval_every=0", "train.checkpoint_every=0", *TINY],  # harness.TINY: the smoke test's
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


def mean(values: list[float]) -> float:
    """NaN for none (the last step queues no rollout, so a short run may log no sampling time)."""
    return statistics.mean(values) if values else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__, rounds=2)
    parser.add_argument("--world", choices=sorted(WORLDS), default="toy")
    parser.add_argument("--steps", type=at_least(1), default=20)
    parser.add_argument("--threads", default="null", help="hardware.num_threads (null: every allowed core)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="stage cache (default: $ALIGN_LAB_CACHE or the user's)",
    )
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names of SETTINGS")
    parser.add_argument("--no-stage-run", action="store_true", help="skip the untimed stage-building run")
    args = parser.parse_args(argv)
    common = [
        *WORLDS[args.world],
        "tracker=none",
        f"train.steps={args.steps}",
        "rollout.seed_per_sample=true",
        f"hardware.num_threads={args.threads}",
    ]
    chosen = {name: SETTINGS[name] for name in names(args.settings, list(SETTINGS), "--settings")}
    print(machine_line(machine()), flush=True)
    runs: dict[str, list] = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory(prefix="align_lab_async_") as tmp:
        cache = [f"cache_dir={args.cache}"] if args.cache else []
        if not args.no_stage_run:  # the stages, untimed
            align_lab([*common, *cache, "train.steps=1", "train.max_staleness=0"], Path(tmp) / "warm")
        for i, (r, name) in enumerate(schedule(list(chosen), args.rounds)):
            run = align_lab([*common, *cache, *chosen[name]], Path(tmp) / f"r{r}_{i}")
            runs[name].append(run)
            print(f"round {r} {name}: loop {sum(x['time/step_s'] for x in run.metrics):.1f} s", flush=True)
    rows = []
    for name, done in runs.items():
        key = "time/rollout_sampling_s" if "async" in name else "time/rollout_s"
        rows.append(
            {
                "setting": name,
                "loop s (median)": statistics.median(sum(x["time/step_s"] for x in r.metrics) for r in done),
                "step s (median, steps 2..)": statistics.median(
                    x["time/step_s"] for r in done for x in r.metrics[1:]
                ),
                "sampling s/rollout": mean([x[key] for r in done for x in r.metrics[1:] if key in x]),
                "process s": statistics.median(r.wall_s for r in done),
                "gold reward": ", ".join(
                    f"{g:.4f}" for g in sorted({r.summary["eval/gold_reward"] for r in done})
                ),
            }
        )
    loop = {row["setting"]: row["loop s (median)"] for row in rows}
    report(
        "async_rollouts",
        args,
        rows,
        ratio={f"loop s over {rows[0]['setting']}": ratios(loop, rows[0]["setting"])},
    )


if __name__ == "__main__":
    main()
