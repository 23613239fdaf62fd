"""Verdicts across tasks with rliable (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice"): when a study's runs span several tasks, each run's final score on its task's metric is
normalised as declared in the sweep file's `normalise:`,
  score = (x - low) / (high - low)      (low / high: numbers, or `sft`: the task's SFT score)
and each arm's (seeds x tasks) matrix gives
  - IQM: the mean of the middle 50% of all its scores (rliable metrics.aggregate_iqm, scipy's
    trim_mean at 25%), with a 95% stratified-bootstrap CI (seeds resampled within each task),
  - P(X > Y): the probability that a run of X beats a run of Y on a task (Mann-Whitney U / (n_x n_y)),
    averaged over tasks (metrics.probability_of_improvement), with its bootstrap CI,
  - performance profiles: the fraction of runs with score > tau (rliable score_distributions).
The bootstraps are rliable's StratifiedBootstrap classes, seeded: rliable 1.2's get_interval_estimates
and create_performance_profile hand arch a `random_state` keyword that arch >= 8 (the one that imports
under pandas 3) no longer takes (a TypeError, even for None), and rliable draws its resampling
indices from np.random's global state whatever that keyword says; `interval_estimates` below is
their loop with the keyword handed to arch as `seed` and np.random's global state seeded around each
bootstrap (and restored after).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from align_lab.results.extract import final_value, is_completed
from align_lab.results.runs import Run, format_value, group_label, lookup, run_seed
from align_lab.value_checks import whole

REPS = 2000  # bootstrap replications (rliable's default for profiles)
SEED = 0
SFT_SCORE = "sft"
FIGURE = "across_tasks_profiles.png"


def _seeded(cls: type) -> type:
    """rliable's bootstrap class `cls`, with its `random_state` handed to arch as `seed`."""
    base = cls.__mro__[1]  # arch's IIDBootstrap or IndependentSamplesBootstrap

    class Seed(base):
        def __init__(self, *args, random_state=None, **kwargs):
            super().__init__(*args, seed=random_state, **kwargs)

    return type(cls.__name__, (cls, Seed), {})


def interval_estimates(score_dict: dict, func, reps: int = REPS, seed: int = SEED) -> tuple[dict, dict]:
    """rliable's get_interval_estimates (percentile 95% CIs), seeded: key -> func(scores) and key ->
    (2, ...) [lower; upper]; a tuple of matrices is bootstrapped independently (per-task strata)."""
    from rliable import library

    points, intervals = {}, {}
    for key, scores in score_dict.items():
        if isinstance(scores, np.ndarray):
            bs = _seeded(library.StratifiedBootstrap)(scores, random_state=seed)
            points[key] = func(scores)
        else:
            bs = _seeded(library.StratifiedIndependentBootstrap)(*scores, random_state=seed)
            points[key] = func(*scores)
        with global_seed(seed):  # rliable draws its resampling indices from np.random's global state
            intervals[key] = bs.conf_int(func, reps=reps, size=0.95, method="percentile")
    return points, intervals


@contextmanager
def global_seed(seed: int):
    """np.random's legacy global state seeded inside, restored after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def improvement_probability(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """rliable's metrics.probability_of_improvement, vectorised for its bootstrap (scipy's Mann-Whitney
    U per task and resample made a pair's 2,000 resamples take 11 s): per task P(x > y) + P(x = y) / 2
    over all (run of x, run of y), averaged over tasks. x (n_x, tasks), y (n_y, tasks) -> (1,)."""
    gt = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))  # (tasks,)
    eq = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))  # (tasks,)
    return np.array([np.mean(gt + 0.5 * eq)])


def score_distribution(scores: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """rliable's library.score_distributions (the fraction of all scores > tau), vectorised over tau."""
    return (scores.reshape(-1)[:, None] > tau[None, :]).mean(axis=0)  # (taus,)


@dataclass(frozen=True)
class Normalisation:
    metric: str
    low: float
    high: float
    said: str  # "eval/pass@1 from SFT 0.12 to 1"


@dataclass
class AcrossTasks:
    tasks: list[str]  # every task the completed runs span
    normalised: dict[str, Normalisation]  # the tasks that enter the aggregate
    notes: list[str] = field(default_factory=list)
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # arm -> (seeds, tasks)
    iqm: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # arm -> (IQM, lo, hi)
    improvement: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)
    tau: np.ndarray = field(default_factory=lambda: np.array([]))
    profiles: dict[str, np.ndarray] = field(default_factory=dict)  # arm -> (taus,)
    profile_cis: dict[str, np.ndarray] = field(default_factory=dict)  # arm -> (2, taus)


def task_of(run: Run) -> str:
    return format_value(lookup(run, "task"))


def declared(runs: list[Run]) -> dict[str, dict]:
    """task -> its `normalise:` entry, from the runs' saved configs (the first run that declares it)."""
    out: dict[str, dict] = {}
    for run in runs:
        for task, spec in (run.config.get("normalise") or {}).items():
            out.setdefault(str(task), spec)
    return out


def _bound(task: str, spec: dict, key: str, sft: float) -> float:
    value = spec.get(key)
    if value == SFT_SCORE:
        if not math.isfinite(sft):
            raise ValueError(
                f"normalise.{task}.{key}: sft, but no run of {task} reports {spec['metric']}_sft"
            )
        return sft
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"normalise.{task}.{key}: {value!r}; allowed: a number or {SFT_SCORE}")


def normalisation(task: str, spec: dict, runs: list[Run]) -> Normalisation:
    """The task's (metric, low, high), `sft` read as the mean SFT score of its completed runs
    (`<metric>_sft`); one-line ValueError for a malformed entry."""
    if not isinstance(spec, dict) or not isinstance(spec.get("metric"), str):
        raise ValueError(
            f"normalise.{task}: {spec!r}; write {{metric: eval/..., low: <number|sft>, high: ...}}"
        )
    metric = spec["metric"]
    sft_values = [final_value(r, f"{metric}_sft") for r in runs]
    sft = (
        float(np.mean([v for v in sft_values if math.isfinite(v)]))
        if any(map(math.isfinite, sft_values))
        else math.nan
    )
    low, high = _bound(task, spec, "low", sft), _bound(task, spec, "high", sft)
    if not (math.isfinite(low) and math.isfinite(high)) or low == high:
        raise ValueError(f"normalise.{task}: low {low:g} and high {high:g} must be two different numbers")

    def said(key: str, value: float) -> str:
        return f"SFT {value:.3g}" if spec.get(key) == SFT_SCORE else f"{value:g}"

    return Normalisation(metric, low, high, f"{metric} from {said('low', low)} to {said('high', high)}")


def score_matrices(runs: list[Run], arms_of: dict, norms: dict[str, Normalisation]) -> tuple[dict, list[str]]:
    """arm -> (seeds, tasks) normalised final scores over the seeds the arm has on every task (a
    seed's runs averaged), and notes on what was left out."""
    tasks = list(norms)
    cells: dict[tuple[str, str, int], list[float]] = {}
    for run in runs:
        task, seed = task_of(run), run_seed(run)
        if task in norms and seed is not None:
            n = norms[task]
            x = (final_value(run, n.metric) - n.low) / (n.high - n.low)
            if math.isfinite(x):
                cells.setdefault((arms_of[id(run)], task, seed), []).append(x)
    matrices, notes = {}, []
    for arm in sorted({a for a, _, _ in cells}):
        per_task = [{s for a, t, s in cells if a == arm and t == task} for task in tasks]
        seeds = sorted(set.intersection(*per_task))
        if not seeds:
            notes.append(
                f"across tasks: {arm} has no seed with a score on every task ({', '.join(tasks)}): left out"
            )
            continue
        left = sorted(set.union(*per_task) - set(seeds))
        if left:
            notes.append(f"across tasks: {arm}'s seeds {left} lack a task: left out")
        matrices[arm] = np.array(
            [[np.mean(cells[(arm, t, s)]) for t in tasks] for s in seeds]
        )  # (seeds, tasks)
    return matrices, notes


def across_tasks(runs: list[Run], by: list[str], reps: int = REPS, seed: int = SEED) -> AcrossTasks | None:
    """IQM, probability of improvement and performance profiles of each arm (the runs' group by `by`
    without `task`) across the tasks its completed runs span; None for runs of one task."""
    done = [r for r in runs if is_completed(r)]
    tasks = sorted({task_of(r) for r in done})
    keys = [k for k in by if k != "task"]
    if len(tasks) < 2 or not keys:
        return None
    specs = declared(done)
    result = AcrossTasks(tasks, {})
    for task in tasks:
        if task not in specs:
            result.notes.append(
                f"across tasks: task {task} has no normalisation (the sweep file's `normalise:`)"
            )
            continue
        try:
            result.normalised[task] = normalisation(
                task, specs[task], [r for r in done if task_of(r) == task]
            )
        except ValueError as e:
            result.notes.append(f"across tasks: task {task} left out: {e}")
    if len(result.normalised) < 2:
        result.notes.append("across tasks: fewer than 2 normalised tasks, no aggregate")
        return result
    from rliable import metrics  # seaborn, absl, arch: 5 s, only where there is an aggregate to compute

    arms_of = {id(r): group_label(r, keys) for r in done}
    result.scores, notes = score_matrices(done, arms_of, result.normalised)
    result.notes += notes
    iqm = lambda s: np.array([metrics.aggregate_iqm(s)])  # noqa: E731
    points, cis = interval_estimates(result.scores, iqm, reps, seed)
    result.iqm = {a: (float(points[a][0]), float(cis[a][0, 0]), float(cis[a][1, 0])) for a in result.scores}
    arms = list(result.scores)
    pairs = {(x, y): (result.scores[x], result.scores[y]) for i, x in enumerate(arms) for y in arms[i + 1 :]}
    _, cis = interval_estimates(pairs, improvement_probability, reps, seed)
    result.improvement = {
        k: (float(metrics.probability_of_improvement(*pairs[k])), float(cis[k][0, 0]), float(cis[k][1, 0]))
        for k in pairs
    }
    everything = np.concatenate([m.ravel() for m in result.scores.values()]) if arms else np.array([0.0])
    result.tau = np.linspace(min(0.0, everything.min()), max(1.0, everything.max()), 101)
    profile = lambda s: score_distribution(s, result.tau)  # noqa: E731
    result.profiles, result.profile_cis = interval_estimates(result.scores, profile, reps, seed)
    return result


def _ci(point: float, lo: float, hi: float) -> str:
    return f"{point:.3g} [{lo:.3g}, {hi:.3g}]"


def header(a: AcrossTasks) -> str:
    said = "; ".join(f"{t}: {n.said}" for t, n in a.normalised.items())
    tasks = ", ".join(a.tasks)
    return f"across tasks ({tasks}), normalised scores ({said}), rliable with 95% stratified-bootstrap CIs:"


def across_lines(a: AcrossTasks | None) -> list[str]:
    """The terminal's lines: each arm's IQM, each pair's P(X > Y), and what was left out."""
    if a is None:
        return []
    lines = [header(a)] if a.iqm else []
    for arm, (point, lo, hi) in a.iqm.items():
        seeds, tasks = a.scores[arm].shape
        lines.append(f"  IQM {arm:<20} {_ci(point, lo, hi)}   ({seeds} seeds x {tasks} tasks)")
    lines += [f"  P({x} > {y}) = {_ci(*p)}" for (x, y), p in a.improvement.items()]
    return lines + [f"  note: {note}" for note in a.notes]


def across_blocks(a: AcrossTasks | None) -> list:
    """The report's section: the method, a table of IQMs and one of probabilities of improvement."""
    from align_lab.results.render import Bullets, Heading, Paragraph, Table

    if a is None:
        return []
    blocks = [
        Heading("Across tasks"),
        Paragraph(
            "Each run's final score on its task normalised, (x - low) / (high - low), as the sweep file's "
            "`normalise:` declares (low/high `sft`: the task's SFT score); per arm, the (seeds x tasks) "
            "matrix aggregated with rliable (Agarwal et al. 2021): IQM, the mean of the middle 50% of the "
            "scores, and P(X > Y), the chance that a run of X beats one of Y on a task averaged over "
            "tasks, each with a 95% stratified-bootstrap CI (seeds resampled within tasks). "
            + (header(a) if a.iqm else "")
        ),
    ]
    if a.iqm:
        rows = [[arm, str(a.scores[arm].shape[0]), _ci(*v)] for arm, v in a.iqm.items()]
        blocks.append(Table(["arm", "seeds (x tasks)", "IQM [95% CI]"], rows))
        rows = [[x, y, _ci(*p)] for (x, y), p in a.improvement.items()]
        blocks.append(Table(["X", "Y", "P(X > Y) [95% CI]"], rows))
    return blocks + ([Bullets(a.notes)] if a.notes else [])


def across_figure(a: AcrossTasks | None, out: Path) -> list[tuple[str, Path]]:
    """Performance profiles (rliable plot_utils) as a PNG: [(caption, path)], or [] without scores."""
    if a is None or not a.profiles:
        return []
    from matplotlib.figure import Figure
    from rliable import plot_utils

    fig = Figure(figsize=(7, 4), layout="constrained")  # the Agg canvas, no pyplot state (as plots.py)
    ax = fig.subplots()
    plot_utils.plot_performance_profiles(
        a.profiles, a.tau, performance_profile_cis=a.profile_cis, ax=ax, xlabel=r"normalised score $\tau$"
    )
    ax.legend(title="arm", loc="upper right")  # rliable labels each line with its arm, draws no legend
    path = out / FIGURE
    whole(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    return [
        (f"Performance profiles across {', '.join(a.normalised)}: fraction of runs scoring above tau", path)
    ]
