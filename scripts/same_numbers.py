"""Same numbers before and after a refactor: every algorithm's short toy run, recorded and compared bit
for bit on one machine (docs/design.md "A refactor changes no number").

    .venv/bin/python scripts/same_numbers.py record before.json      # on the code before the change
    .venv/bin/python scripts/same_numbers.py check before.json       # after it: exit 1 on any change
    .venv/bin/python scripts/same_numbers.py check before.json --cases grpo ppo   # a few cases

A case is one run in this process (the toy world, 3 steps of 16 rows, one evaluation at the end, every
stage built once in a temporary cache): the default run, each `algo` choice, and the paths
the update step takes apart from them (micro-batches, two data-parallel processes, a stale rollout,
a multi-turn game). What is compared: every non-time value of every row of `metrics.jsonl` and of
`summary.json`, as exact float reprs. Float results differ between CPUs and thread counts, so a record
is compared only on the machine (and `hardware.num_threads`) that made it; the record names its CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# tests/conftest.py has the same sizes and compose(); this script keeps its own on purpose: a record is
# compared against later code, so its cases must not move when the tests' sizes do
SMALL = [
    "tracker=none",
    "task.n_demonstrations=512",
    "task.n_pairs=256",
    "sft.epochs=2",
    "reward.epochs=1",
    "train.steps=3",
    "train.rollout_size=16",
    "train.minibatch_size=8",
    "train.eval_every=0",
    "train.eval_samples=1",
    "train.checkpoint_every=1",
]
GAME = ["task=guess_number", "env=guess_number", "reward=verifier", "task.n_games=40"]
GOLD_SOURCE = "+reward.components.gold={weight: 1.0, source: {_target_: align_lab.rewards.GoldReward}}"
# a choice whose defaults do not fit 3 steps: PPO-max's critic warm-up (10 steps) must end before the run
# (run/cross_checks.py check_critic_warmup; before 2026-11-28 the case trained the critic alone)
FITS = {"ppo_max": ["algo.critic_pretrain_steps=2"]}
EXTRAS = {
    "grpo_micro2": ["algo=grpo", "train.micro_batch_size=2"],
    "ppo_micro2": ["algo=ppo", "train.micro_batch_size=2"],
    "grpo_whole_minibatch": ["algo=grpo", "train.minibatch_size=16"],
    "ppo_max_epochs2": ["algo=ppo_max", "algo.epochs=2", *FITS["ppo_max"]],
    "rloo_stale1": ["algo=rloo", "train.max_staleness=1"],
    "grpo_two_processes": ["algo=grpo", "hardware.processes=2", "rollout.seed_per_sample=true"],
    "dpo_two_processes": ["algo=dpo", "hardware.processes=2", "rollout.seed_per_sample=true"],
    # sampled pairs over two processes, seed 0: a step whose one sampled pair leaves a process none
    "sail_pr_two_processes": ["algo=sail_pr", "hardware.processes=2", "rollout.seed_per_sample=true"],
    "grpo_guess_number": ["algo=grpo", *GAME],
    "remax_guess_number": ["algo=remax", *GAME],
    # GDPO refuses a reward with one source: the toy world's gold reward and the word-count penalty
    "gdpo": ["algo=gdpo", "reward=combined", "~reward.components.rm", GOLD_SOURCE],
}
# what differs between two runs of the same config on one machine (peak RSS), or names the code
# rather than a result (the config digest covers each `_target_`)
SKIP_PREFIXES = ("time/", "perf/")
SKIP_KEYS = {
    "memory/peak_mb",
    "config_digest",
    "same_run",  # a digest of the config too (run/completed.py), its cache_dir a temporary folder's path
    "wall_s",
    "started",
    "finished",
    "host",
    "pid",
    "run_dir",
    "checkpoint",
    "code_digest",
    "stages",
    "inputs",  # digests of the user's files by their paths (run/inputs.py): none in these toy cases
    # the threads the rollouts sample on (issue 72; since 2026-11-29): the run's `threads` in every case
    # here (no resume), which is compared; a record made before lacks the key
    "sampling_threads",
}


def cases() -> dict[str, list[str]]:
    """Case name -> overrides: the default run, every algo choice, then EXTRAS."""
    from align_lab import registry

    return {"default": [], **{a: [f"algo={a}", *FITS.get(a, [])] for a in registry.choices("algo")}, **EXTRAS}


def compose(overrides: list[str]):
    """(config, group choices) as `python -m align_lab <overrides>` composes them."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from align_lab.run.defaults import apply_model_defaults

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
    names = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    with open_dict(cfg):
        del cfg["hydra"]
    apply_model_defaults(cfg, overrides, names.get("model"))
    return cfg, names


def run_case(overrides: list[str], run_dir: Path, cache_dir: Path) -> None:
    """One run of `overrides` on SMALL (task and reward keys left out where the case names its own)."""
    from align_lab.run.admission import admit_spec, spec_from_config
    from align_lab.run.execute import run

    own = {o.split("=")[0] for o in overrides if "=" in o}
    small = [o for o in SMALL if not ({"task", "reward"} & own and o.split(".")[0] in {"task", "reward"})]
    cfg, names = compose([*small, f"cache_dir={cache_dir}", *overrides])
    run(admit_spec(spec_from_config(cfg, names), run_dir))


def numbers(run_dir: Path) -> dict:
    """Every non-time value of the run's metrics rows and summary, floats as exact reprs."""

    def kept(row: dict) -> dict:
        return {
            k: (repr(v) if isinstance(v, float) else v)
            for k, v in sorted(row.items())
            if not k.startswith(SKIP_PREFIXES) and k not in SKIP_KEYS and not isinstance(v, (dict, list))
        }

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"metrics": [kept(r) for r in rows], "summary": kept(summary)}


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    flags = Path("/proc/cpuinfo").read_text()
    return f"{model}, {'AVX-512' if 'avx512f' in flags else 'AVX2'}"


def measure(names: list[str]) -> dict:
    """{case: numbers} for the cases `names`, each run in a fresh folder over one shared stage cache."""
    table, out = cases(), {}
    with tempfile.TemporaryDirectory(prefix="same_numbers_") as tmp:
        for i, name in enumerate(names, 1):
            start = time.perf_counter()
            run_dir = Path(tmp) / name
            try:
                run_case(table[name], run_dir, Path(tmp) / "cache")
                out[name] = numbers(run_dir)
            except Exception as e:  # a case that fails is a result too: its one line
                out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
            print(f"[{i}/{len(names)}] {name}: {time.perf_counter() - start:.1f} s", flush=True)
    return out


def comparable(case: dict) -> dict:
    """A recorded case less the keys skipped now (a record made before a key joined SKIP_KEYS has it)."""
    if "error" in case:
        return case

    def kept(row: dict) -> dict:
        return {k: v for k, v in row.items() if not k.startswith(SKIP_PREFIXES) and k not in SKIP_KEYS}

    return {"metrics": [kept(r) for r in case["metrics"]], "summary": kept(case["summary"])}


def differences(before: dict, after: dict) -> list[str]:
    """One line per case whose numbers moved, naming the first value that differs."""
    lines = []
    for name, old in before.items():
        new = after.get(name)
        if new == old:
            continue
        if new is None or "error" in new or "error" in old:
            lines.append(f"{name}: {old.get('error', 'ran')} -> {(new or {}).get('error', 'ran')}")
            continue
        first = next(
            (
                f"{where} {k}: {a.get(k)} -> {b.get(k)}"
                for where, a, b in [
                    *(
                        (f"step row {i + 1}", x, y)
                        for i, (x, y) in enumerate(zip(old["metrics"], new["metrics"], strict=False))
                    ),
                    ("summary", old["summary"], new["summary"]),
                ]
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            ),
            f"{len(old['metrics'])} -> {len(new['metrics'])} metric rows",
        )
        lines.append(f"{name}: {first}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=("record", "check"))
    parser.add_argument("file", type=Path)
    parser.add_argument("--cases", nargs="*", help="these cases only (default: all)")
    args = parser.parse_args(argv)
    names = args.cases or list(cases())
    unknown = sorted(set(names) - set(cases()))
    if unknown:
        parser.error(f"--cases: unknown {', '.join(unknown)}; allowed: {', '.join(cases())}")
    if args.action == "record":
        record = {"machine": machine(), "cases": measure(names)}
        args.file.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        failed = [n for n, v in record["cases"].items() if "error" in v]
        print(
            f"recorded {len(names)} cases on {record['machine']} in {args.file}"
            + (f"; failed: {failed}" if failed else "")
        )
        return 0
    record = json.loads(args.file.read_text())
    if record["machine"] != machine():
        print(f"{args.file} was recorded on {record['machine']}, this is {machine()}: floats may differ")
    before = {n: comparable(v) for n, v in record["cases"].items() if n in names}
    moved = differences(before, measure(list(before)))
    for line in moved:
        print("moved:", line)
    print(f"{len(before) - len(moved)} of {len(before)} cases give the same numbers bit for bit")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
