"""Claims read at equal <budget> (claims.py's "... at equal kl"), and the reward-KL frontier's point at
the common KL: the readings of matched.py put into the claim table, the power lines and the frontier.
Pure computation; aggregate.py calls it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from align_lab.results.claims import Claim
from align_lab.results.extract import BUDGETS, KL
from align_lab.results.matched import Matched, add_matched
from align_lab.results.power import power_table
from align_lab.results.runs import Run
from align_lab.results.stats import fmt

if TYPE_CHECKING:
    import pandas as pd

GOLD = "eval/gold_reward"  # the frontier's y
KL_METRIC = BUDGETS[KL]  # the frontier's x
FRONTIER_COLUMN = f"{GOLD}@{KL}"  # each run's gold reward at the frontier's common KL


def where(claim: Claim, matched: Matched) -> str:
    """Where a claim at equal <budget> was read: `at kl 0.3 (the smallest peak KL of its arms' runs)`."""
    extent = "peak KL" if claim.at == KL else f"final {claim.at.replace('_', ' ')}"
    return f"read at {claim.at} {fmt(matched.at)}, the smallest {extent} of its arms' runs"


def claims_at(table: pd.DataFrame, claims: list[Claim], at_equal: dict[Claim, Matched]) -> pd.DataFrame:
    """The claim table with each claim at equal <budget> saying where it was read (its `why` first)."""
    for i, claim in enumerate(claims):
        if claim in at_equal:
            why = table.at[i, "why"]
            table.at[i, "why"] = where(claim, at_equal[claim]) + (f"; {why}" if why else "")
    return table


def matched_power(claims: list[Claim], table: pd.DataFrame, min_effect_sd: float) -> list:
    """power.power_table of the claims, a claim at equal <budget> sized on its matched values (between
    two evaluations: no per-sample records, so no evaluation split)."""
    read = [replace(c, metric=c.column, at=None) for c in claims]
    power = power_table(read, table, min_effect_sd=min_effect_sd)
    unsplit = "eval split not computed: the value at equal budget lies between two evaluations"
    return [
        replace(p, claim=str(c), eval_var=math.nan, seed_var=math.nan, note=unsplit) if c.at else p
        for c, p in zip(claims, power, strict=True)
    ]


def kl_frontier(table: pd.DataFrame, runs: list[Run], view: Matched | None, at_kl: float | None) -> Matched:
    """The frontier's matched point: each completed run's gold reward at the common KL (column
    FRONTIER_COLUMN). `view`: the KL-matched view when it already read the gold reward there."""
    if view is not None and view.budget == KL:
        return view
    if GOLD not in table or KL_METRIC not in table or not table[GOLD].notna().any():
        return Matched(KL, math.nan, False, ())
    return add_matched(table, runs, GOLD, KL, FRONTIER_COLUMN, at=at_kl)
