"""The comparison as a W&B dashboard, built from wandb_workspaces' own models: a Report (the claim
table, one panel row per claim metric, the runs' samples, the compare run's tables) and a Workspace
view of the same runs. Building is pure (no network: every runset's entity is "" until `save`);
`dashboard_json` is what would be created, `save_dashboard` creates it (needs a W&B login).

The study's runs are the W&B runs of its group (tracker.group = the study's name) other than the
compare run, grouped by the comparison's `by` keys: `algo` is each run's job type, another config
group (an arm) is `choices.<group>` of the run's W&B config, a dotted key is the config key itself.
Runs of no named study (group `default`, shared by every unnamed study) are named by their W&B ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from align_lab.results.stats import fmt, fmt_ci

if TYPE_CHECKING:
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    from align_lab.results.comparison import Comparison

SAMPLES_TABLE = "eval/samples"  # the completions table every run logs at each evaluation
COMPARE_TABLES = ("compare/claims", "compare/groups", "compare/paired")  # logged by the compare run


def claim_metrics(c: Comparison) -> list[str]:
    """The metrics the claims name, in order, once; the compared metric when there are no claims."""
    from align_lab.results.claims import parse_claim

    metrics = [] if c.claims is None else [parse_claim(t).metric for t in c.claims["claim"]]
    return list(dict.fromkeys(metrics)) or [c.metric]


def wandb_groupby(key: str, choices: Collection[str]) -> str:
    """Where a `--by` key lives in a run's W&B record (a Runset groupby string)."""
    if key == "algo":
        return "JobType"  # tracker: job_type = the algorithm's config choice
    return f"config.choices.{key}" if key in choices else f"config.{key}"


def study_filter(group: str, job: str = "!= 'compare'", ids: Sequence[str] = ()) -> str:
    """The W&B filter of the study's runs (default) or of its compare run (job="= 'compare'"); ids: the
    runs' own W&B ids, for runs of no named study (their group, `default`, holds every unnamed study)."""
    scope = f" and ID in [{', '.join(repr(str(i)) for i in ids)}]" if ids else ""
    return f"Group = '{group}'{scope} and JobType {job}"


def run_id(project: str, group: str, comparison: Comparison, ids: Sequence[str] = ()) -> str:
    """Stable per (project, study, grouping, metric, budget, and an unnamed study's run ids): re-running
    compare updates the same run, and two unnamed studies never share one."""
    key = "|".join([project, group, ",".join(comparison.by), comparison.metric, comparison.budget, *ids])
    return "compare-" + hashlib.sha1(key.encode()).hexdigest()[:10]


def claims_markdown(c: Comparison) -> str:
    """The claim table (or, without claims, each group's paired difference from the baseline)."""
    if c.claims is None:
        head = f"| group | {c.metric} - {c.baseline} [95% CI] | Holm p | verdict |\n|---|---|---|---|\n"
        rows = [
            f"| {r.group} | {fmt_ci(r.diff, r.diff_lo, r.diff_hi)} | {fmt(r.p_holm)} | {r.verdict} |"
            for r in c.paired.itertuples()
        ]
        return head + "\n".join(rows)
    head = "| claim | verdict | a - b [95% CI] | seeds | p | Holm p | why |\n|---|---|---|---|---|---|---|\n"
    rows = [
        f"| {r.claim} | **{r.verdict}** | {fmt_ci(r.diff, r.diff_lo, r.diff_hi)} | {r.n_pairs} | "
        f"{fmt(r.p)} | {fmt(r.p_holm)} | {r.why or ''} |"
        for r in c.claims.itertuples()
    ]
    return head + "\n".join(rows)


def metric_panels(metric: str, groupby: str) -> list:
    """A metric over steps (mean and standard error per group) and its final value per group."""
    import wandb_workspaces.reports.v2 as wr

    key = wr.Config(groupby.split(".", 1)[1]) if groupby.startswith("config.") else groupby
    agg: dict[str, Any] = {"groupby": key, "groupby_aggfunc": "mean", "groupby_rangefunc": "stderr"}
    return [
        wr.LinePlot(title=f"{metric} over steps", x="Step", y=[metric], **agg),
        wr.BarPlot(title=f"{metric}, final", metrics=[metric], orientation="v", **agg),
    ]


def build_report(
    c: Comparison, project: str, group: str, entity: str = "", choices: Collection[str] = (), ids=()
) -> wr.Report:
    """The report of a comparison (no network; entity "" until it is saved); ids: study_filter's."""
    import wandb_workspaces.reports.v2 as wr

    groupby = wandb_groupby(c.by[0], choices)  # panels group by one key: a multi-key grouping's first
    study = wr.Runset(
        entity=entity, project=project, name=group, filters=study_filter(group, ids=ids), groupby=[groupby]
    )
    mine = [run_id(project, group, c, ids)] if ids else []  # an unnamed study's own compare run
    compare_run = wr.Runset(
        entity=entity, project=project, name="compare", filters=study_filter(group, "= 'compare'", mine)
    )
    blocks: list = [
        wr.MarkdownBlock(
            f"{c.headline}\n\nBuilt by `python -m align_lab.compare --wandb`; runs grouped by {groupby}."
        ),
        wr.H1("Claims"),
        wr.MarkdownBlock(claims_markdown(c)),
    ]
    for metric in claim_metrics(c):
        blocks += [wr.H2(metric), wr.PanelGrid(runsets=[study], panels=metric_panels(metric, groupby))]
    blocks += [
        wr.H1("Samples"),
        wr.MarkdownBlock(f"Each run's completions at its last evaluation (W&B table `{SAMPLES_TABLE}`)."),
        wr.PanelGrid(runsets=[study], panels=[wr.WeavePanelSummaryTable(table_name=SAMPLES_TABLE)]),
        wr.H1("Compare run"),
        wr.PanelGrid(
            runsets=[compare_run], panels=[wr.WeavePanelSummaryTable(table_name=t) for t in COMPARE_TABLES]
        ),
    ]
    title = f"align_lab: {group} by {', '.join(c.by)}"[:128]
    return wr.Report(entity=entity, project=project, title=title, description=c.metric, blocks=blocks)


def build_workspace(
    c: Comparison, project: str, group: str, entity: str = "", choices: Collection[str] = (), ids=()
) -> ws.Workspace:
    """A saved workspace view of the study's runs: the claims, a section per claim metric, the samples."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    groupby = wandb_groupby(c.by[0], choices)
    claims = wr.MarkdownPanel(markdown=claims_markdown(c))
    sections = [ws.Section(name="claims", is_open=True, panels=[claims])]
    sections += [ws.Section(name=m, is_open=True, panels=metric_panels(m, groupby)) for m in claim_metrics(c)]
    sections.append(ws.Section(name="samples", panels=[wr.WeavePanelSummaryTable(table_name=SAMPLES_TABLE)]))
    settings = ws.RunsetSettings(filters=study_filter(group, ids=ids), groupby=[_groupby_metric(groupby)])
    return ws.Workspace(
        entity=entity, project=project, name=f"align_lab {group}", sections=sections, runset_settings=settings
    )


def _groupby_metric(groupby: str):
    from wandb_workspaces import expr

    return expr.Config(groupby.split(".", 1)[1]) if groupby.startswith("config.") else expr.Metric(groupby)


def dashboard_json(report: wr.Report, workspace: ws.Workspace) -> dict:
    """What `save_dashboard` would create: each object as built, and the view specs W&B receives (the
    runsets' project ids are looked up when saved). Offline only: an entity set would query W&B."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws
    from pydantic import TypeAdapter

    if report.entity or workspace.entity:
        entity = report.entity or workspace.entity
        raise ValueError(f"entity={entity!r}: dashboard_json takes unsaved objects (entity '')")
    dump = {"by_alias": True, "exclude_none": True, "mode": "json"}
    return {
        "report": TypeAdapter(wr.Report).dump_python(report, mode="json"),
        "report_spec": report._to_model().model_dump(**dump),
        "workspace": TypeAdapter(ws.Workspace).dump_python(workspace, mode="json"),
        "workspace_spec": workspace._to_model().model_dump(**dump),
    }


def save_dashboard(report: wr.Report, workspace: ws.Workspace) -> list[str]:
    """Creates the report and the workspace view in W&B (network); their URLs."""
    report.save()
    workspace.save()
    return [report.url, workspace.url]
