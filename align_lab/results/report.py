"""A Comparison as a document (render.py's blocks), rendered to report.md and a self-contained
report.html, plus runs.csv / runs.parquet and the PNG figures, in one output folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from align_lab.results.across_tasks import across_blocks, across_figure
from align_lab.results.averaged import matched_empty_reason
from align_lab.results.comparison import Comparison
from align_lab.results.extract import FINAL_METRICS, KL
from align_lab.results.noise import noise_blocks
from align_lab.results.plots import write_figures
from align_lab.results.power_report import power_blocks
from align_lab.results.printed import counted
from align_lab.results.render import Block, Bullets, Heading, Image, Paragraph, Table, to_html, to_markdown
from align_lab.results.robust import robust_blocks
from align_lab.results.samples import samples_blocks
from align_lab.results.stats import fmt, fmt_ci, fmt_p
from align_lab.results.tuning import tuning_blocks
from align_lab.value_checks import whole

if TYPE_CHECKING:
    import pandas as pd


def group_table_block(table: pd.DataFrame, columns: list[tuple[str, str]]) -> Table:
    header = ["group", "n", "excluded", *(f"{name} mean [95% CI]" for _, name in columns)]
    rows = [
        [str(r["group"]), str(r["n"]), str(r["excluded"])] + [counted_cell(r, k) for k, _ in columns]
        for _, r in table.iterrows()
    ]
    return Table(header, rows)


def counted_cell(row, key: str) -> str:
    """mean [CI] of a group-table cell, with "(n=k)" when it averages k runs, not the row's n."""
    text = fmt_ci(row[f"{key}:mean"], row[f"{key}:lo"], row[f"{key}:hi"])
    n = row.get(f"{key}:n", row["n"])
    return text if n == row["n"] or n == 0 else f"{text} (n={n})"


def paired_block(paired: pd.DataFrame) -> Table:
    header = [
        "group",
        "pairs (seeds)",
        "group mean",
        "baseline mean",
        "mean diff [95% CI]",
        "p",
        "Holm p",
        "verdict",
    ]
    rows = [
        [
            str(r.group),
            f"{r.n_pairs} ({r.seeds})" if r.seeds else "0",
            fmt(r.group_mean),
            fmt(r.baseline_mean),
            fmt_ci(r.diff, r.diff_lo, r.diff_hi),
            fmt_p(r.p),
            fmt_p(r.p_holm),
            str(r.verdict),
        ]
        for r in paired.itertuples()
    ]
    return Table(header, rows)


def claims_block(claims: pd.DataFrame) -> Table:
    header = ["claim", "verdict", "pairs", "mean a - b [95% CI]", "p", "Holm p", "why"]
    rows = [
        [
            str(r.claim),
            str(r.verdict),
            str(r.n_pairs),
            fmt_ci(r.diff, r.diff_lo, r.diff_hi),
            fmt_p(r.p),
            fmt_p(r.p_holm),
            str(r.why),
        ]
        for r in claims.itertuples()
    ]
    return Table(header, rows)


def _short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def runs_block(comparison: Comparison, root: Path | None) -> Table:
    header = [
        "folder",
        "group",
        "seed",
        "status",
        "error",
        "last step",
        "gold reward",
        "generated tokens",
        "wall time (s)",
    ]
    rows = []
    order = comparison.runs.sort_values(["group", "seed", "folder"], na_position="last")
    for _, r in order.iterrows():
        folder = Path(r["folder"])
        if root is not None:
            try:
                folder = folder.resolve().relative_to(root.resolve())
            except ValueError:
                pass
        rows.append(
            [
                str(folder),
                str(r["group"]),
                fmt(r["seed"]),
                str(r["status"]),
                _short(r["error"]),
                fmt(r["last_step"]),
                fmt(r["eval/gold_reward"]),
                fmt(r["counters/generated_tokens"]),
                fmt(r["time/total_s"]),
            ]
        )
    return Table(header, rows)


def claims_blocks(claims: pd.DataFrame) -> list[Block]:
    return [
        Heading("Claims"),
        Paragraph(
            "Each claim 'a > b on metric' (or <) tested on the runs paired by seed: mean a - b with a "
            "95% Student-t CI of the paired differences, two-sided exact sign-flip p, Holm-corrected "
            "over the claims. "
            "The test alone decides (one story: the verdict and its p agree): reproduced: Holm p < 0.05 "
            "and the mean difference on the claimed side of 0; contradicted: Holm p < 0.05 on the other "
            "side; inconclusive: otherwise (6 paired seeds are the fewest that can reach p < 0.05 before "
            "correction). The CI describes the difference and decides nothing; where it disagrees with "
            "a decided test (skewed differences), the why column says so. A CI of no width says 'all "
            "seeds equal': every seed gave the same difference, which is not certainty."
        ),
        claims_block(claims),
    ]


def verdict_blocks(c: Comparison) -> list[Block]:
    """What the study decided, above the tables: the claims, their power, verdicts across tasks, notes."""
    blocks = claims_blocks(c.claims) if c.claims is not None else []
    blocks += robust_blocks(c.robustness)
    blocks += power_blocks(c.power, c.min_effect_sd) if c.power else []
    blocks += noise_blocks(c.noise)
    blocks += across_blocks(c.across_tasks)
    return blocks + ([Heading("Notes"), Bullets(c.notes)] if c.notes else [])


def plan_blocks(roots: list[Path]) -> list[Block]:
    """A sequential study's looks and verdicts (its plan.json), which are the study's verdicts."""
    from align_lab.results.plan_record import read_record, verdict_lines

    records = [(root, read_record(root)) for root in roots]
    return [
        block
        for root, record in records
        if record is not None
        for block in (
            Heading("Sequential plan"),
            Paragraph(
                f"{root}/plan.json: the plan's looks and verdicts (alpha spent over the looks, Holm over "
                "the open claims; docs/studies.md). They, not the fixed-design claim test above, are "
                "the study's verdicts."
            ),
            Bullets(verdict_lines(record)),
        )
    ]


def document(comparison: Comparison, roots: list[Path], figures: list[tuple[str, Path]]) -> list[Block]:
    """The report, top to bottom."""
    c = comparison
    metric_name = c.metric.split("/")[-1].replace("_", " ")
    budget_name = c.budget.replace("_", " ")
    columns = list(FINAL_METRICS) + ([(c.metric, metric_name)] if c.metric not in dict(FINAL_METRICS) else [])
    blocks: list[Block] = [
        Heading("align_lab comparison", 1),
        Paragraph(
            f"Runs below {', '.join(str(r) for r in roots)}, grouped by {', '.join(c.by)}; "
            f"{counted(len(c.runs), 'run')} in {counted(len(c.groups), 'group')}; baseline: {c.baseline}; "
            f"metric: {c.metric}."
        ),
        Paragraph(c.headline),
        Paragraph(f"Action: {c.action}"),
    ]
    blocks += verdict_blocks(c) + plan_blocks(roots) + tuning_blocks(roots)
    blocks += [
        Heading("Final metrics per group"),
        Paragraph(
            "n counts completed runs (one per seed); a cell that averages fewer (a run without a finite "
            "value) says its own (n=k), and the notes list the runs left out and why; excluded counts runs "
            "of the group that are not completed (listed under Runs). Mean over seeds with a 95% Student-t "
            "CI (mean +- t * s / sqrt(n), cut at the metric's range: rates in [0, 1], times >= 0; a "
            "bootstrap under-covers at a few seeds). SFT, where the runs log it, is the reference "
            "policy every group started from: each completed run's evaluation of it (the `_sft` metrics), "
            "a seed's runs averaged; its n counts seeds; n/a where a metric has no SFT value; one SFT row "
            "per task (and model) when the runs span several, each the reference of its own runs."
        ),
        group_table_block(c.group_table, columns),
        Heading(f"Paired comparison vs {c.baseline}: final {metric_name}"),
        Paragraph(
            "Runs paired by seed; diff = group - baseline (against SFT: each run minus its own SFT "
            "evaluation, same seed); CI: Student-t of the per-seed differences. p: two-sided sign-flip "
            "permutation test "
            "(exact up to 30 pairs); Holm p: Holm-Bonferroni across the compared groups. "
            "The verdict is the test's alone, so its words and its p agree: 'beyond seed noise' is Holm p "
            "< 0.05, which needs at least 6 paired seeds (more with more groups); 'not decided' says why. "
            "The CI describes the difference and decides nothing."
        ),
        paired_block(c.paired),
        *matched_heading(c, metric_name, budget_name),
    ]
    blocks += matched_blocks(c, metric_name)
    blocks += [Heading("Figures")]
    blocks += [Image(path, caption) for caption, path in figures]
    blocks += [
        Heading("Runs"),
        Paragraph(
            "Every run found, whatever its status; only completed runs enter the statistics. Metrics of "
            "an unfinished run are its last evaluation. All columns are in runs.csv / runs.parquet."
        ),
        runs_block(c, roots[0] if roots else None),
    ]
    blocks += samples_blocks(c)  # each arm's responses to the same held-out prompts (results/samples.py)
    return blocks


def matched_heading(c: Comparison, metric_name: str, budget_name: str) -> list[Block]:
    """The matched view's heading and what it read: at the common compute budget, or at the common KL."""
    each = ", within each SFT reference (a task or model is its own scale)" if c.common_by else ""
    if c.budget == KL:
        rule = "chosen with --at-kl" if c.common_chosen else f"the smallest peak KL{each}"
        at = c.common_said() if c.common_by else f"KL {fmt(c.common_budget)}"
        return [
            Heading(f"KL-matched: {metric_name} at {at}"),
            Paragraph(
                f"Each completed run's evaluation curve ({metric_name} against its KL to the reference, "
                f"eval/kl, in evaluation order, from the SFT policy at KL 0) read where it first reaches the "
                f"common KL ({rule} among the completed runs), linearly between the two evaluations "
                "around it, never extrapolated; a run that never reaches it is named in the notes."
            ),
        ]
    point = c.common_said(budget_name) if c.common_by else f"{fmt(c.common_budget)} {budget_name}"
    return [
        Heading(f"Compute-matched: {metric_name} at {point}"),
        Paragraph(
            f"Each completed run's evaluation curve ({metric_name} against cumulative {budget_name}, "
            f"starting from the SFT policy at 0) linearly interpolated at the common budget: the smallest "
            f"final {budget_name} among the completed runs{each}."
        ),
    ]


def matched_blocks(c: Comparison, metric_name: str) -> list[Block]:
    """The compute-matched tables, or the sentence that says why they would be empty."""
    why = matched_empty_reason(c)
    if why is not None:
        return [Paragraph(why)]
    point = f"KL {fmt(c.common_budget)}" if c.budget == KL and not c.common_by else "budget"
    point = "KL" if c.budget == KL and c.common_by else point
    return [
        group_table_block(c.matched, [(c.matched_column, f"{metric_name} at {point}")]),
        Paragraph(
            f"Paired by seed vs {c.matched_baseline} at the same {'KL' if c.budget == KL else 'budget'}"
            f"{', each within its SFT reference' if c.common_by else ''}:"
        ),
        paired_block(c.matched_paired),
    ]


def write_report(
    comparison: Comparison, roots: list[Path], out: Path
) -> tuple[dict[str, Path], list[tuple[str, Path]]]:
    """Writes figures, report.md, report.html, runs.csv and runs.parquet into out.

    Returns ({file name: path}, [(caption, figure path)]). A file that cannot be written (a full disk)
    is a ValueError naming it, the one line compare says (twentieth hunt, case 34: a 55-62-line
    traceback through PIL and matplotlib).
    """
    try:
        return _write_report(comparison, roots, out)
    except OSError as e:
        fix = "free space there, or choose another --out"
        raise ValueError(f"cannot write {e.filename or out} ({e.strerror}); {fix}") from None


def _write_report(comparison: Comparison, roots: list[Path], out: Path):
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(comparison, out) + across_figure(comparison.across_tasks, out)
    blocks = document(comparison, roots, figures)
    paths = {
        "report.md": out / "report.md",
        "report.html": out / "report.html",
        "runs.csv": out / "runs.csv",
        "runs.parquet": out / "runs.parquet",
    }
    whole(paths["report.md"], lambda tmp: tmp.write_text(to_markdown(blocks, out), encoding="utf-8"))
    whole(paths["report.html"], lambda tmp: tmp.write_text(to_html(blocks), encoding="utf-8"))
    whole(paths["runs.csv"], lambda tmp: comparison.runs.to_csv(tmp, index=False))
    whole(paths["runs.parquet"], lambda tmp: comparison.runs.to_parquet(tmp, index=False))
    return paths | {p.name: p for _, p in figures}, figures
