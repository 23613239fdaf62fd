"""The Comparison: everything a report shows, computed by aggregate.py, rendered by report.py,
plots.py and wandb_report.py (a module of its own, so that notes.py can read it without importing the
aggregator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from align_lab.results.extract import KL

if TYPE_CHECKING:
    import pandas as pd

SFT = "SFT"  # the reference policy every run started from; its values are each run's `<metric>_sft`
Curve = tuple[np.ndarray, np.ndarray]


def sft_label(setting: str) -> str:
    """The group table's SFT row of one setting (its task and/or model, "task=toy_arith"): runs of other
    tasks or models started from other SFT policies, so each has its own row; "SFT" for one setting."""
    return f"{SFT} ({setting})" if setting else SFT


def is_sft(group: str) -> bool:
    """Whether a group-table row is an SFT reference row (sft_label), not a group of runs."""
    return group == SFT or str(group).startswith(f"{SFT} (")


@dataclass
class Comparison:
    by: list[str]
    metric: str
    budget: str  # generated_tokens | reward_queries | trained_tokens | wall_time | kl (extract.BUDGETS)
    baseline: str
    groups: list[str]  # sorted; every group that has a run, completed or not
    runs: pd.DataFrame  # one row per run, every status
    group_table: pd.DataFrame  # per group (SFT first, where logged): n, excluded, mean/lo/hi of FINAL_METRICS
    paired: pd.DataFrame  # final metric vs baseline, paired by seed
    common_budget: float  # the matched view's common point: compute, or a KL (budget kl)
    matched: pd.DataFrame  # metric at the common budget, per group
    matched_paired: pd.DataFrame  # the same, paired by seed vs matched_baseline
    matched_baseline: str  # the baseline, or the first group in the view when the baseline is not
    curves: dict[str, dict[str, list[Curve]]]  # x axis -> group -> per-run (x, metric)
    trajectories: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]  # (step, proxy, gold)
    notes: list[str] = field(default_factory=list)
    claims: pd.DataFrame | None = None  # one row per claim (claims.claim_table); None: no claims
    power: list | None = None  # one power.ClaimPower per claim; None: no claims
    noise: list = field(default_factory=list)  # noise.GroupNoise per group (eval/ metrics): eval share
    across_tasks: object = None  # across_tasks.AcrossTasks when the runs span tasks; None: one task
    headline: str = ""  # one sentence: what differs from the baseline beyond seed noise
    action: str = ""  # the line to act on: what is decided, and the seeds that would decide the rest
    min_effect_sd: float = 0.5  # the smallest effect of interest in SDs where a claim names none
    common_chosen: bool = False  # common_budget was given (compare --at-kl), not the smallest extent
    common_by: dict[str, float] = field(default_factory=dict)  # per SFT reference where runs span several
    robustness: list = field(default_factory=list)  # robust.Robustness per claim across a grid
    frontier_kl: float = float("nan")  # the frontier's common KL (matched_claims.kl_frontier); NaN: none

    @property
    def matched_column(self) -> str:
        return f"{self.metric}@{self.budget}"

    def common_said(self, unit: str = "") -> str:
        """The matched view's common point in words (matched.point_said)."""
        from align_lab.results.matched import point_said

        return point_said(self.common_budget, self.common_by, self.budget == KL, unit)
