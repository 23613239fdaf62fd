"""What a sequential study's recorded plan.json allows a rerun of its command: whether the record can be
gone on from at all, and whether this sweep's arms are the recorded waves' (waves.py calls both before
any wave is launched)."""

from __future__ import annotations

from pathlib import Path

from align_lab.results.plan_record import PLAN_FILE, read_record, record_problem


def _as_keys(overrides: list[str]) -> dict[str, str]:
    """{key: value} of Hydra overrides as typed (the last of a key wins, as in Hydra)."""
    return {o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[-1] for o in overrides}


def check_replay(state: dict, arms: list[list[str]], names: list[str], sweep_dir: Path) -> None:
    """Each recorded wave's jobs are this sweep's arms at the recorded seeds: a run key changed between
    looks (train.steps=2, now 4) would mix two configs in one claim's differences, so it is refused in
    one line naming the key, before Hydra's multirun.yaml is left rewritten (run_waves restores it)."""
    from align_lab.config import ConfigError

    for k, wave in enumerate(state["waves"]):
        for i, job in enumerate(wave["jobs"]):
            name = wave["arms"][i % len(wave["arms"])]
            was, now = _as_keys(job[:-1]), _as_keys(arms[names.index(name)]) if name in names else {}
            changed = sorted(key for key in {*was, *now} if was.get(key) != now.get(key))
            if changed:
                key = changed[0]
                then, here = (f"{key}={d[key]}" if key in d else f"no {key}" for d in (was, now))
                raise ConfigError(
                    f"hydra.sweep.dir={sweep_dir}: wave {k + 1} of its {PLAN_FILE} ran arm {name} with "
                    f"{then}, this sweep has {here}; a plan's runs keep one config across its looks: "
                    "rerun with the recorded value, or choose another hydra.sweep.dir"
                )


def unreadable_state(sweep_dir: Path) -> str | None:
    """Why the sweep folder's plan.json cannot be resumed from (plan_record.record_problem, or a
    field the plan loop goes on from that is missing), or None: none there, or it can."""
    problem = record_problem(sweep_dir)
    if problem is not None:
        return problem
    old = read_record(sweep_dir)
    if old is None:
        return None
    kinds = {"waves": list, "looks": list, "elapsed_s": (int, float)}
    for key, kind in kinds.items():
        if not isinstance(old.get(key), kind) or isinstance(old.get(key), bool):
            return f"{sweep_dir / PLAN_FILE}: not a plan record ({key}={old.get(key)!r})"
    return None
