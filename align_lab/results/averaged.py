"""What a comparison averaged, said exactly (issue 34 item 7): the runs a group's mean left out and why,
the CIs cut at their metric's range, why the compute-matched view is empty, curves too sparse to be
curves. Pure computation on a Comparison; notes.py lists these notes with the others, report.py says why
an empty view is empty.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from align_lab.results import stats
from align_lab.results.comparison import Comparison, is_sft
from align_lab.results.extract import KL
from align_lab.results.runs import COMPLETED, Run

if TYPE_CHECKING:
    import pandas as pd


def averaged_notes(c: Comparison, runs: list[Run]) -> list[str]:
    """The notes of this module, in the report's order."""
    notes = dropped_notes(c.group_table, c.runs, runs) + range_notes(c.group_table, c.runs)
    why = matched_empty_reason(c)  # with no budget at all, the budget notes say it already
    notes += [why] if why and math.isfinite(c.common_budget) else []
    return notes + two_point_notes(c.curves.get("step", {}))


def _why_missing(run: Run | None, key: str) -> str:
    """Why a completed run has no finite value of key: what summary.json says, or that it never logged it."""
    if run is not None and key in run.summary:
        value = run.summary[key]
        return "NaN in summary.json" if isinstance(value, float) else f"{value!r} in summary.json"
    if run is not None and any(key in m for m in run.metrics):
        return "no finite value in metrics.jsonl"
    return "never logged"


def dropped_notes(group_table: pd.DataFrame, table: pd.DataFrame, runs: list[Run]) -> list[str]:
    """Per group and column averaged over fewer runs than the group's completed n: which runs were
    left out of that mean, and why (a NaN final metric, a value never logged)."""
    by_folder = {str(r.folder): r for r in runs}
    done = table[table["status"] == COMPLETED]
    notes = []
    for _, row in group_table[~group_table["group"].map(is_sft)].iterrows():
        for key in [k.removesuffix(":n") for k in row.index if k.endswith(":n")]:
            n = row[f"{key}:n"]
            if not 0 < n < row["n"] or key not in done:
                continue
            mine = done[(done["group"] == row["group"]) & done[key].isna()]
            left = "; ".join(
                f"seed {r['seed']:g} ({r['folder']}): {_why_missing(by_folder.get(r['folder']), key)}"
                for _, r in mine.iterrows()
            )
            notes.append(
                f"{row['group']}'s {key} averages {n} of its {row['n']} completed runs; left out: {left}."
            )
    return notes


def range_notes(group_table: pd.DataFrame, runs: pd.DataFrame | None = None) -> list[str]:
    """Which group CIs were cut at their metric's range (stats.metric_range): the t interval reached past
    a bound the mean cannot pass (a rate above 1, a wall time below 0)."""
    cut = []
    for _, row in group_table.iterrows():
        for key in [k.removesuffix(":n") for k in row.index if k.endswith(":n")]:
            lo_bound, hi_bound = stats.metric_range(key, runs)
            mean, lo, hi = row[f"{key}:mean"], row[f"{key}:lo"], row[f"{key}:hi"]
            if (lo == lo_bound and mean > lo) or (hi == hi_bound and mean < hi):
                cut.append(f"{row['group']} {key}")
    if not cut:
        return []
    return [
        f"CIs cut at their metric's range (rates in [0, 1], times, counts, lengths and memory >= 0; the "
        f"true mean lies inside, so coverage is unchanged): {', '.join(cut)}."
    ]


def matched_empty_reason(c: Comparison) -> str | None:
    """Why the compute-matched view has no number (None when it has one)."""
    if "n" in c.matched and (c.matched.get(f"{c.matched_column}:n", c.matched["n"]) > 0).any():
        return None
    label = c.budget.replace("_", " ")
    if c.budget == KL:
        return (
            f"The KL-matched view is empty: no completed run's {c.metric} curve reaches KL "
            f"{c.common_said('(eval/kl)')} along its evaluations, or none logged eval/kl."
        )
    if not math.isfinite(c.common_budget):
        hint = "" if c.budget == "trained_tokens" else "; --budget trained_tokens places offline runs"
        return (
            f"The compute-matched view is empty: no completed run used or logged {label} (offline "
            f"pairwise training generates none, and runs that are not completed do not count){hint}."
        )
    return (
        f"The compute-matched view is empty: no completed run's {c.metric} curve reaches the common budget "
        f"({c.common_said(label)}): none evaluated {c.metric} over that range."
    )


def two_point_notes(curves: dict[str, list]) -> list[str]:
    """A note when every run's evaluation curve has 2 points (or 1): the line between them is drawn, not
    measured, and the compute-matched view interpolates along it."""
    counts = [len(x) for runs in curves.values() for x, _ in runs if len(x)]
    if not counts or max(counts) > 2:
        return []
    if max(counts) == 1:
        return [
            "Every run's curve has 1 evaluation point: no curve to draw; train.eval_every evaluates "
            "more often."
        ]
    return [
        "Every run's curve has at most 2 evaluation points (e.g. the SFT start and the final one): the "
        "curves and the compute-matched view draw a straight line between them, not measured values; "
        "train.eval_every evaluates more often."
    ]
