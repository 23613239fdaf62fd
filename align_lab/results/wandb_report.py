"""--wandb: the comparison as a W&B run (job_type "compare", in the study's group), and a W&B report
when `wandb_workspaces` is installed and the run is online.

wandb 0.31 ships `wandb.apis.reports` only as a shim over the separate `wandb_workspaces` package
(`pip install wandb[workspaces]`); without it the compare run (tables + figures) is the comparison.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path

from align_lab.results.comparison import Comparison
from align_lab.tracking.wandb_tracker import has_wandb_credentials

NOT_CONFIGURED = (
    "align_lab.compare: W&B is not configured (no WANDB_API_KEY or netrc login, and WANDB_MODE is unset); "
    "--wandb wrote nothing"
)


def wandb_mode(env: Mapping[str, str]) -> str | None:
    """The mode --wandb runs in: $WANDB_MODE when set (online needs a login), else online when
    logged in; None when W&B is not configured or disabled."""
    logged_in = has_wandb_credentials(env)
    mode = env.get("WANDB_MODE") or ("online" if logged_in else None)
    if mode in (None, "disabled") or (mode == "online" and not logged_in):
        return None
    return mode


def run_id(project: str, group: str, comparison: Comparison) -> str:
    """Stable per (project, study, grouping, metric, budget): re-running compare updates the same run."""
    key = "|".join([project, group, ",".join(comparison.by), comparison.metric, comparison.budget])
    return "compare-" + hashlib.sha1(key.encode()).hexdigest()[:10]


def summary_values(comparison: Comparison) -> dict[str, float | str]:
    """Flat W&B summary: each group's n and mean, its paired difference vs the baseline and verdict."""
    c = comparison
    name = c.metric.split("/")[-1]
    values: dict[str, float | str] = {
        "compare/baseline": c.baseline,
        "compare/common_budget": c.common_budget,
    }
    for _, r in c.group_table.iterrows():
        values[f"compare/{r['group']}/n"] = int(r["n"])
        values[f"compare/{r['group']}/{name}_mean"] = float(r[f"{c.metric}:mean"])
    for _, r in c.paired.iterrows():
        values[f"compare/{r['group']}/{name}_diff"] = float(r["diff"])
        values[f"compare/{r['group']}/p_holm"] = float(r["p_holm"])
        values[f"compare/{r['group']}/verdict"] = str(r["verdict"])
    for _, r in c.matched.iterrows():
        values[f"compare/{r['group']}/{name}_at_budget"] = float(r[f"{c.matched_column}:mean"])
    return values


def _tables(comparison: Comparison) -> dict:
    import wandb

    runs = comparison.runs.drop(columns=["problems"]).fillna({"error": ""})
    return {
        "compare/groups": wandb.Table(dataframe=comparison.group_table),
        "compare/paired": wandb.Table(dataframe=comparison.paired),
        "compare/compute_matched": wandb.Table(dataframe=comparison.matched),
        "compare/compute_matched_paired": wandb.Table(dataframe=comparison.matched_paired),
        "compare/runs": wandb.Table(dataframe=runs),
    }


def log_comparison(
    comparison: Comparison,
    figures: list[tuple[str, Path]],
    out: Path,
    project: str,
    group: str,
    mode: str,
) -> list[str]:
    """Creates (or updates) the compare run in out/wandb; returns the lines to print."""
    import wandb

    from align_lab.tracking.wandb_reader import wait_until_complete

    run = wandb.init(
        dir=str(out),
        project=project,
        group=group,
        job_type="compare",
        name=f"compare {group} by {','.join(comparison.by)}",
        id=run_id(project, group, comparison),
        resume="allow",
        config={
            "by": comparison.by,
            "metric": comparison.metric,
            "budget": comparison.budget,
            "baseline": comparison.baseline,
            "groups": comparison.groups,
        },
        mode=mode,
        reinit="create_new",
        settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
    )
    run.log(
        {
            **_tables(comparison),
            **{f"figures/{p.stem}": wandb.Image(str(p), caption=caption) for caption, p in figures},
        }
    )
    run.summary.update(summary_values(comparison))
    url, entity = (run.url, run.entity) if mode == "online" else (None, None)  # offline warns on .url
    sync_file = Path(run.settings.sync_file)
    run.finish()
    if mode != "online":
        wait_until_complete(sync_file)
        return [
            f"align_lab.compare: W&B {mode}: compare run written to {sync_file.parent} "
            "(wandb sync uploads it)"
        ]
    lines = [f"align_lab.compare: W&B run of the comparison: {url}"]
    if importlib.util.find_spec("wandb_workspaces") is None:
        lines.append(
            "align_lab.compare: no W&B report: wandb_workspaces is not installed "
            "(pip install wandb[workspaces])"
        )
    else:
        lines.append(create_report(comparison, project, group, entity))
    return lines


def create_report(comparison: Comparison, project: str, group: str, entity: str) -> str:
    """A W&B report over the study's runs (not exercised by the tests: it needs the network)."""
    try:
        import wandb_workspaces.reports.v2 as wr

        runset = wr.Runset(entity=entity, project=project, name=group, filters=f"Config('study') = '{group}'")
        compare_runs = wr.Runset(
            entity=entity,
            project=project,
            name="compare",
            filters=f"Config('metric') = '{comparison.metric}'",
        )
        report = wr.Report(
            entity=entity,
            project=project,
            title=f"align_lab: {group} by {', '.join(comparison.by)}",
            description=f"{comparison.metric}, baseline {comparison.baseline} (python -m align_lab.compare)",
            blocks=[
                wr.PanelGrid(
                    runsets=[runset],
                    panels=[
                        wr.LinePlot(x="Step", y=[comparison.metric]),
                        wr.ScatterPlot(x="eval/kl", y="eval/gold_reward"),
                    ],
                ),
                wr.PanelGrid(
                    runsets=[compare_runs],
                    panels=[
                        wr.WeavePanelSummaryTable(table_name="compare/paired"),
                        wr.WeavePanelSummaryTable(table_name="compare/groups"),
                    ],
                ),
            ],
        )
        report.save()
        return f"align_lab.compare: W&B report: {report.url}"
    except Exception as e:  # a preview API: a failure must not lose the compare run
        return (
            f"align_lab.compare: W&B report not created ({type(e).__name__}: {e}); "
            "the compare run holds the tables"
        )
