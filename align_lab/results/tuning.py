"""A tuned study's tuning, from its tuning.json (study/tuning.py): per arm its trial budget, its tuning
curve (the best value so far after each trial) and the values it chose, which its claims' runs used on
fresh seeds. compare prints these lines after the verdicts, and its report has them in a "Tuning"
section (docs/studies.md, "Tuned studies")."""

from __future__ import annotations

import json
import math
from pathlib import Path

RECORD = "tuning.json"


def best_so_far(values: list[float | None], direction: str) -> list[float | None]:
    """The tuning curve: after each trial, the best value of the completed trials so far (None: none
    yet; a failed or unfinished trial's value is None)."""
    better = max if direction == "maximize" else min
    out: list[float | None] = []
    best = None
    for v in values:
        if v is not None:
            best = v if best is None else better(best, v)
        out.append(best)
    return out


def read_tuning(folder: Path) -> dict | None:
    """<folder>/tuning.json, or None (not a tuned study, or one tuning_problem says why it cannot be read)."""
    if tuning_problem(folder) is not None:
        return None
    try:
        return json.loads((Path(folder) / RECORD).read_text())
    except (OSError, ValueError):
        return None


def tuning_problem(folder: Path) -> str | None:
    """Why the folder's tuning.json cannot be used, naming it, or None: it has none, or it reads as the
    record study/tuning.py writes. A named pipe hung compare, a torn one was left out with no word, a word
    where a number goes ended compare in Python's words, a list in a traceback (fifth hunt of 2026-12-04)."""
    from align_lab.file_kinds import special

    path = Path(folder) / RECORD
    if not path.exists():
        return None
    if kind := special(path):
        return f"{path}: {kind}, not a tuning record: not read"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        tuning_lines(record)  # every field, as its lines read them
        values = [(arm, t["number"], t["value"]) for arm, a in record["arms"].items() for t in a["trials"]]
        if bad := [v for v in values if v[2] is not None and not math.isfinite(v[2])]:  # NaN: a curve that
            # contradicted the choice beside it (fifth hunt of 2026-12-04, tu_nan)
            raise ValueError(
                f"arm {bad[0][0]}'s trial {bad[0][1]} has value {bad[0][2]}, not a finite number"
            )
    except (OSError, json.JSONDecodeError) as e:
        return f"{path}: cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        return f"{path}: not a tuning record ({type(e).__name__}: {e})"
    return None


def tuning_notes(folders: list[Path]) -> list[str]:
    """A note per folder whose tuning.json cannot be read: its tuning's lines are left out."""
    problems = [p for p in map(tuning_problem, folders) if p]
    return [
        f"{p}: the tuning's lines (each arm's chosen values and tuning curve) are left out" for p in problems
    ]


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def tuning_lines(record: dict) -> list[str]:
    """One line of settings, then per arm its choice and its tuning curve."""
    t, arms = record["tune"], record["arms"]
    budgets = sorted({a["budget"] for a in arms.values()})
    seeds = record.get("claim_seeds", [])
    lines = [
        f"tuning: {' / '.join(map(str, budgets))} trials per arm ({t['direction']} {t['metric']}), at seed "
        f"{t['seed']} on a {t['split']:g} tuning split of the training prompts; the claims ran the chosen "
        f"values on fresh seeds {', '.join(map(str, seeds))}"
    ]
    for arm, a in arms.items():
        values = [tr["value"] if tr["state"] == "COMPLETE" else None for tr in a["trials"]]
        curve = " ".join(_num(v) for v in best_so_far(values, t["direction"]))
        chosen = a.get("chosen")
        done = sum(v is not None for v in values)
        if chosen is None:
            lines.append(f"  {arm}: no completed trial ({len(values)} started of {a['budget']})")
            continue
        params = ", ".join(
            f"{k}={_num(v) if isinstance(v, float) else v}" for k, v in chosen["params"].items()
        )
        lines.append(
            f"  {arm}: chose {params} (trial {chosen['number']}, {t['metric']} {_num(chosen['value'])}); "
            f"{done}/{a['budget']} trials, best so far: {curve}"
        )
    return lines


def tuning_report_lines(folders: list[Path]) -> list[str]:
    """compare's lines for each folder that holds a tuning.json."""
    return [
        line for f in folders if (r := read_tuning(f)) is not None for line in [f"{f}:", *tuning_lines(r)]
    ]


def tuning_blocks(roots: list[Path]) -> list:
    """The report's "Tuning" section, for each root that holds a tuning.json."""
    from align_lab.results.render import Bullets, Heading, Paragraph

    blocks = []
    for root in roots:
        record = read_tuning(root)
        if record is not None:
            head, *arms = tuning_lines(record)
            blocks += [
                Heading("Tuning"),
                Paragraph(f"{root}/{RECORD}: {head}"),
                Bullets([a.strip() for a in arms]),
            ]
    return blocks
