"""Compare says exactly what it averaged (issue 34 item 7): the n behind each number, dropped runs named,
damaged metrics lines, CIs kept in their metric's range, tasks never pooled, the headline's question.

Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from align_lab.results.aggregate import aggregate
from align_lab.results.runs import Run, load_run
from align_lab.results.stats import difference_range, metric_ci, metric_range, paired_test

T2 = scipy_stats.t.ppf(0.975, 2)  # 4.3027, the t quantile of a 95% CI over 3 seeds


def run(algo: str, seed: int, gold: float, task: str = "toy_prefs", **summary) -> Run:
    metrics = [
        {"step": s, "counters/generated_tokens": 100 * s, "eval/gold_reward": gold * s / 2} for s in (1, 2)
    ]
    return Run(
        Path(f"/runs/{task}/{algo}_{seed}"),
        "completed",
        config={"seed": seed, "task": {"_target_": task}},
        choices={"algo": algo, "task": task},
        summary={"status": "completed", "seed": seed, "eval/gold_reward": gold, **summary},
        metrics=metrics,
    )


def test_a_nan_final_metric_is_not_counted_in_n_and_its_run_is_named() -> None:
    runs = [run("ppo", 0, 0.5), run("ppo", 1, 0.6), run("ppo", 2, math.nan), run("rloo", 0, 0.4)]
    c = aggregate(runs, ["algo"])
    ppo = c.group_table.set_index("group").loc["ppo"]
    # 3 completed, 2 finite gold values: mean (0.5 + 0.6) / 2 = 0.55 over n = 2
    assert ppo["n"] == 3 and ppo["eval/gold_reward:n"] == 2
    assert ppo["eval/gold_reward:mean"] == pytest.approx(0.55)
    note = next(n for n in c.notes if "averages 2 of its 3" in n)
    assert "ppo's eval/gold_reward" in note and "seed 2 (/runs/toy_prefs/ppo_2): NaN in summary.json" in note


def test_a_nan_in_summary_is_not_replaced_by_an_earlier_evaluation() -> None:
    # the step-1 evaluation (0.25) is not the final value of a run whose final evaluation is NaN
    c = aggregate([run("ppo", 0, 0.5), run("ppo", 1, math.nan)], ["algo"])
    assert c.group_table.set_index("group").loc["ppo", "eval/gold_reward:mean"] == pytest.approx(0.5)


def test_a_torn_line_in_the_middle_of_metrics_is_reported_and_the_rest_kept(tmp_path: Path) -> None:
    lines = [json.dumps({"step": s, "eval/gold_reward": 0.1 * s}) for s in (1, 2, 3)]
    lines[1] = lines[1][:12]  # line 2 cut short, as a crash mid-write with a later append would leave it
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed"}))
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    loaded = load_run(tmp_path)
    assert [m["step"] for m in loaded.metrics] == [1, 3]
    assert loaded.problems == [
        "metrics.jsonl line 2: damaged (not JSON), left out; the run's other 2 records kept"
    ]


@pytest.mark.parametrize(
    ("metric", "bounds"),
    [
        ("eval/win_rate_vs_sft", (0.0, 1.0)),
        ("eval/pass@4", (0.0, 1.0)),
        ("eval/finished_fraction", (0.0, 1.0)),
        ("eval/distinct_2", (0.0, 1.0)),
        ("eval/win_rate_vs_sft@generated_tokens", (0.0, 1.0)),
        ("time/total_s", (0.0, math.inf)),
        ("counters/generated_tokens", (0.0, math.inf)),
        ("eval/response_length", (0.0, math.inf)),
        ("memory/peak_mb", (0.0, math.inf)),
        ("eval/gold_reward", (-math.inf, math.inf)),
        ("eval/kl", (-math.inf, math.inf)),
    ],
)
def test_metric_ranges_by_name(metric: str, bounds: tuple[float, float]) -> None:
    assert metric_range(metric) == bounds


def test_a_rate_ci_stays_in_0_1_and_a_time_ci_above_0() -> None:
    # win rates 0.9, 1.0, 1.0: mean 0.9667, s = sqrt(((-0.0667)^2 + 2 * 0.0333^2) / 2) = 0.05774,
    # half = 4.3027 * 0.05774 / sqrt(3) = 0.1434 -> t interval [0.8232, 1.1101]; cut at 1
    n, mean, lo, hi = metric_ci("eval/win_rate_vs_sft", [0.9, 1.0, 1.0])
    assert (n, mean) == (3, pytest.approx(0.96667, abs=1e-5))
    assert lo == pytest.approx(0.96667 - T2 * 0.057735 / math.sqrt(3), abs=1e-4) and hi == 1.0
    # wall times 10, 100, 1000 s: mean 370, s = 547.5, half = 4.3027 * 547.5 / sqrt(3) = 1360 -> lo < 0: 0
    _, mean, lo, hi = metric_ci("time/total_s", [10.0, 100.0, 1000.0])
    assert mean == pytest.approx(370.0) and lo == 0.0
    assert hi == pytest.approx(370 + T2 * 547.54 / 3**0.5, rel=1e-3)


def test_unbounded_metrics_keep_the_plain_t_interval() -> None:
    x = [-3.0, 0.5, 7.0]  # mean 1.5, s = 5.0744, half = 4.3027 * 5.0744 / sqrt(3) = 12.606
    _, mean, lo, hi = metric_ci("eval/gold_reward", x)
    assert (lo, hi) == pytest.approx((1.5 - 12.606, 1.5 + 12.606), abs=1e-3)


def test_a_paired_difference_of_rates_stays_in_minus_1_1() -> None:
    # a - b per seed: 0.9, 1.0, 0.5 (mean 0.8, s = 0.2646, half = 4.3027 * 0.2646 / sqrt(3) = 0.6572):
    # [0.1428, 1.4572] cut at 1
    a, b = {0: 1.0, 1: 1.0, 2: 0.5}, {0: 0.1, 1: 0.0, 2: 0.0}
    assert difference_range("eval/pass@1") == (-1.0, 1.0)
    t = paired_test(a, b, difference_range("eval/pass@1"))
    assert t.lo == pytest.approx(0.8 - 0.6572, abs=1e-3) and t.hi == 1.0
    assert difference_range("time/total_s") == (-math.inf, math.inf)


def test_the_group_table_and_a_note_say_a_ci_was_cut() -> None:
    runs = [run("ppo", s, 0.5, **{"eval/win_rate_vs_sft": w}) for s, w in enumerate([0.9, 1.0, 1.0])]
    c = aggregate(runs, ["algo"])
    assert c.group_table.set_index("group").loc["ppo", "eval/win_rate_vs_sft:hi"] == 1.0
    assert any("CIs cut at their metric's range" in n and "ppo eval/win_rate_vs_sft" in n for n in c.notes)
    assert np.isfinite(c.group_table.set_index("group").loc["ppo", "eval/gold_reward:mean"])
