"""Runs -> a Comparison: per-group tables with CIs, paired tests against a baseline, a
compute-matched view and curves. Pure computation; rendering lives in report.py and plots.py.

Only completed runs enter statistics; every other run stays in `runs` with its status, and a note
says how many were left out.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from align_lab.results import stats
from align_lab.results.claims import Claim, check_claims, claim_table
from align_lab.results.extract import (
    BUDGETS,
    FINAL_METRICS,
    WALL_TIME,
    eval_curve,
    final_value,
    is_completed,
    paired_curve,
    run_row,
)
from align_lab.results.runs import COMPLETED, Run, group_label

if TYPE_CHECKING:
    import pandas as pd

ALPHA = 0.05
UNEQUAL_COMPUTE = 1.10  # final budgets differing by more than 10% are called unequal
Curve = tuple[np.ndarray, np.ndarray]


@dataclass
class Comparison:
    by: list[str]
    metric: str
    budget: str  # generated_tokens | reward_queries
    baseline: str
    groups: list[str]  # sorted; every group that has a run, completed or not
    runs: pd.DataFrame  # one row per run, every status
    group_table: pd.DataFrame  # per group: n, excluded, mean/lo/hi of FINAL_METRICS
    paired: pd.DataFrame  # final metric vs baseline, paired by seed
    common_budget: float
    matched: pd.DataFrame  # metric at the common budget, per group
    matched_paired: pd.DataFrame  # the same, paired by seed vs matched_baseline
    matched_baseline: str  # the baseline, or the first group in the view when the baseline is not
    curves: dict[str, dict[str, list[Curve]]]  # x axis -> group -> per-run (x, metric)
    trajectories: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]  # (step, proxy, gold)
    notes: list[str] = field(default_factory=list)
    claims: pd.DataFrame | None = None  # one row per claim (claims.claim_table); None: no claims

    @property
    def matched_column(self) -> str:
        return f"{self.metric}@{self.budget}"


def mean_ci(values: np.ndarray) -> tuple[int, float, float, float]:
    """(n, mean, lo, hi) of the finite values; bootstrap with the fixed seed."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return 0, math.nan, math.nan, math.nan
    lo, hi = stats.bootstrap_ci(x)
    return len(x), float(x.mean()), lo, hi


def group_table(runs: pd.DataFrame, groups: list[str], columns: list[str]) -> pd.DataFrame:
    """Per group: n completed, excluded (other statuses), and `<col>:mean|lo|hi` for each column."""
    import pandas as pd

    rows = []
    for g in groups:
        mine = runs[runs["group"] == g]
        done = mine[mine["status"] == COMPLETED]
        row: dict = {"group": g, "n": len(done), "excluded": len(mine) - len(done)}
        for col in columns:
            _, row[f"{col}:mean"], row[f"{col}:lo"], row[f"{col}:hi"] = mean_ci(done[col].to_numpy())
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(diff: float, lo: float, hi: float, p_adjusted: float, n: int, baseline: str) -> str:
    """A plain-language reading of a paired difference."""
    if n == 0:
        return "no seeds in common with the baseline"
    if n == 1:
        return "one paired seed: no CI, within seed noise"
    if not (lo > 0 or hi < 0) or not p_adjusted < ALPHA:
        return "within seed noise"
    return f"{'higher' if diff > 0 else 'lower'} than {baseline}, beyond seed noise"


def paired_table(runs: pd.DataFrame, column: str, groups: list[str], baseline: str) -> pd.DataFrame:
    """Each group vs the baseline on `column`, runs paired by seed (a seed's runs averaged).

    diff = group - baseline per seed; mean diff, paired bootstrap CI, exact sign-flip p
    (Monte-Carlo above 12 pairs), Holm-adjusted across the compared groups.
    """
    import pandas as pd

    done = runs[(runs["status"] == COMPLETED) & runs["seed"].notna() & runs[column].notna()]
    per_seed = done.groupby(["group", "seed"])[column].mean()
    present = set(per_seed.index.get_level_values(0))
    by_group = {g: per_seed[g] if g in present else pd.Series(dtype=float) for g in groups}
    base = by_group.get(baseline, pd.Series(dtype=float))
    rows = []
    for g in groups:
        if g == baseline:
            continue
        mine = by_group[g]
        seeds = sorted(set(mine.index) & set(base.index))
        diffs = np.array([mine[s] - base[s] for s in seeds], dtype=float)  # (pairs,)
        n, mean, lo, hi = mean_ci(diffs)
        rows.append(
            {
                "group": g,
                "baseline": baseline,
                "n_pairs": n,
                "seeds": ",".join(str(int(s)) for s in seeds),
                "group_mean": float(np.mean([mine[s] for s in seeds])) if seeds else math.nan,
                "baseline_mean": float(np.mean([base[s] for s in seeds])) if seeds else math.nan,
                "diff": mean,
                "diff_lo": lo,
                "diff_hi": hi,
                "p": stats.sign_flip_p_value(diffs),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=["group", "baseline", "n_pairs", "seeds", "group_mean", "baseline_mean"]
        + ["diff", "diff_lo", "diff_hi", "p"],
    )
    table["p_holm"] = stats.holm(table["p"].to_numpy(dtype=float)) if len(table) else []
    table["verdict"] = [
        verdict(r.diff, r.diff_lo, r.diff_hi, r.p_holm, int(r.n_pairs), baseline) for r in table.itertuples()
    ]
    return table


def natural_key(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order first (seed 2 before seed 10), then labels alphabetically."""
    try:
        return 0, float(label), label
    except ValueError:
        return 1, 0.0, label


def choose_baseline(groups: list[str], runs: pd.DataFrame, baseline: str | None) -> str:
    """The named group, else the first group (alphabetically) that has a completed run."""
    if baseline is not None:
        if baseline not in groups:
            raise ValueError(f"--baseline {baseline}: no such group; groups are {', '.join(groups)}")
        return baseline
    done = set(runs.loc[runs["status"] == COMPLETED, "group"])
    return next((g for g in groups if g in done), groups[0] if groups else "")


def band(curves: list[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(grid, mean, lo, hi): the runs' curves interpolated on their shared x range, mean and 95% CI."""
    clean = [stats.curve_xy(x, y) for x, y in curves]
    grid = stats.common_grid(clean)
    if len(grid) == 0:
        empty = np.array([])
        return empty, empty, empty, empty
    matrix = np.stack([np.interp(grid, x, y) for x, y in clean if len(x)])  # (runs, points)
    return (grid, *stats.bootstrap_band(matrix))


def _budget_notes(runs: pd.DataFrame, budget_key: str, label: str) -> list[str]:
    done = runs[runs["status"] == COMPLETED]
    finals = done[budget_key]
    ok = finals[finals > 0]
    notes = []
    if len(ok) and ok.max() > UNEQUAL_COMPUTE * ok.min():
        lo, hi = done.loc[ok.idxmin()], done.loc[ok.idxmax()]
        notes.append(
            f"Final metrics are at unequal compute: {label} range from {lo[budget_key]:,.0f} "
            f"({lo['group']}, seed {lo['seed']:g}) to {hi[budget_key]:,.0f} ({hi['group']}, seed "
            f"{hi['seed']:g}); the compute-matched view compares every group at the same budget."
        )
    lacking = sorted(set(done.loc[~(finals > 0), "group"]))
    if lacking:
        notes.append(
            f"Not in the compute-matched view (no {label} used or logged, e.g. offline pairwise "
            f"training): {', '.join(lacking)}."
        )
    return notes


def _pairing_notes(runs: pd.DataFrame, baseline: str, paired: pd.DataFrame) -> list[str]:
    done = runs[runs["status"] == COMPLETED]
    notes = []
    for (g, s), n in Counter(zip(done["group"], done["seed"], strict=True)).items():
        if n > 1:
            notes.append(f"{g} has {n} completed runs with seed {s:g}; their mean is used for pairing.")
    if len(paired):
        n_max = int(paired["n_pairs"].max())
        if 0 < n_max < 6:
            notes.append(
                f"With {n_max} paired seeds the smallest possible exact p-value is 2/2^{n_max} = "
                f"{stats.smallest_p_value(n_max):.3g}: no difference can reach p < {ALPHA} "
                "(6 seeds are needed); read the CIs."
            )
    base_seeds = set(done.loc[done["group"] == baseline, "seed"])
    for g in sorted(set(done["group"]) - {baseline}):
        unpaired = sorted(set(done.loc[done["group"] == g, "seed"]) ^ base_seeds)
        if unpaired:
            notes.append(
                f"{g} vs {baseline}: seeds {', '.join(f'{s:g}' for s in unpaired)} are not in both "
                "groups and are left out of the paired comparison."
            )
    return notes


def aggregate(
    runs: list[Run],
    by: list[str],
    metric: str = "eval/gold_reward",
    budget: str = "generated_tokens",
    baseline: str | None = None,
    problems: list[str] | None = None,
    claims: list[Claim] | None = None,
) -> Comparison:
    """Every table and curve of the report, from the runs (any status); each claim tested."""
    import pandas as pd

    if budget not in BUDGETS:
        raise ValueError(f"--budget {budget}: allowed values are {', '.join(BUDGETS)}")
    budget_key = BUDGETS[budget]
    table = pd.DataFrame([run_row(r, by, metric) for r in runs])
    if table.empty:
        raise ValueError("no run folders found (a run folder holds .hydra/config.yaml or summary.json)")
    groups = sorted(set(table["group"]), key=natural_key)
    base = choose_baseline(groups, table, baseline)
    if claims:
        reported = {k for r in runs for k in [*r.summary, *(k for m in r.metrics for k in m)]}
        check_claims(claims, groups, reported)
        for m in {c.metric for c in claims} - set(table.columns):
            table[m] = [final_value(r, m) for r in runs]
    done_runs = [(r, label) for r, label in ((r, group_label(r, by)) for r in runs) if is_completed(r)]

    # compute-matched: every completed run's curve at the smallest final budget among them
    finals = table.loc[table["status"] == COMPLETED, budget_key]
    common = float(finals[finals > 0].min()) if (finals > 0).any() else math.nan
    column = f"{metric}@{budget}"
    table[column] = math.nan
    for i, run in enumerate(runs):
        if is_completed(run) and table.at[i, budget_key] > 0:
            table.at[i, column] = stats.value_at(*eval_curve(run, budget_key, metric), common)

    metric_columns = [k for k, _ in FINAL_METRICS] + ([metric] if metric not in dict(FINAL_METRICS) else [])
    paired = paired_table(table, metric, groups, base)
    matched = group_table(table, groups, [column])
    in_view = [g for g in groups if table.loc[table["group"] == g, column].notna().any()]
    matched_base = base if base in in_view or not in_view else in_view[0]
    matched_paired = paired_table(table, column, in_view, matched_base)

    axes = ["step", "counters/generated_tokens"]
    axes += [budget_key] if budget_key not in axes else []
    curves = {
        axis: {g: [eval_curve(r, axis, metric) for r, label in done_runs if label == g] for g in groups}
        for axis in [*axes, WALL_TIME]
    }
    trajectories = {
        g: [paired_curve(r, "eval/proxy_reward", "eval/gold_reward") for r, label in done_runs if label == g]
        for g in groups
    }

    counts = Counter(table.loc[table["status"] != COMPLETED, "status"])
    notes = list(problems or [])
    if counts:
        listed = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        notes.insert(0, f"{sum(counts.values())} runs are not in the statistics ({listed}); see Runs.")
    notes += _budget_notes(table, budget_key, budget.replace("_", " "))
    if matched_base != base:
        notes.append(
            f"The baseline {base} is not in the compute-matched view; there groups are paired "
            f"with {matched_base}."
        )
    notes += _pairing_notes(table, base, paired)
    notes += [f"{row.folder}: {row.problems}" for row in table.itertuples() if row.problems]
    return Comparison(
        by=list(by),
        metric=metric,
        budget=budget,
        baseline=base,
        groups=groups,
        runs=table,
        group_table=group_table(table, groups, metric_columns),
        paired=paired,
        common_budget=common,
        matched=matched,
        matched_paired=matched_paired,
        matched_baseline=matched_base,
        curves=curves,
        trajectories=trajectories,
        notes=notes,
        claims=claim_table(claims, table) if claims else None,
    )
