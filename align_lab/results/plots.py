"""The report's figures, as PNG files. matplotlib's object API with the Agg canvas: no pyplot state."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from align_lab.results import stats
from align_lab.results.comparison import Comparison
from align_lab.results.extract import WALL_TIME
from align_lab.results.runs import COMPLETED
from align_lab.results.stats import fmt
from align_lab.value_checks import whole

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

AXIS_LABELS = {
    "step": "training step",
    "counters/generated_tokens": "generated tokens",
    "counters/reward_queries": "reward queries",
    "counters/trained_tokens": "trained tokens (response tokens in the policy's loss)",
    WALL_TIME: "wall time (s, sum of step times)",
    "eval/kl": "KL to the reference (eval/kl), in evaluation order",
}
DPI = 110


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text.split("/")[-1]).strip("_") or "metric"


def label(key: str) -> str:
    """eval/gold_reward -> gold reward."""
    return key.split("/")[-1].replace("_", " ")


def group_colors(groups: list[str]) -> dict[str, str]:
    palette = [f"C{i}" for i in range(10)]
    return {g: palette[i % len(palette)] for i, g in enumerate(groups)}


def _figure(width: float = 7.0, height: float = 4.5) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    whole(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))  # whole, or not there
    return path


def plot_curves(comparison: Comparison, axis: str, path: Path) -> Path:
    """The metric against `axis`: thin line per run, group mean and 95% CI band over runs."""
    fig, ax = _figure()
    colors = group_colors(comparison.groups)
    for g, curves in comparison.curves[axis].items():
        curves = [c for c in curves if len(c[0])]
        if not curves:
            continue
        for x, y in curves:
            ax.plot(x, y, color=colors[g], alpha=0.25, linewidth=0.8)
        grid, mean, lo, hi = stats.band(curves)
        bottom, top = stats.metric_range(
            comparison.metric, comparison.runs
        )  # the band stays in the metric's range
        lo, hi = np.maximum(lo, bottom), np.minimum(hi, top)
        ax.plot(
            grid, mean, color=colors[g], linewidth=2, marker="o", markersize=3, label=f"{g} (n={len(curves)})"
        )
        if np.isfinite(lo).any():
            ax.fill_between(grid, lo, hi, color=colors[g], alpha=0.2, linewidth=0)
    ax.set_xlabel(AXIS_LABELS.get(axis, axis))
    ax.set_ylabel(label(comparison.metric))
    ax.set_title(f"{label(comparison.metric)} vs {AXIS_LABELS.get(axis, axis)}: mean and 95% CI over seeds")
    _finish(ax)
    return _save(fig, path)


def _finish(ax: Axes) -> None:
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no completed run logged this", ha="center", va="center", transform=ax.transAxes)


def plot_frontier(comparison: Comparison, path: Path) -> Path:
    """Final KL (x) vs final gold reward (y): a dot per run, the group mean with 95% CIs."""
    fig, ax = _figure()
    colors = group_colors(comparison.groups)
    done = comparison.runs[comparison.runs["status"] == COMPLETED]
    for g in comparison.groups:
        mine = done[(done["group"] == g) & done["eval/kl"].notna() & done["eval/gold_reward"].notna()]
        if mine.empty:
            continue
        x, y = mine["eval/kl"].to_numpy(float), mine["eval/gold_reward"].to_numpy(float)
        ax.scatter(x, y, color=colors[g], alpha=0.45, s=22)
        xerr = _err(x, stats.t_ci(x))
        yerr = _err(y, stats.t_ci(y))
        ax.errorbar(
            x.mean(),
            y.mean(),
            xerr=xerr,
            yerr=yerr,
            color=colors[g],
            marker="D",
            markersize=8,
            capsize=3,
            linewidth=1.5,
            label=f"{g} (n={len(mine)})",
        )
    matched = _frontier_matched(comparison, ax, colors)
    ax.set_xlabel("final KL to the SFT policy (eval/kl)")
    ax.set_ylabel("final gold reward")
    ax.set_title("Reward-KL frontier: runs (dots), group means with 95% CIs" + matched)
    _finish(ax)
    return _save(fig, path)


def _frontier_matched(comparison: Comparison, ax: Axes, colors: dict[str, str]) -> str:
    """Each group's mean gold reward at the common KL (hollow squares with 95% CIs, on a dotted line at
    that KL; results/matched.py); the title's addition, "" when there is no common KL."""
    from align_lab.results.matched_claims import FRONTIER_COLUMN

    at = comparison.frontier_kl
    if not math.isfinite(at) or FRONTIER_COLUMN not in comparison.runs:
        return ""
    done = comparison.runs[comparison.runs["status"] == COMPLETED]
    ax.axvline(at, color="0.5", linestyle=":", linewidth=1)
    for g in comparison.groups:
        y = done.loc[done["group"] == g, FRONTIER_COLUMN].dropna().to_numpy(float)  # (runs,)
        if len(y):
            ax.errorbar(
                at, y.mean(), yerr=_err(y, stats.t_ci(y)), color=colors[g], marker="s", markersize=8,
                markerfacecolor="none", capsize=3, linestyle="none", label=f"{g} at KL {fmt(at)}",
            )  # fmt: skip
    return f";\nsquares: at equal KL {fmt(at)}"


def _err(values: np.ndarray, ci: tuple[float, float]) -> np.ndarray | None:
    if not all(map(math.isfinite, ci)):
        return None
    mean = values.mean()
    return np.array([[max(mean - ci[0], 0.0)], [max(ci[1] - mean, 0.0)]])  # (2, 1)


def plot_overoptimisation(comparison: Comparison, path: Path) -> Path:
    """Proxy reward (x) vs gold reward (y) over training: thin per run, bold group mean by step."""
    fig, ax = _figure()
    colors = group_colors(comparison.groups)
    for g, trajectories in comparison.trajectories.items():
        trajectories = [t for t in trajectories if len(t[0])]
        if not trajectories:
            continue
        for _, proxy, gold in trajectories:
            ax.plot(proxy, gold, color=colors[g], alpha=0.25, linewidth=0.8)
        steps, proxy_mean, _, _ = stats.band([(s, p) for s, p, _ in trajectories])
        _, gold_mean, _, _ = stats.band([(s, y) for s, _, y in trajectories])
        if len(steps) == 0:
            continue
        ax.plot(
            proxy_mean,
            gold_mean,
            color=colors[g],
            linewidth=2,
            marker="o",
            markersize=3,
            label=f"{g} (n={len(trajectories)})",
        )
        ax.plot(proxy_mean[-1:], gold_mean[-1:], color=colors[g], marker="*", markersize=12)
    ax.set_xlabel("proxy reward (what training optimised)")
    ax.set_ylabel("gold reward")
    ax.set_title("Over-optimisation: proxy vs gold over training (start = SFT, star = end)")
    _finish(ax)
    return _save(fig, path)


def plot_by_group(comparison: Comparison, path: Path) -> Path:
    """The metric per group, final and at the common budget: seeds as dots, mean with 95% CI."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    panels = [
        (comparison.metric, "final"),
        (
            comparison.matched_column,
            "at each SFT reference's common point"
            if comparison.common_by
            else f"at {fmt(comparison.common_budget)} {comparison.budget.replace('_', ' ')}",
        ),
    ]
    done = comparison.runs[comparison.runs["status"] == COMPLETED]
    colors = group_colors(comparison.groups)
    for i, (column, title) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        for j, g in enumerate(comparison.groups):
            values = done.loc[done["group"] == g, column].dropna().to_numpy(float)
            if len(values) == 0:
                continue
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(j + jitter, values, color=colors[g], alpha=0.5, s=20)
            ax.errorbar(
                j + 0.3,
                values.mean(),
                yerr=_err(values, stats.t_ci(values)),
                color=colors[g],
                marker="D",
                capsize=4,
            )
        ax.set_xticks(range(len(comparison.groups)), comparison.groups, rotation=20, ha="right")
        ax.set_ylabel(label(comparison.metric))
        ax.set_title(f"{label(comparison.metric)}, {title}")
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def write_figures(comparison: Comparison, out: Path) -> list[tuple[str, Path]]:
    """Every figure as out/<name>.png; [(caption, path)] in report order."""
    name = slug(comparison.metric)
    figures = []
    for axis in comparison.curves:
        caption = f"{label(comparison.metric)} vs {AXIS_LABELS.get(axis, axis)}"
        figures.append((caption, plot_curves(comparison, axis, out / f"{name}_vs_{slug(axis)}.png")))
    figures.append(("Reward-KL frontier", plot_frontier(comparison, out / "reward_kl_frontier.png")))
    figures.append(("Proxy vs gold reward", plot_overoptimisation(comparison, out / "proxy_vs_gold.png")))
    figures.append(
        (f"{label(comparison.metric)} per group", plot_by_group(comparison, out / f"{name}_by_group.png"))
    )
    return figures
