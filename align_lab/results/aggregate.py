"""Runs -> a Comparison: per-group tables with CIs, paired tests against a baseline, a
compute-matched view, curves and notes. Pure computation; rendering lives in report.py and plots.py.

Only completed runs enter statistics; every other run stays in `runs` with its status, and a note
says how many were left out. The statistics are tables.py's (stats.paired_tests), the notes notes.py's.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from align_lab.results import stats
from align_lab.results.across_tasks import across_tasks
from align_lab.results.action import action_line
from align_lab.results.claims import CONTRADICTED, INCONCLUSIVE, REPRODUCED, Claim, check_claims, claim_table
from align_lab.results.comparison import SFT, Comparison, Curve
from align_lab.results.damaged import samples_notes
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
from align_lab.results.matched import Matched, add_matched, kl_notes
from align_lab.results.matched_claims import GOLD, claims_at, kl_frontier, matched_power
from align_lab.results.noise import group_noise
from align_lab.results.notes import comparison_notes
from align_lab.results.robust import robustness, split_robust
from align_lab.results.runs import COMPLETED, Run, group_label, has_key, lookup
from align_lab.results.seeds import DEFAULT_MIN_EFFECT_SD
from align_lab.results.tables import group_table, has_sft, paired_table, sft_references, sft_rows

if TYPE_CHECKING:
    import pandas as pd


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


def check_by_and_metric(runs: list[Run], by: list[str], metric: str) -> None:
    """An unknown --by key or --metric is a one-line ValueError, not a report of "(unset)" or n/a."""
    for key in by:
        if runs and not any(has_key(r, key) for r in runs):  # null in every run: one group, (unset)
            raise ValueError(
                f"--by {key}: no run has this key (a config group such as algo, or a dotted key)"
            )
        node = next((v for r in runs if isinstance(v := lookup(r, key), dict)), None)
        if node is not None:  # a part's node (algo.correction): its whole mapping as a group's name
            keys = [str(k) for k in node if not str(k).startswith("_")]
            raise ValueError(
                f"--by {key}: is a node of keys ({', '.join(keys)}); group by one of them, e.g. --by "
                f"{key}.{keys[0] if keys else 'KEY'}"
            )
    reported = reported_keys(runs)
    if runs and metric not in reported:
        known = ", ".join(sorted(k for k in reported if k.startswith("eval/")))
        if not known:
            raise ValueError(no_evaluation_message(runs))
        raise ValueError(f"--metric {metric}: no run reports it; they report {known}")


def no_evaluation_message(runs: list[Run]) -> str:
    """One line for runs none of which got to an evaluation: how many, their statuses, the first error."""
    statuses = Counter(r.status for r in runs)
    listed = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    failed = next((r for r in runs if r.error), None)
    why = f"; {failed.folder}: {failed.error.strip().splitlines()[0]}" if failed else ""
    return f"no run got to an evaluation ({len(runs)} run{'s' * (len(runs) > 1)}: {listed}){why}"


UNTESTED = ("no test", "cannot reach", "no seeds in common", "no completed run", "none of its")


def headline(paired: pd.DataFrame, metric: str, baseline: str) -> str:
    """One sentence: which groups differ from the baseline beyond seed noise, if any; where no test could
    decide (one seed, too few for the exact test's floor), what was measured and that it is undecided,
    never "no group differs ... beyond seed noise" (twenty-sixth hunt, case 25: said of one run +0.34)."""
    beyond = [r for r in paired.itertuples() if str(r.verdict).endswith("beyond seed noise")]
    if not len(paired):
        return f"Only one group: nothing to compare on {metric}."
    untested = [r for r in paired.itertuples() if any(w in str(r.verdict) for w in UNTESTED)]
    if not beyond and len(untested) == len(paired):
        said = "; ".join(
            f"{r.group} {stats.fmt_ci(r.diff, r.diff_lo, r.diff_hi)} ({r.verdict})" for r in untested
        )
        return f"Not decided on {metric} against {baseline}, too few paired seeds for the exact test: {said}."
    if not beyond:
        more = f"; not decided for want of seeds: {', '.join(r.group for r in untested)}" if untested else ""
        return f"No group differs from {baseline} on {metric} beyond seed noise (the exact test, Holm){more}."
    said = "; ".join(f"{r.group} {r.diff:+.3g} [{r.diff_lo:+.3g}, {r.diff_hi:+.3g}]" for r in beyond)
    return f"Beyond seed noise on {metric}, against {baseline}: {said}."


def question_headline(c: Comparison) -> str | None:
    """The answer to the study's question, where it has one other than "better than the baseline?": its
    claims' verdicts, or with exactly two groups and the baseline neither (SFT), the one against the other.
    None otherwise (the headline against the baseline stays)."""
    if c.claims is not None and len(c.claims):
        counts = Counter(c.claims["verdict"])
        said = "; ".join(
            f"{r.claim}: {r.verdict} (a - b = {stats.fmt_ci(r.diff, r.diff_lo, r.diff_hi)}, "
            f"{r.n_pairs} seeds)"
            for r in c.claims.itertuples()
        )
        tally = ", ".join(f"{counts[v]} {v}" for v in (REPRODUCED, CONTRADICTED, INCONCLUSIVE))
        return f"{len(c.claims)} claim{'s' * (len(c.claims) != 1)} ({tally}): {said}."  # "1 claims" (hunt 77)
    if len(c.groups) != 2 or c.baseline in c.groups:
        return None
    b, a = c.groups
    if "sft_reference" in c.runs:  # two tasks (or models): two scales, never paired; each against its SFT
        refs = [set(c.runs.loc[c.runs["group"] == g, "sft_reference"]) for g in (a, b)]
        if refs[0] != refs[1]:
            return None
    row = next(iter(paired_table(c.runs, c.metric, [a, b], b).itertuples()))
    if not row.n_pairs:  # a group with no completed run: its row says so, not "no seeds in common"
        return None
    return (
        f"{a} vs {b} on {c.metric}: {a} - {b} = {stats.fmt_ci(row.diff, row.diff_lo, row.diff_hi)} over "
        f"{row.n_pairs} paired seeds, Holm p {stats.fmt_p(row.p_holm)}: {row.verdict}."
    )


def reported_keys(runs: list[Run]) -> set[str]:
    """Every key a run's summary or metrics hold."""
    return {k for r in runs for k in [*r.summary, *(k for m in r.metrics for k in m)]}


def runs_table(runs: list[Run], by: list[str], metric: str, columns: list[str]) -> pd.DataFrame:
    """One row per run (extract.run_row), plus `<col>_sft` for each column some run reports it for."""
    import pandas as pd

    table = pd.DataFrame([run_row(r, by, metric) for r in runs])
    if table.empty:
        raise ValueError("no run folders found (a run folder holds .hydra/config.yaml or summary.json)")
    reported = reported_keys(runs)
    for key in [k for k in columns if f"{k}_sft" in reported]:
        table[f"{key}_sft"] = [final_value(r, f"{key}_sft") for r in runs]
    return table


def curves_by_group(
    runs: list[Run], by: list[str], groups: list[str], metric: str, budget_key: str
) -> tuple[dict[str, dict[str, list[Curve]]], dict[str, list]]:
    """(x axis -> group -> each completed run's (x, metric) curve, group -> (step, proxy, gold) curves)."""
    done = [(r, label) for r, label in ((r, group_label(r, by)) for r in runs) if is_completed(r)]
    axes = ["step", "counters/generated_tokens", "counters/trained_tokens"]
    axes += [budget_key] if budget_key not in axes else []
    curves = {
        axis: {g: [eval_curve(r, axis, metric) for r, label in done if label == g] for g in groups}
        for axis in [*axes, WALL_TIME]
    }
    trajectories = {
        g: [paired_curve(r, "eval/proxy_reward", "eval/gold_reward") for r, label in done if label == g]
        for g in groups
    }
    return curves, trajectories


def add_claim_metrics(
    table: pd.DataFrame, runs: list[Run], claims: list[Claim], groups: list[str]
) -> dict[Claim, Matched]:
    """Checks each claim against the groups and metrics the runs have, adds the runs' final value of each
    claim's metric that the table lacks as a column, and, for a claim at equal <budget>, its two arms'
    runs read at their common point (column Claim.column); returns those readings."""
    if not claims:
        return {}
    check_claims(claims, groups, reported_keys(runs))
    for m in dict.fromkeys(c.metric for c in claims if c.metric not in table.columns):
        table[m] = [final_value(r, m) for r in runs]
    arms = {c: [i for i, g in enumerate(table["group"]) if g in (c.a, c.b)] for c in claims if c.at}
    return {c: add_matched(table, runs, c.metric, c.at, c.column, rows) for c, rows in arms.items()}


def matched_groups(table: pd.DataFrame, groups: list[str], column: str, base: str) -> tuple[list[str], str]:
    """(the groups with a value in the matched view, its baseline: the baseline, or the first of them)."""
    in_view = [g for g in groups if table.loc[table["group"] == g, column].notna().any()]
    return in_view, base if base in in_view or not in_view else in_view[0]


def matched_pairs(table: pd.DataFrame, groups: list[str], column: str, base: str) -> tuple[pd.DataFrame, str]:
    """The matched view paired by seed against the baseline group, or, the baseline SFT (no value at a
    budget), within each SFT reference (task, model: two scales, each read at its own common point)
    against the first of its groups in the view, one Holm family; (the table, the baselines it used)."""
    refs = dict(zip(table["group"], table["sft_reference"], strict=True))
    if base != SFT or len(set(refs.values())) == 1:  # a group as baseline: as the final values' table
        in_view, matched_base = matched_groups(table, groups, column, base)
        return paired_table(table, column, in_view, matched_base), matched_base
    paired_with: dict[str, str] = {}
    for ref in sorted({refs[g] for g in groups}):
        in_view, matched_base = matched_groups(table, [g for g in groups if refs[g] == ref], column, base)
        paired_with |= dict.fromkeys(in_view, matched_base)
    in_view = [g for g in groups if g in paired_with]
    return paired_table(table, column, in_view, paired_with), (
        " and ".join(dict.fromkeys(paired_with.values())) or base
    )


def groups_and_sft(
    table: pd.DataFrame, groups: list[str], columns: list[str], metric: str, sft: bool
) -> pd.DataFrame:
    """The group table, SFT rows first where the metric has them."""
    import pandas as pd

    rows = group_table(table, groups, columns).to_dict("records")
    return pd.DataFrame([*(sft_rows(table, columns, metric) if sft else []), *rows])


def aggregate(
    runs: list[Run],
    by: list[str],
    metric: str = "eval/gold_reward",
    budget: str = "generated_tokens",
    baseline: str | None = None,
    problems: list[str] | None = None,
    claims: list[Claim] | None = None,
    min_effect_sd: float = DEFAULT_MIN_EFFECT_SD,
    at_kl: float | None = None,
) -> Comparison:
    """Every table and curve of the report, from the runs (any status); each claim tested, and the seeds
    that would decide the rest for an effect of interest of min_effect_sd SDs (a claim's own `by`).
    at_kl: the common KL of the KL-matched view (budget kl; None: the smallest peak KL)."""
    if budget not in BUDGETS:
        raise ValueError(f"--budget {budget}: allowed values are {', '.join(BUDGETS)}")
    check_by_and_metric(runs, by, metric)
    everyone = runs  # the claims across a grid (robust.py) read every run; the rest, those at x1
    runs, claims, robust, aside = split_robust(runs, by, claims or [], reported_keys(runs))
    columns = [k for k, _ in FINAL_METRICS] + ([metric] if metric not in dict(FINAL_METRICS) else [])
    table = runs_table(runs, by, metric, columns)
    table["sft_reference"] = sft_references(runs, by)  # per task (and model): SFT rows never pool them
    groups = sorted(set(table["group"]), key=natural_key)
    sft = has_sft(table, metric)
    base = choose_baseline(groups, table, baseline, sft)
    at_equal = add_claim_metrics(table, runs, claims or [], groups)
    column = f"{metric}@{budget}"
    view = add_matched(table, runs, metric, budget, column, at=at_kl, scopes=list(table["sft_reference"]))
    frontier = kl_frontier(table, runs, view if metric == GOLD else None, at_kl)
    matched_paired, matched_base = matched_pairs(table, groups, column, base)
    paired = paired_table(table, metric, groups, base)
    curves, trajectories = curves_by_group(runs, by, groups, metric, BUDGETS[budget])
    comparison = Comparison(
        by=list(by),
        metric=metric,
        budget=budget,
        baseline=base,
        groups=groups,
        runs=table,
        group_table=groups_and_sft(table, groups, columns, metric, sft),
        paired=paired,
        common_budget=view.at,
        common_chosen=view.chosen,
        common_by=view.at_by,
        matched=group_table(table, groups, [column]),
        matched_paired=matched_paired,
        matched_baseline=matched_base,
        curves=curves,
        trajectories=trajectories,
        claims=claims_at(claim_table(claims, table), claims, at_equal) if claims else None,
        power=matched_power(claims, table, min_effect_sd) if claims else None,
        noise=group_noise(table, metric),
        across_tasks=across_tasks(runs, by),
        headline=headline(paired, metric, base),
        min_effect_sd=min_effect_sd,
        frontier_kl=frontier.at,
    )
    comparison.robustness = robustness(everyone, by, robust)
    kl = [n for c, m in [(metric, view), *at_equal.items()] for n in kl_notes(m, table, runs, c)]
    return finish(comparison, runs, baseline, [*(problems or []), *aside, *kl])


def finish(c: Comparison, runs: list[Run], baseline: str | None, problems: list[str]) -> Comparison:
    """The comparison's headline, action line and notes, from its tables."""
    c.headline = question_headline(c) or c.headline
    c.action = action_line(c, c.min_effect_sd)
    c.notes = comparison_notes(c, runs, baseline, problems)
    c.notes += samples_notes(c, runs)  # damaged or missing eval_samples.jsonl
    return c
