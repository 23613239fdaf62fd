"""Step time of a run beside another process: two runs at once, and one beside a busy thread, over alone.

    .venv/bin/python -m benchmarks run beside --world smollm2 --rounds 2 \
        --env default --env OMP_WAIT_POLICY=PASSIVE --env GOMP_SPINCOUNT=10000

Every run is a real `python -m align_lab` process with no thread key (`hardware.num_threads: null`: every
core it may use), as a user starts it. Arms: `solo` (the run alone); `pair` (two runs started together,
each one's step time; the arm's figure is the slower of the two); `busy` (one run beside a
`python -c "while True: pass"` process, started before the run and killed after it). A step's time is
metrics.jsonl's `time/step_s`; a run's figure is the median over its steps after the first (the
warm-up). Every arm runs under each `--env` variant (`default`: the environment as it is; `KEY=VALUE`:
that variable set in the run's environment, before libgomp reads it at torch's first import). A first,
untimed run builds the world's stages. Rounds rotate the order of (variant, arm) pairs (harness.schedule).
The last lines are `ratio beside/solo <variant>: pair <r> busy <r>` (the target of issue 38: each at
most ~2.2). Worlds: `smollm2` (GRPO on arith_word, 2 prompts x 4, 32 new tokens, 5 steps), `toy`
(the default toy run, 20 steps) and `tiny` (the toy world at the tests' sizes: the smoke test's).
docs/scaling_out.md, "Beside another process", says why.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.harness import TINY, align_lab, arguments, machine, machine_line, ratios, report, schedule
from benchmarks.options import at_least

NEEDS = ()
SMOKE = ("--world", "tiny", "--steps", "2", "--env", "default", "--no-stage-run")  # step_s needs 2 steps
ARMS = ("solo", "pair", "busy")
WORLDS = {
    "toy": ["train.steps=20", "tracker=none"],
    "tiny": ["train.steps=3", "tracker=none", *TINY],  # harness.TINY: the smoke test's
    "smollm2": [
        "model=smollm2_135m",
        "task=arith_word",
        "reward=verifier",
        "algo=grpo",
        "algo.group_size=4",
        "train.rollout_size=8",
        "train.minibatch_size=8",
        "model.max_response_tokens=32",
        "train.steps=5",
        "train.eval_every=0",
        "task.n_eval=4",
        "train.eval_samples=1",
        "train.keep_checkpoint=false",
        "tracker=none",
    ],
}


def variant_env(variant: str) -> dict[str, str]:
    """`default` -> {}; `KEY=VALUE` -> {KEY: VALUE}; anything else: one line naming it."""
    if variant == "default":
        return {}
    key, sep, value = variant.partition("=")
    if not sep or not key:
        raise SystemExit(f"--env {variant!r}: must be 'default' or KEY=VALUE (e.g. OMP_WAIT_POLICY=PASSIVE)")
    return {key: value}


def step_s(metrics: list[dict]) -> float:
    """The median `time/step_s` over the steps after the first (the first: the warm-up)."""
    steps = [row["time/step_s"] for row in metrics if "time/step_s" in row]
    if len(steps) < 2:
        raise SystemExit(f"beside: a run logged {len(steps)} steps; it needs 2 or more (--steps)")
    return statistics.median(steps[1:])


def solo(overrides: list[str], where: Path, env: dict) -> list[float]:
    return [step_s(align_lab(overrides, where / "solo", env).metrics)]


def pair(overrides: list[str], where: Path, env: dict) -> list[float]:
    """Two runs started together, each in its own folder: each one's step time."""
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(align_lab, overrides, where / f"pair{i}", env) for i in range(2)]
        return [step_s(run.result().metrics) for run in runs]


def busy(overrides: list[str], where: Path, env: dict) -> list[float]:
    """One run beside a busy single-thread process, started before it and killed after it."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        return [step_s(align_lab(overrides, where / "busy", env).metrics)]
    finally:
        spinner.kill()
        spinner.wait()


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__)
    parser.add_argument("--world", choices=list(WORLDS), default="smollm2")
    parser.add_argument("--steps", type=at_least(1), default=None, help="train.steps (default: the world's)")
    parser.add_argument("--env", action="append", default=None, help="'default' or KEY=VALUE; repeatable")
    parser.add_argument("--no-stage-run", action="store_true", help="skip the untimed stage-building run")
    args = parser.parse_args(argv)
    variants = args.env or ["default"]
    envs = {v: variant_env(v) for v in variants}
    overrides = [o for o in WORLDS[args.world] if not (args.steps and o.startswith("train.steps="))]
    overrides += [f"train.steps={args.steps}"] if args.steps else []
    print(machine_line(machine()), flush=True)
    arms = {"solo": solo, "pair": pair, "busy": busy}
    rows = []
    with tempfile.TemporaryDirectory(prefix="align_lab_beside_") as tmp:
        out = Path(tmp)
        warm = [o for o in overrides if not o.startswith("train.steps=")]
        if not args.no_stage_run:
            align_lab([*warm, "train.steps=1"], out / "warm")  # the world's stages, once, untimed
        pairs = [f"{v}|{a}" for v in variants for a in ARMS]
        for i, (r, both) in enumerate(schedule(pairs, args.rounds)):
            variant, arm = both.split("|")
            steps = arms[arm](overrides, out / str(i), envs[variant])
            row = {"env": variant, "arm": arm, "round": r, "step s": max(steps)}
            row["runs' step s"] = " ".join(f"{s:.3f}" for s in steps)
            rows.append(row)
            print(row, flush=True)
    ratio = {}
    for v in variants:
        of = {a: [x["step s"] for x in rows if x["env"] == v and x["arm"] == a] for a in ARMS}
        median = {a: statistics.median(s) for a, s in of.items()}
        ratio[f"beside/solo {v}"] = {a: x for a, x in ratios(median, "solo").items() if a != "solo"}
    report("beside", args, rows, ratio=ratio)


if __name__ == "__main__":
    main()
