"""A sequential study's record, `<study folder>/plan.json` (written by the launcher's plan loop,
align_lab/study/waves.py): its plan, claims, waves and looks; and the lines that say
each claim's verdict and the look that decided it (printed by the launcher and by compare)."""

from __future__ import annotations

import json
from pathlib import Path

from align_lab.file_kinds import special

PLAN_FILE = "plan.json"


def read_record(folder: Path) -> dict | None:
    """The folder's plan.json, or None when it has none or it cannot be read as a plan record (a reader
    that must not pass over a damaged one asks record_problem why)."""
    if record_problem(folder) is not None:
        return None
    try:
        record = json.loads((Path(folder) / PLAN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def record_problem(folder: Path) -> str | None:
    """Why the folder's plan.json cannot be used, in words naming it, or None when it has none or it
    reads as a plan record (JSON of the plan's arms, claims and looks, as the launcher writes it)."""
    path = Path(folder) / PLAN_FILE
    if not path.exists():
        return None
    if kind := special(path):  # its read waited for ever (fourth hunt of 2026-12-04, pc_Q2)
        return f"{path}: {kind}, not a plan record: not read"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"{path}: cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    try:
        if not isinstance(record, dict):
            raise TypeError(f"a JSON {type(record).__name__}, not an object")
        verdict_lines(record)  # every field a reader uses, of the types it uses them as
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        return f"{path}: not a plan record ({type(e).__name__}: {e})"
    return None


def seeds_run(record: dict) -> dict[str, int]:
    """Seeds each arm was given over the waves launched."""
    out = {arm: 0 for arm in record.get("arms", [])}
    for wave in record.get("waves", []):
        seeds = wave.get("seeds", [])
        if not isinstance(seeds, list):  # "0,1" was 3 seeds run (fourth hunt of 2026-12-04, pr_Q4)
            raise TypeError(f"waves[].seeds={seeds!r}: not a list of seeds")
        for arm in wave.get("arms", []):
            out[arm] = out.get(arm, 0) + len(seeds)
    return out


def verdict_lines(record: dict) -> list[str]:
    """The plan's looks and why it stopped, then one line per claim: its verdict and the look (and
    seeds per arm) that decided it, or its last p against that look's level."""
    looks = record.get("looks", [])
    seeds = ", ".join(f"{arm} {n}" for arm, n in seeds_run(record).items())
    stopped = record.get("stopped") or "still running (rerun the command to go on)"
    # issue 73: with a wave's runs failed, "0 looks at  seeds per arm; stopped: still running"
    said = (
        f"{len(looks)} looks at {', '.join(str(lk['seeds']) for lk in looks)} seeds per arm"
        if looks
        else (
            "no look yet (a look follows a wave whose runs all completed; a rerun runs its failed runs again)"
        )
    )
    lines = [f"plan: {said}; stopped: {stopped}; seeds run: {seeds}"]
    for j, claim in enumerate(record.get("claims", [])):
        at = next((lk for lk in looks if lk["decided"][j]), None)
        if at is not None:
            lines.append(
                f"  {at['decided'][j].upper():<12} {claim}: at look {at['index'] + 1} ({at['n'][j]} seeds), "
                f"p {at['p'][j]:.3g} <= level {at['level'][j]:.3g}"
            )
        elif looks:
            last = looks[-1]
            lines.append(
                f"  {'INCONCLUSIVE':<12} {claim}: open after look {last['index'] + 1} "
                f"({last['n'][j]} seeds), "
                f"p {last['p'][j]:.3g}, level {last['level'][j]:.3g}"
            )
    return lines


def plan_notes(folders: list[Path]) -> list[str]:
    """A note per folder whose plan.json cannot be read: its sequential plan's verdicts, the study's,
    are left out (plan_lines and the report show a plan's verdicts only when it reads)."""
    problems = [p for p in map(record_problem, folders) if p]
    return [
        f"{p}: the sequential plan's looks and verdicts (the study's verdicts) are left out" for p in problems
    ]


def plan_lines(folders: list[Path]) -> list[str]:
    """A sequential study's looks and each claim's verdict at its look, from the folders' plan.json."""
    records = [(f, read_record(f)) for f in folders]
    head = "sequential plan (plan.json): its verdicts, not the fixed-design claim test above, are the study's"
    return [line for f, r in records if r is not None for line in [f"{f}: {head}", *verdict_lines(r)]]
