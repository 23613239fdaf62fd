"""Runs that train.stop_at ended early (train/stop_at.py), said in a comparison: which, at what step and
what compute, and how they are compared (docs/compare.md "Runs that stopped early").

The rule: a stopped run's final values (the group tables, the paired tests, the claims) are its values at
its stop, carried forward and labelled so, against runs that trained on with more compute; the
compute-matched view is the comparison at equal compute. Its budget is the smallest final budget among
the completed runs, so it is at or below every stopped run's budget: no run is read past its stop, and
none is extrapolated. Pure: notes.py lists these notes with the others.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from align_lab.results.extract import BUDGETS, KL
from align_lab.results.runs import COMPLETED, Run

if TYPE_CHECKING:
    from align_lab.results.comparison import Comparison


def stopped_notes(c: Comparison, runs: list[Run]) -> list[str]:
    """One note per completed run that stopped early, then the rule; [] when none did."""
    table, label = c.runs, c.budget.replace("_", " ")
    by_folder = {str(r.folder): r for r in runs}
    budget_key = BUDGETS[c.budget]  # a counter, the steps' wall time, or the final eval/kl
    stopped = table[(table["status"] == COMPLETED) & table["stopped_at_step"].notna()]
    notes = []
    for row in stopped.itertuples():
        stop = by_folder[row.folder].summary["stopped"]
        spent = table.at[row.Index, budget_key] if budget_key in table else math.nan
        where = f"at KL {spent:.4g}" if c.budget == KL else f"after {spent:,.0f} {label}"
        notes.append(
            f"{row.group} seed {row.seed:g} stopped early at step {stop.get('step')} of {stop.get('steps')} "
            f"(train.stop_at: {stop.get('metric')} = {stop.get('value', math.nan):.3g} >= "
            f"{stop.get('threshold')}) {where} ({row.folder})."
        )
    if not notes:
        return []
    matched = (
        f"the compute-matched view compares every run at {c.common_said(label)}, at or below each "
        "stopped run's budget (equal compute, no run read past its stop)"
        if math.isfinite(c.common_budget)
        else "no run logged the budget, so no view compares them at equal compute"
    )
    if c.budget == KL:  # the smallest peak KL: at or below every run's peak, so not past a stop
        at = c.common_said("(eval/kl)") if c.common_by else f"KL {c.common_budget:.4g}"
        matched = f"the KL-matched view reads every run at {at} (no run read past its stop)"
    return notes + [
        f"Final values of the {len(notes)} run{'s' * (len(notes) > 1)} that stopped early are their values "
        f"at the stop, carried forward against runs that trained on with more compute; {matched}."
    ]
