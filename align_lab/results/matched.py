"""Runs read at a common point of a budget: equal compute (a counter or the steps' wall time, which only
grow) or equal KL to the reference (`eval/kl`, which need not), for the matched view (compare
--budget) and for claims stated "at equal <budget>".

Each completed run's evaluation curve (the metric against the budget, in evaluation order, from the SFT
policy at 0 where the metric has an SFT value: the policy starts as the reference, KL 0) is read at the
common point, linearly between the two evaluations around it, never extrapolated. The common point is
the smallest extent among the runs read: for compute the final budget, for KL the peak KL (the largest
eval/kl of the curve; every curve reaches its own peak, so each run has a value there) unless one is
chosen (compare --at-kl). Runs of several tasks or models (several SFT references: two scales) each
get their own reference's common point, never another task's smallest budget. A KL curve is read where
it first reaches the point (Gao et al. 2023 compare reward at equal KL; a KL that falls later in training
is read on the way up). Pure computation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from align_lab.results import stats
from align_lab.results.extract import BUDGETS, KL, eval_curve, is_completed
from align_lab.results.runs import Run

if TYPE_CHECKING:
    import pandas as pd


def first_crossing(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, at: float) -> float:
    """y where the curve, its points in evaluation order, first reaches x = at: linear between the two
    points around it; NaN when no two consecutive points bracket `at` (never extrapolated)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)  # (evals,)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if not len(x) or not math.isfinite(at):
        return math.nan
    if len(x) == 1:
        return float(y[0]) if x[0] == at else math.nan
    lo, hi = np.minimum(x[:-1], x[1:]), np.maximum(x[:-1], x[1:])  # (evals - 1,) each segment's x range
    inside = np.flatnonzero((lo <= at) & (at <= hi))
    if not len(inside):
        return math.nan
    i = int(inside[0])
    if x[i + 1] == x[i]:
        return float(y[i])
    t = (at - x[i]) / (x[i + 1] - x[i])
    return float(y[i] + t * (y[i + 1] - y[i]))


@dataclass(frozen=True)
class Matched:
    """The common point and who was read there."""

    budget: str
    at: float  # the common point; NaN when no run has a curve on the budget
    chosen: bool  # given (--at-kl), not the smallest extent
    missed: tuple[int, ...]  # indices of runs read that never reach `at` (no value)
    at_by: dict[str, float] = field(default_factory=dict)  # per SFT reference, where the runs span several


def extent(budget: str, table: pd.DataFrame, i: int, curve: tuple[np.ndarray, np.ndarray]) -> float:
    """How far run i got on the budget: its final compute, or its curve's peak KL (NaN: none)."""
    if budget != KL:
        return float(table.at[i, BUDGETS[budget]])
    finite = curve[0][np.isfinite(curve[0])]
    return float(finite.max()) if len(finite) else math.nan


def add_matched(
    table: pd.DataFrame,
    runs: list[Run],
    metric: str,
    budget: str,
    column: str,
    rows: Sequence[int] | None = None,
    at: float | None = None,
    scopes: Sequence[str] | None = None,
) -> Matched:
    """Adds `column` to the runs table: the metric of each completed run (of `rows`, else every one) at
    the common point of `budget` among the runs of its scope (`scopes`: a label per run, its SFT
    reference; None: one scope); NaN for the others and for runs that never reach it."""
    read = [i for i, r in enumerate(runs) if is_completed(r) and (rows is None or i in rows)]
    curves = {i: eval_curve(runs[i], BUDGETS[budget], metric) for i in read}
    extents = {i: extent(budget, table, i, curves[i]) for i in read}
    placed = [i for i in read if extents[i] > 0]  # a run that never moved on the budget is not read
    scope = [str(s) for s in scopes] if scopes is not None else [""] * len(runs)
    commons = {
        s: at if at is not None else min(extents[i] for i in placed if scope[i] == s)
        for s in sorted({scope[i] for i in placed})
    }
    if column not in table:
        table[column] = math.nan
    value_at = first_crossing if budget == KL else stats.value_at  # KL may fall: its first crossing
    for i in placed:
        table.at[i, column] = value_at(*curves[i], commons[scope[i]])
    missed = tuple(i for i in placed if math.isnan(table.at[i, column]))
    common = at if at is not None else min(commons.values(), default=math.nan)
    return Matched(budget, common, at is not None, missed, commons if len(commons) > 1 and at is None else {})


def point_said(at: float, at_by: dict[str, float], kl: bool, unit: str = "") -> str:
    """The common point in words: "27,637 generated tokens", or, where the runs span several SFT references,
    each one's: "the common point of each SFT reference's runs (SFT (task=a) 27,637; SFT (task=b) 40,000
    generated tokens)"."""
    number = (lambda x: f"{x:.4g}") if kl else (lambda x: f"{x:,.0f}")
    if not at_by:
        return f"{number(at)} {unit}".strip()
    each = "; ".join(f"{ref} {number(x)}" for ref, x in at_by.items())
    return f"the common point of each SFT reference's runs ({each} {unit}".strip() + ")"


def kl_notes(matched: Matched, table: pd.DataFrame, runs: list[Run], read: object) -> list[str]:
    """The runs a KL-matched reading left out, by name, one note; [] when every run has a value. `read`:
    the metric of the KL-matched view, or the claim (claims.Claim) read at equal kl."""
    if not matched.missed or matched.budget != KL:
        return []
    what = f"The KL-matched view of {read}" if isinstance(read, str) else f"Claim '{read}'"
    rule = "chosen with --at-kl" if matched.chosen else "the smallest peak KL among them"
    listed = "; ".join(
        f"{table.at[i, 'group']} seed {table.at[i, 'seed']:g} (peak KL "
        f"{extent(KL, table, i, eval_curve(runs[i], BUDGETS[KL], BUDGETS[KL])):.4g}, {runs[i].folder})"
        for i in matched.missed
    )
    n = len(matched.missed)
    return [
        f"{what} at KL {matched.at:.4g} ({rule}): {n} run{'s' * (n > 1)} never reach{'es' * (n == 1)} it "
        f"along {'its' if n == 1 else 'their'} evaluations and {'is' if n == 1 else 'are'} left out (never "
        f"extrapolated): {listed}."
    ]
