"""Per-run numbers: final metrics, compute counters and eval curves, from summary.json and metrics.jsonl.

A key a run did not log (a pairwise run has no `time/rollout_s`, an old run no memory) is NaN.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from align_lab.results.runs import COMPLETED, Run, format_value, group_label, run_seed

NAN = float("nan")
# (key, label) of the per-group table; keys are summary.json / metrics.jsonl keys.
FINAL_METRICS = (
    ("eval/gold_reward", "gold reward"),
    ("eval/proxy_reward", "proxy reward"),
    ("eval/kl", "KL"),
    ("eval/win_rate_vs_sft", "win rate vs SFT"),
    ("eval/response_length", "response length"),
    ("time/total_s", "wall time (s)"),
    ("counters/generated_tokens", "generated tokens"),
    ("counters/trained_tokens", "trained tokens"),
    ("memory/peak_mb", "peak memory (MB)"),
    # the run's mean fraction of the machine's measured bandwidth (rollout) and matmul rate (update):
    # train/roofline.py, docs/performance.md
    ("perf/rollout_mbu", "rollout MBU"),
    ("perf/update_mfu", "update MFU"),
)
# Cumulative compute. trained_tokens: response tokens in the policy's loss, summed over its updates
# (online: each minibatch of each epoch; pairwise: chosen + rejected of each step's pairs), so an
# offline DPO run, which generates nothing, has a place on a compute axis too.
COUNTERS = ("counters/generated_tokens", "counters/reward_queries", "counters/trained_tokens")
WALL_TIME = "wall time"  # x axis: cumulative time/step_s
BUDGETS = {
    "generated_tokens": "counters/generated_tokens",
    "reward_queries": "counters/reward_queries",
    "trained_tokens": "counters/trained_tokens",
    # seconds the steps took (their time/step_s summed: the stages and evaluations left out), for a
    # claim at equal wall time, such as distillation's (sweeps/distill_vs_rl.yaml); machine-dependent
    "wall_time": WALL_TIME,
    # not compute: the KL to the reference (results/matched.py), for a comparison at equal KL (Gao et al.
    # 2023's reward-KL frontier read at one KL); its common point is the smallest peak KL
    "kl": "eval/kl",
}
KL = "kl"  # the budget that is a KL, not compute


def number(value: Any) -> float:
    """A float, or NaN for anything that is not a finite-able number (None, strings, dicts)."""
    if isinstance(value, bool) or value is None:
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def last_value(records: list[dict], key: str) -> float:
    """The key's value in the last record that has a number for it; NaN if none has."""
    for record in reversed(records):
        value = number(record.get(key))
        if not math.isnan(value):
            return value
    return NAN


# `mean(<metric>)`, `std(<metric>)`: a statistic over every value a run logged of the metric, for claims
# about a run's course rather than its end (the spread of train/grad_norm; the mean of the evaluations'
# eval/pass@1, higher for the run that reaches a pass@1 sooner)
OVER_STEPS = re.compile(r"^(?P<stat>mean|std)\((?P<metric>[^()\s]+)\)$")


def over_steps(records: list[dict], stat: str, key: str) -> float:
    """The mean or the population standard deviation (numpy's, ddof 0) of the key's logged numbers, in
    step order; NaN if none is logged."""
    values = np.array([v for r in records if not math.isnan(v := number(r.get(key)))])  # (steps,)
    if not len(values):
        return NAN
    return float(values.mean() if stat == "mean" else values.std())


def logged_metric(key: str) -> str:
    """The metric a run logs behind `key`: the one inside `mean(...)` / `std(...)`, else the key."""
    m = OVER_STEPS.match(key)
    return m["metric"] if m else key


def final_value(run: Run, key: str) -> float:
    """summary.json's value (NaN stays NaN: an earlier evaluation is not the final one), else the last
    logged one (a running run's latest evaluation); `mean(<metric>)` / `std(<metric>)`: over_steps."""
    m = OVER_STEPS.match(key)
    if m:
        return over_steps(run.metrics, m["stat"], m["metric"])
    return number(run.summary[key]) if key in run.summary else last_value(run.metrics, key)


def stopped_step(run: Run) -> float:
    """The step train.stop_at stopped the run at (summary.json `stopped`; results/stopped.py says so in
    the notes), NaN for a run that trained on."""
    stop = run.summary.get("stopped")
    step = stop.get("step") if isinstance(stop, dict) else None
    return float(step) if isinstance(step, int | float) else math.nan


def run_row(run: Run, by: list[str], metric: str) -> dict[str, Any]:
    """One row of runs.csv: identity, status, final metrics, budget counters, time."""
    seed = run_seed(run)
    row: dict[str, Any] = {
        "folder": str(run.folder),
        "group": group_label(run, by),
        "seed": seed if seed is not None else NAN,
        "status": run.status,
        "error": run.error,
        "algo": format_value(run.choices.get("algo", run.summary.get("algo"))),
        "study": format_value(run.config.get("study")) if "study" in run.config else "",
        "config_digest": str(run.summary.get("config_digest") or ""),  # one run trained twice: tables.py
        "last_step": last_value(run.metrics, "step"),
    }
    for key, _ in FINAL_METRICS:
        if key not in COUNTERS:
            row[key] = final_value(run, key)
    row["eval/gold_reward_sft"] = final_value(run, "eval/gold_reward_sft")
    # logged on a verifiable task only: there eval/gold_reward is pass@1's 0/1 score (ranges.SAME_SAMPLES)
    row["eval/pass@1"] = final_value(run, "eval/pass@1")
    if metric not in row:
        row[metric] = final_value(run, metric)
    for key in COUNTERS:
        row[key] = last_value(run.metrics, key)
    walls = x_values(run, WALL_TIME)  # (records,)
    row[WALL_TIME] = float(walls[-1]) if len(walls) else NAN
    row["stopped_at_step"] = stopped_step(run)  # train.stop_at ended it there (results/stopped.py); NaN: no
    row["problems"] = "; ".join(run.problems)
    return row


def is_completed(run: Run) -> bool:
    return run.status == COMPLETED


def x_values(run: Run, x_axis: str) -> np.ndarray:
    """The x of every metrics record: `step`, a counter, or WALL_TIME (cumulative time/step_s)."""
    if x_axis == WALL_TIME:
        steps = np.array([number(r.get("time/step_s")) for r in run.metrics])  # (records,)
        if np.isnan(steps).all():
            return np.full(len(run.metrics), np.nan)
        return np.nancumsum(steps)
    return np.array([number(r.get(x_axis)) for r in run.metrics])  # (records,)


def eval_curve(run: Run, x_axis: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, metric) at the run's evaluation records, starting at the SFT policy when logged.

    `<metric>_sft` (e.g. eval/gold_reward_sft) is the same evaluation of the SFT policy, i.e.
    the value before any compute: it becomes the point x = 0.
    """
    x = x_values(run, x_axis)  # (records,)
    y = np.array([number(r.get(metric)) for r in run.metrics])  # (records,)
    keep = ~np.isnan(y) & ~np.isnan(x)
    x, y = x[keep], y[keep]
    start = next((number(r[metric + "_sft"]) for r in run.metrics if metric + "_sft" in r), NAN)
    if len(x) and not math.isnan(start):
        x, y = np.concatenate([[0.0], x]), np.concatenate([[start], y])
    return x, y


def paired_curve(run: Run, x_metric: str, y_metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(step, x_metric, y_metric) at records with both metrics; the SFT start (step 0) when logged."""
    rows = [r for r in run.metrics if not math.isnan(number(r.get(x_metric)) + number(r.get(y_metric)))]
    points = [(number(r.get("step")), number(r[x_metric]), number(r[y_metric])) for r in rows]
    if rows:
        start = (0.0, number(rows[0].get(x_metric + "_sft")), number(rows[0].get(y_metric + "_sft")))
        if not math.isnan(start[1] + start[2]):
            points.insert(0, start)
    columns = np.array(points, dtype=float).reshape(-1, 3)  # (evals, 3): step, x, y
    return columns[:, 0], columns[:, 1], columns[:, 2]
