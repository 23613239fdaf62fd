"""The range each metric's true mean lies in, by name: rates in [0, 1], the KL to the reference,
durations, counts, lengths and memory >= 0, every other metric unbounded. stats.py keeps its CIs
inside (stats.metric_ci, paired_test).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# The range the true mean of a metric lies in, by name (fnmatch patterns, the first match wins): rates
# in [0, 1], durations, counts, lengths and memory >= 0; a metric not listed is unbounded.
METRIC_RANGES: tuple[tuple[str, float, float], ...] = (
    ("eval/win_rate_*", 0.0, 1.0),
    ("eval/pass@*", 0.0, 1.0),
    ("eval/finished_fraction", 0.0, 1.0),
    ("eval/distinct_*", 0.0, 1.0),
    ("eval/repeated_words", 0.0, 1.0),
    # the policy's KL to the reference on its own samples: a divergence, >= 0 (a sample's k1 term may be
    # < 0, their mean's expectation is not; train/kl is left out: off-policy rows estimate no divergence)
    ("eval/kl", 0.0, math.inf),
    ("eval/response_length", 0.0, math.inf),
    ("train/response_length", 0.0, math.inf),
    ("time/*", 0.0, math.inf),
    ("counters/*", 0.0, math.inf),
    ("memory/*", 0.0, math.inf),
)
UNBOUNDED = (-math.inf, math.inf)
# a metric whose per-sample values are another's where the runs log both: a verifiable task's gold reward
# is its checker's score, and train/evaluate.py logs that same score as pass@1 (0/1 for the built-in
# checkers): runs that log eval/pass@1 have eval/gold_reward in pass@1's range (reward=verifier)
SAME_SAMPLES = {"eval/gold_reward": "eval/pass@1"}


def metric_range(metric: str, runs: pd.DataFrame | None = None) -> tuple[float, float]:
    """(lo, hi) of METRIC_RANGES for a metric, its `_sft` value or its compute-matched column
    (`eval/win_rate_vs_sft@generated_tokens`); (-inf, inf) when it is not listed. With the runs table:
    eval/gold_reward in eval/pass@1's range where every run that logs it logs pass@1 (SAME_SAMPLES)."""
    from fnmatch import fnmatchcase

    name = metric.split("@", 1)[0] if not metric.startswith("eval/pass@") else metric
    name = name.removesuffix("_sft")
    if runs is not None and name in SAME_SAMPLES and _logged_with(runs, name, SAME_SAMPLES[name]):
        name = SAME_SAMPLES[name]
    return next(((lo, hi) for pattern, lo, hi in METRIC_RANGES if fnmatchcase(name, pattern)), UNBOUNDED)


def _logged_with(runs: pd.DataFrame, metric: str, other: str) -> bool:
    """Whether some run logs `metric` and every run that does logs `other` too."""
    if metric not in runs.columns or other not in runs.columns:
        return False
    logged = runs[metric].notna()
    return bool(logged.any() and runs.loc[logged, other].notna().all())


def difference_range(metric: str, runs: pd.DataFrame | None = None) -> tuple[float, float]:
    """The range of a difference of two means of the metric: [lo - hi, hi - lo] ([-1, 1] for rates)."""
    lo, hi = metric_range(metric, runs)
    return (lo - hi, hi - lo) if math.isfinite(hi) else UNBOUNDED


def clip_ci(lo: float, hi: float, bounds: tuple[float, float] = UNBOUNDED) -> tuple[float, float]:
    """The CI intersected with the range its mean lies in. The true mean is always in that range, so
    the intersection covers it whenever the CI does: coverage is unchanged, only the impossible part
    goes. NaN stays NaN."""
    if math.isnan(lo) or math.isnan(hi):
        return lo, hi
    return max(lo, bounds[0]), min(hi, bounds[1])
