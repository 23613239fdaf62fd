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
SFT = "SFT"  # the reference policy every run started from; its values are each run's `<metric>_sft`
UNEQUAL_COMPUTE = 1.10  # final budgets differing by more than 10% are called unequal
Curve = tuple[np.ndarray, np.ndarray]


@dataclass
class Comparison:
    by: list[str]
    metric: str
    budget: str  # generated_tokens | reward_queries | trained_tokens
    baseline: str
    groups: list[str]  # sorted; every group that has a run, completed or not
    runs: pd.DataFrame  # one row per run, every status
    group_table: pd.DataFrame  # per group (SFT first, where logged): n, excluded, mean/lo/hi of FINAL_METRICS
    paired: pd.DataFrame  # final metric vs baseline, paired by seed
    common_budget: float
    matched: pd.DataFrame  # metric at the common budget, per group
    matched_paired: pd.DataFrame  # the same, paired by seed vs matched_baseline
    matched_baseline: str  # the baseline, or the first group in the view when the baseline is not
    curves: dict[str, dict[str, list[Curve]]]  # x axis -> group -> per-run (x, metric)
    trajectories: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]  # (step, proxy, gold)
    notes: list[str] = field(default_factory=list)
    claims: pd.DataFrame | None = None  # one row per claim (claims.claim_table); None: no claims
    headline: str = ""  # one sentence: what differs from the baseline beyond seed noise

    @property
    def matched_column(self) -> str:
        return f"{self.metric}@{self.budget}"


def mean_ci(values: np.ndarray) -> tuple[int, float, float, float]:
    """(n, mean, lo, hi) of the finite values; the Student-t CI (stats.t_ci)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return 0, math.nan, math.nan, math.nan
    lo, hi = stats.t_ci(x)
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
    """A plain-language reading of a paired difference: what the CI and the test can and cannot say."""
    if n == 0:
        return "no seeds in common with the baseline"
    if n == 1:
        return "one paired seed: no CI, no test"
    direction = f"{'higher' if diff > 0 else 'lower'} than {baseline}"
    excludes_zero = lo > 0 or hi < 0
    if excludes_zero and p_adjusted < ALPHA:
        return f"{direction}, beyond seed noise"
    if excludes_zero and stats.smallest_p_value(n) >= ALPHA:
        return f"{direction} (CI excludes 0), but {n} seeds cannot reach p < {ALPHA}"
    if excludes_zero:
        return f"CI excludes 0, but Holm p = {p_adjusted:.3g}: not significant"
    return "within seed noise (CI covers 0)"


def paired_table(runs: pd.DataFrame, column: str, groups: list[str], baseline: str) -> pd.DataFrame:
    """Each group vs the baseline on `column`, runs paired by seed (a seed's runs averaged).

    Baseline SFT: each group's runs against their own `<column>_sft`, the SFT reference they started from.
    diff = group - baseline per seed; mean diff, Student-t CI of the differences, exact sign-flip p
    (Monte-Carlo above 12 pairs), Holm-adjusted across the compared groups.
    """
    import pandas as pd

    done = runs[(runs["status"] == COMPLETED) & runs["seed"].notna() & runs[column].notna()]

    def by_seed(col: str) -> dict[str, pd.Series]:  # group -> its per-seed mean of col
        if col not in done.columns:
            return {}
        per_seed = done[done[col].notna()].groupby(["group", "seed"])[col].mean()
        return {g: per_seed[g] for g in set(per_seed.index.get_level_values(0))}

    by_group, own_sft = by_seed(column), by_seed(f"{column}_sft")
    empty = pd.Series(dtype=float)
    rows = []
    for g in groups:
        if g == baseline:
            continue
        mine = by_group.get(g, empty)
        # SFT: each run against its own reference (the same evaluation of the policy it started from)
        base = own_sft.get(g, empty) if baseline == SFT else by_group.get(baseline, empty)
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


def choose_baseline(groups: list[str], runs: pd.DataFrame, baseline: str | None, has_sft: bool) -> str:
    """The named group (or SFT), else SFT when the metric has an SFT value, else the first group
    (alphabetically) that has a completed run."""
    allowed = [SFT, *groups] if has_sft else groups
    if baseline is not None:
        if baseline not in allowed:
            raise ValueError(f"--baseline {baseline}: no such group; groups are {', '.join(allowed)}")
        return baseline
    if has_sft:
        return SFT
    done = set(runs.loc[runs["status"] == COMPLETED, "group"])
    return next((g for g in groups if g in done), groups[0] if groups else "")


def sft_row(runs: pd.DataFrame, columns: list[str]) -> dict:
    """The group table's SFT row: per column with `<col>_sft` values, their mean and CI over seeds
    (a seed's completed runs averaged: they evaluated the same SFT policy with that seed); n = seeds."""
    done = runs[(runs["status"] == COMPLETED) & runs["seed"].notna()]
    row: dict = {"group": SFT, "excluded": 0}
    seeds: set = set()
    for col in columns:
        per_seed = done.groupby("seed")[f"{col}_sft"].mean().dropna() if f"{col}_sft" in done else None
        seeds |= set() if per_seed is None else set(per_seed.index)
        values = np.array([]) if per_seed is None else per_seed.to_numpy(float)  # (seeds,)
        _, row[f"{col}:mean"], row[f"{col}:lo"], row[f"{col}:hi"] = mean_ci(values)
    row["n"] = len(seeds)
    return row


def sft_notes(runs: pd.DataFrame, metric: str) -> list[str]:
    """A warning when completed runs of one seed report different SFT values: they did not all start
    from one SFT policy (another task, model or SFT setting), so the SFT row pools references."""
    column = f"{metric}_sft"
    done = runs[(runs["status"] == COMPLETED) & runs["seed"].notna() & runs[column].notna()]
    spread = done.groupby("seed")[column].agg(["min", "max"])
    differing = spread[(spread["max"] - spread["min"]) > 1e-9 * (1 + spread["max"].abs())]
    if differing.empty:
        return []
    seed, (lo, hi) = differing.index[0], differing.iloc[0]
    return [
        f"WARNING: the runs do not share one SFT reference ({column} at seed {seed:g} ranges from "
        f"{lo:.4g} to {hi:.4g}): the SFT row pools different references; paired against SFT, each run is "
        "compared with its own."
    ]


def band(curves: list[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(grid, mean, lo, hi): the runs' curves interpolated on their shared x range, mean and 95% CI."""
    clean = [stats.curve_xy(x, y) for x, y in curves]
    grid = stats.common_grid(clean)
    if len(grid) == 0:
        empty = np.array([])
        return empty, empty, empty, empty
    matrix = np.stack([np.interp(grid, x, y) for x, y in clean if len(x)])  # (runs, points)
    return (grid, *stats.t_band(matrix))


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
        hint = "" if budget_key == BUDGETS["trained_tokens"] else "; --budget trained_tokens places them"
        notes.append(
            f"Not in the compute-matched view (no {label} used or logged, e.g. offline pairwise "
            f"training): {', '.join(lacking)}{hint}."
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
    if baseline == SFT:  # every run carries its own SFT reference: nothing is left unpaired
        return notes
    base_seeds = set(done.loc[done["group"] == baseline, "seed"])
    for g in sorted(set(done["group"]) - {baseline}):
        unpaired = sorted(set(done.loc[done["group"] == g, "seed"]) ^ base_seeds)
        if unpaired:
            notes.append(
                f"{g} vs {baseline}: seeds {', '.join(f'{s:g}' for s in unpaired)} are not in both "
                "groups and are left out of the paired comparison."
            )
    return notes


IGNORED_KEYS = ("seed", "cache_dir", "hardware", "tracker", "claims", "study")


def _flat(node, prefix: str = "") -> dict:
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict = {}
    for k, v in node.items():
        out |= _flat(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def _seed_like(key: str, config: dict) -> bool:
    """Keys that differ between a group's seeds by design: the run seed, where and how it ran, and
    with stages.seed=per_run the shared stages' seeds (the run's seed, config.apply_stage_seed)."""
    top = key.split(".")[0]
    per_run = (config.get("stages") or {}).get("seed") == "per_run"
    return top in IGNORED_KEYS or (per_run and top in ("sft", "reward") and key.endswith(".seed"))


def stage_randomness(runs: list[Run]) -> str | None:
    """Which randomness a study's CIs over seeds cover (its runs' stages.seed), or None for none."""
    settings = {(r.config.get("stages") or {}).get("seed", "shared") for r in runs if is_completed(r)}
    if settings == {"per_run"}:
        return (
            "stages.seed=per_run: each seed built its own SFT policy, preference pairs and reward model, "
            "so the CIs cover the whole pipeline's randomness."
        )
    if settings == {"shared"}:
        return (
            "stages.seed=shared: every seed trained on one SFT policy, one set of preference pairs and one "
            "reward model, so the CIs cover policy optimisation's randomness only, conditional on those "
            "stages; stages.seed=per_run covers the whole pipeline."
        )
    if settings:
        return "WARNING: runs with stages.seed=shared and per_run are pooled; split them: --by stages.seed."
    return None


def config_differences(runs: list[Run], label_of) -> dict[str, list[str]]:
    """Per group: the config keys (seed, where it ran and how it was tracked aside) whose values differ
    between the group's completed runs, which would then be pooled as if they were seeds."""
    by_group: dict[str, list[dict]] = {}
    for r in runs:
        if is_completed(r):
            flat = {k: v for k, v in _flat(r.config).items() if not _seed_like(k, r.config)}
            by_group.setdefault(label_of(r), []).append(flat)
    out = {}
    for g, flats in by_group.items():
        keys = sorted({k for f in flats for k in f})
        differing = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
        if differing:
            out[g] = differing
    return out


def check_by_and_metric(runs: list[Run], by: list[str], metric: str) -> None:
    """An unknown --by key or --metric is a one-line ValueError, not a report of "(unset)" or n/a."""
    from align_lab.results.runs import lookup

    for key in by:
        if runs and all(lookup(r, key) is None for r in runs):
            raise ValueError(
                f"--by {key}: no run has this key (a config group such as algo, or a dotted key)"
            )
    reported = {k for r in runs for k in [*r.summary, *(k for m in r.metrics for k in m)]}
    if runs and metric not in reported:
        known = ", ".join(sorted(k for k in reported if k.startswith("eval/")))
        raise ValueError(f"--metric {metric}: no run reports it; they report {known}")


def headline(paired: pd.DataFrame, metric: str, baseline: str) -> str:
    """One sentence: which groups differ from the baseline beyond seed noise, if any."""
    beyond = [r for r in paired.itertuples() if str(r.verdict).endswith("beyond seed noise")]
    if not len(paired):
        return f"Only one group: nothing to compare on {metric}."
    if not beyond:
        text = f"No group differs from {baseline} on {metric} beyond seed noise"
        hinted = [r for r in paired.itertuples() if "CI excludes 0" in str(r.verdict)]
        if hinted:  # the CIs say more than the test can with these seeds
            said = ", ".join(f"{r.group} {r.diff:+.3g} [{r.diff_lo:+.3g}, {r.diff_hi:+.3g}]" for r in hinted)
            text += f" by the test, but the paired CI excludes 0 for {said}; more seeds can confirm it"
        return text + "."
    said = "; ".join(f"{r.group} {r.diff:+.3g} [{r.diff_lo:+.3g}, {r.diff_hi:+.3g}]" for r in beyond)
    return f"Beyond seed noise on {metric}, against {baseline}: {said}."


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
    check_by_and_metric(runs, by, metric)
    table = pd.DataFrame([run_row(r, by, metric) for r in runs])
    if table.empty:
        raise ValueError("no run folders found (a run folder holds .hydra/config.yaml or summary.json)")
    groups = sorted(set(table["group"]), key=natural_key)
    metric_columns = [k for k, _ in FINAL_METRICS] + ([metric] if metric not in dict(FINAL_METRICS) else [])
    reported = {k for r in runs for k in [*r.summary, *(k for m in r.metrics for k in m)]}
    for key in [k for k in metric_columns if f"{k}_sft" in reported]:
        table[f"{key}_sft"] = [final_value(r, f"{key}_sft") for r in runs]
    sft_column = f"{metric}_sft"
    has_sft = sft_column in table and table.loc[table["status"] == COMPLETED, sft_column].notna().any()
    base = choose_baseline(groups, table, baseline, has_sft)
    if claims:
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

    paired = paired_table(table, metric, groups, base)
    matched = group_table(table, groups, [column])
    in_view = [g for g in groups if table.loc[table["group"] == g, column].notna().any()]
    matched_base = base if base in in_view or not in_view else in_view[0]
    matched_paired = paired_table(table, column, in_view, matched_base)

    axes = ["step", "counters/generated_tokens", "counters/trained_tokens"]
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
    if matched_base != base and base == SFT:
        notes.append(
            f"The compute-matched view compares groups at equal compute, where SFT (no compute) has no "
            f"value; there groups are paired with {matched_base}."
        )
    elif matched_base != base:
        notes.append(
            f"The baseline {base} is not in the compute-matched view; there groups are paired "
            f"with {matched_base}."
        )
    notes += _pairing_notes(table, base, paired)
    if baseline is None and base == SFT:
        notes.append(
            f"Baseline: SFT, the reference policy every group started from: each run is paired with its "
            f"own {sft_column} (the same evaluation of the SFT policy); choose a group with --baseline."
        )
    elif baseline is None and len(groups) > 1:
        notes.append(
            f"Baseline: {base}, the first group by name ({metric} has no SFT value); choose one with "
            "--baseline."
        )
    if has_sft:
        notes += sft_notes(table, metric)
    for g, keys in config_differences(runs, lambda r: group_label(r, by)).items():
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        notes.append(
            f"WARNING: group {g} pools runs whose configs differ in {shown}: its CI mixes settings, not "
            f"only seeds; split it with --by (e.g. --by {','.join([*by, keys[0]])})."
        )
    small = sorted(set(table.loc[table["status"] == COMPLETED, "group"]))
    few = [
        g for g in small if (table.loc[(table["group"] == g) & (table["status"] == COMPLETED)]).shape[0] < 3
    ]
    if few:
        notes.append(
            f"Fewer than 3 seeds in {', '.join(few)}: their CIs are unreliable (2 seeds: the t interval "
            "is +-12.7 standard errors; 1 seed: none)."
        )
    randomness = stage_randomness(runs)
    notes += [randomness] if randomness else []
    notes += [f"{row.folder}: {row.problems}" for row in table.itertuples() if row.problems]
    return Comparison(
        by=list(by),
        metric=metric,
        budget=budget,
        baseline=base,
        groups=groups,
        runs=table,
        group_table=pd.DataFrame(
            ([sft_row(table, metric_columns)] if has_sft else [])
            + group_table(table, groups, metric_columns).to_dict("records")
        ),
        paired=paired,
        common_budget=common,
        matched=matched,
        matched_paired=matched_paired,
        matched_baseline=matched_base,
        curves=curves,
        trajectories=trajectories,
        notes=notes,
        claims=claim_table(claims, table) if claims else None,
        headline=headline(paired, metric, base),
    )
