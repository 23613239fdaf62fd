"""A tuned study's `tune:` checked against its sweep before anything runs (docs/studies.md, "Tuned
studies"): every arm a search space, an equal trial budget (unless allow_unequal), a trial seed that is
not among the claims' seeds. Pure functions: study/tuning.py runs what they return."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Tune:
    """`tune:` of the config; `trials` per arm after check_tune."""

    trials: dict[str, int]
    space: dict[str, dict[str, str]]  # arm -> {key: Hydra sweep, e.g. "tag(log, interval(1e-6, 1e-3))"}
    seed: int = 1000  # the trials' seed
    split: float = 0.2  # the trials' tuning_split
    metric: str = "eval/gold_reward"  # a key of each trial's summary.json
    direction: str = "maximize"
    allow_unequal: bool = False
    sampler_seed: int = 0  # Optuna's TPE sampler
    parallel: int = 1  # trials asked of Optuna and launched together
    arms: list[str] = field(default_factory=list)


def _budgets(trials, arms: list[str], allow_unequal: bool) -> dict[str, int]:
    """tune.trials (one number, or a mapping of arm to number) as {arm: trials}; unequal refused."""
    if isinstance(trials, dict):
        for arm in trials:
            if arm not in arms:
                raise ValueError(f"tune.trials.{arm}: no such arm; the sweep's arms are {', '.join(arms)}")
        missing = [a for a in arms if a not in trials]
        if missing:
            raise ValueError(f"tune.trials: no budget for arm {missing[0]}; give every arm its trials")
        budgets = dict(trials)
    else:
        budgets = dict.fromkeys(arms, trials)
    for arm, n in budgets.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"tune.trials={n!r} (arm {arm}): must be an integer >= 1")
    if len(set(budgets.values())) > 1 and not allow_unequal:
        listed = ", ".join(f"{a} {n}" for a, n in budgets.items())
        raise ValueError(
            f"tune.trials: unequal budgets ({listed}); a fair comparison tunes every arm on the same "
            "number of trials: one number, or tune.allow_unequal=true"
        )
    return budgets


def _renamed(space: dict[str, str]) -> dict[str, str]:
    """An arm's {key: search space} with each old flat key under its nested name (align_lab/aliases.py:
    algo.clip_high -> algo.clip.high), said once."""
    from align_lab import aliases

    renamed, notes = aliases.rename_overrides([f"{k}={v}" for k, v in space.items()])
    aliases.say(notes)
    return dict(o.split("=", 1) for o in renamed)


def check_tune(node: dict, arms: list[str], seeds: list[int], compare_by: str) -> Tune:
    """The validated `tune:` of a sweep whose arms are `arms` (their compare_by values) run on `seeds`;
    a one-line ValueError naming the key, the value and what is allowed."""
    keys = [f.name for f in dataclasses.fields(Tune) if f.name != "arms"]
    if not isinstance(node, dict):
        raise ValueError(f"tune={node!r}: must be a mapping of {', '.join(keys)} (or null: no tuning)")
    for key in node:
        if key not in keys:
            raise ValueError(f"tune.{key}: no such key; allowed: {', '.join(keys)}")
    for key in ("trials", "space"):
        if key not in node:
            raise ValueError(f"tune.{key}: missing; a tuned study needs trials and space")
    tune = Tune(**{**node, "trials": {}, "space": {}})
    space = node["space"]
    if not isinstance(space, dict):
        raise ValueError(f"tune.space={space!r}: must be a mapping of arm to {{key: search space}}")
    for arm in space:
        if arm not in arms:
            raise ValueError(f"tune.space.{arm}: no such arm; the sweep's arms are {', '.join(arms)}")
    for arm in arms:
        keys_of = space.get(arm)
        if not isinstance(keys_of, dict) or not keys_of:
            raise ValueError(
                f"tune.space.{arm}={keys_of!r}: every arm needs a search space, e.g. "
                '{algo.lr: "tag(log, interval(1e-6, 1e-3))"}'
            )
        for key in keys_of:
            if key.lstrip("+~") in ("seed", compare_by, "tuning_split"):
                raise ValueError(f"tune.space.{arm}.{key}: the study sets {key}; tune another key")
    if isinstance(tune.parallel, bool) or not isinstance(tune.parallel, int) or tune.parallel < 1:
        raise ValueError(
            f"tune.parallel={tune.parallel!r}: must be an integer >= 1 (trials launched together)"
        )
    if tune.direction not in DIRECTIONS:
        raise ValueError(f"tune.direction={tune.direction!r}: must be maximize or minimize")
    if isinstance(tune.split, bool) or not isinstance(tune.split, float | int) or not 0 < tune.split < 1:
        raise ValueError(f"tune.split={tune.split!r}: must be a share in (0, 1) of the training prompts")
    if not isinstance(tune.metric, str) or "/" not in tune.metric:
        raise ValueError(f"tune.metric={tune.metric!r}: must be a summary.json key, e.g. eval/gold_reward")
    for key, (least, most) in {"seed": (-(2**63), 2**64), "sampler_seed": (0, 2**31)}.items():
        value = getattr(tune, key)  # a trial's "seed=abc", numpy's 50 lines (fifth hunt of 2026-12-04)
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value < most:
            raise ValueError(f"tune.{key}={value!r}: must be an integer in [{least}, {most})")
    if tune.seed in seeds:
        raise ValueError(
            f"tune.seed={tune.seed}: among the sweep's seeds ({', '.join(map(str, seeds))}); the chosen "
            "values run on fresh seeds (the winner's curse), so tune on another seed"
        )
    budgets = _budgets(node["trials"], arms, bool(tune.allow_unequal))
    spaces = {arm: _renamed({str(k): str(v) for k, v in space[arm].items()}) for arm in arms}
    return dataclasses.replace(tune, trials=budgets, space=spaces, arms=list(arms))


def split_jobs(job_overrides, compare_by: str, default_seed: int) -> tuple[dict[str, list[str]], list[int]]:
    """The sweep's jobs as ({arm: its overrides without seed}, the seeds in order); an arm is named by
    its override of compare_by (algo=rloo: rloo)."""
    arms: dict[str, list[str]] = {}
    seeds: list[int] = []
    for overrides in job_overrides:
        rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "seed"]
        for o in overrides:
            if o.split("=", 1)[0].lstrip("+~") == "seed" and int(o.split("=", 1)[1]) not in seeds:
                seeds.append(int(o.split("=", 1)[1]))
        names = [o.split("=", 1)[1] for o in rest if o.split("=", 1)[0].lstrip("+~") == compare_by]
        if not names:
            raise ValueError(
                f"tune: the job {' '.join(overrides) or '(no overrides)'} sets no {compare_by} "
                "(compare_by); a tuned study's arms are its sweep's values of compare_by"
            )
        arms.setdefault(names[-1], rest)
    return arms, seeds or [default_seed]
