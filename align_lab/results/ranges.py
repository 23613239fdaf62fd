"""The range each metric's true mean lies in, by name: rates in [0, 1], the KL to the reference,
durations, counts, lengths and memory >= 0, every other metric unbounded. stats.py keeps its CIs
inside (stats.metric_ci, paired_test).
"""

from __future__ import annotations

import math

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


def metric_range(metric: str) -> tuple[float, float]:
    """(lo, hi) of METRIC_RANGES for a metric, its `_sft` value or its compute-matched column
    (`eval/win_rate_vs_sft@generated_tokens`); (-inf, inf) when it is not listed."""
    from fnmatch import fnmatchcase

    name = metric.split("@", 1)[0] if not metric.startswith("eval/pass@") else metric
    name = name.removesuffix("_sft")
    return next(((lo, hi) for pattern, lo, hi in METRIC_RANGES if fnmatchcase(name, pattern)), UNBOUNDED)


def difference_range(metric: str) -> tuple[float, float]:
    """The range of a difference of two means of the metric: [lo - hi, hi - lo] ([-1, 1] for rates)."""
    lo, hi = metric_range(metric)
    return (lo - hi, hi - lo) if math.isfinite(hi) else UNBOUNDED


def clip_ci(lo: float, hi: float, bounds: tuple[float, float] = UNBOUNDED) -> tuple[float, float]:
    """The CI intersected with the range its mean lies in. The true mean is always in that range, so
    the intersection covers it whenever the CI does: coverage is unchanged, only the impossible part
    goes. NaN stays NaN."""
    if math.isnan(lo) or math.isnan(hi):
        return lo, hi
    return max(lo, bounds[0]), min(hi, bounds[1])
