"""Seed statistics for comparisons: Student-t CIs, paired sign-flip tests, Holm, budget interpolation.

Every CI of a mean over seeds (a group's mean, a paired difference, a claim, a curve's band) is the
Student-t interval, from scipy.stats; see `t_ci` for why not a bootstrap. p-values stay the exact
sign-flip test, which needs no distributional assumption. `paired_tests` is the one place a paired
comparison is computed: the report's paired tables and the claims both read it. Every random draw
takes an explicit seed, so a report is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from align_lab.results.ranges import (  # noqa: F401 (METRIC_RANGES, difference_range: stats API)
    METRIC_RANGES,
    UNBOUNDED,
    clip_ci,
    difference_range,
    metric_range,
)

N_RESAMPLES = 10_000
CONFIDENCE = 0.95
ALPHA = 0.05  # significance level of every test in a report, after Holm's correction
EXACT_MAX_N = 30  # exact sign-flip p up to 30 pairs (2 x 2**15 half-sums); above that, Monte-Carlo
# pattern sums within this share of sum |d| of the observed one are ties (rounding), counted as >=
TIE_TOLERANCE = 1e-9


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()  # (n,)
    return x[np.isfinite(x)]


def exact_mean(x: np.ndarray) -> float:
    """The mean, 0 where the values cancel up to rounding (the sign-flip test's tie rule, p = 1 there):
    0.3, 0.2, -0.5, 0 (0.7 - 0.4, ...) average to -2.776e-17, which read as an effect against a claim."""
    total = math.fsum(x)
    return 0.0 if abs(total) <= TIE_TOLERANCE * math.fsum(np.abs(x)) else total / len(x)


def t_ci(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t CI of the mean (Student 1908): mean +- t_{n-1, (1+confidence)/2} * s / sqrt(n), s the
    unbiased (n-1) standard deviation; NaNs are ignored, (nan, nan) below 2 values.

    Why t and not a bootstrap: a study has 3-8 seeds, and the percentile bootstrap's interval is too
    narrow there (plug-in variance with divisor n, no small-sample correction). Coverage of a 95% CI
    by simulation, 2,000 samples per cell (2026-11-23; tests/unit/results/test_results_stats.py measures the
    normal and gamma rows again with other draws), t / percentile bootstrap / BCa (scipy, 400 samples):
      normal            n=4: 0.945 / 0.789 / 0.77   n=6: 0.950 / 0.857 / 0.86   n=8: 0.952 / 0.894 / 0.91
      gamma, skewness 1 n=4: 0.941 / 0.786        n=6: 0.939 / 0.857          n=8: 0.948 / 0.875
      difference of two lognormal(0, 1) draws (a paired difference with equally skewed noise, which is
      symmetric):       0.975 / 0.780,  0.973 / 0.847,  0.972 / 0.866
      lognormal(0, 1) (skewness 6) 0.82 / 0.69 / 0.69, 0.81 / 0.73 / 0.73, 0.82 / 0.77 / 0.79
      exponential (skewness 2)     0.88 / 0.74 / 0.79, 0.88 / 0.80 / 0.78, 0.88 / 0.83 / 0.85
    So t is exact under normal noise and near 95% for moderately skewed noise; under heavy skew every
    method under-covers at these n and t the least. BCa corrects the bootstrap's skew, not its small-n
    width. The sign-flip p-value assumes only that the paired differences are symmetric under no effect.
    """
    from scipy import stats as scipy_stats

    x = _finite(values)
    n = len(x)
    if n < 2:
        return float("nan"), float("nan")
    mean = exact_mean(x)
    half = float(scipy_stats.t.ppf((1.0 + confidence) / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean - half, mean + half


def t_band(curves: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Student-t CI (as `t_ci`) at each column of (runs, points).

    Returns (mean, lo, hi), each (points,); lo/hi are NaN with fewer than 2 runs.
    """
    from scipy import stats as scipy_stats

    curves = np.asarray(curves, dtype=float)  # (R, P)
    mean = curves.mean(axis=0)  # (P,)
    n = curves.shape[0]
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan.copy()
    t = scipy_stats.t.ppf((1.0 + confidence) / 2, n - 1)
    half = t * curves.std(axis=0, ddof=1) / math.sqrt(n)  # (P,)
    return mean, mean - half, mean + half


def _sign_sums(x: np.ndarray) -> np.ndarray:
    """sum_i eps_i x_i for every sign pattern eps of the last axis: (..., k) -> (..., 2**k)."""
    k = x.shape[-1]
    signs = 1.0 - 2.0 * ((np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1)  # (2**k, k) of +-1
    return x @ signs.T


def _exact_sign_flip(d: np.ndarray, chunk_elements: int = 1 << 22) -> np.ndarray:
    """Exact two-sided sign-flip p of each row of d (rows, n), by meet in the middle: the 2**n pattern
    sums are a + b over the first half's sums a and the second half's b, so with b sorted the patterns
    with |a + b| >= |S| are counted by two binary searches per a: O(2**(n/2) n) a row, not O(2**n n)."""
    rows, n = d.shape
    out = np.empty(rows)
    half = n // 2
    width = 2 ** (n - half)
    step = max(1, chunk_elements // max(width, 2**half))
    for start in range(0, rows, step):
        x = d[start : start + step]  # (r, n)
        r = len(x)
        # scaled so every pattern sum lies in (-1/2, 1/2): row i's sums then sit in (i - 1/2, i + 1/2), and
        # one sorted array of all rows' b + i serves every row's search at once
        x = x / (2 * np.abs(x).sum(axis=1, keepdims=True) + 1e-300)
        a = _sign_sums(x[:, :half])  # (r, 2**half)
        row = np.arange(r)[:, None].astype(float)  # (r, 1)
        b = (np.sort(_sign_sums(x[:, half:]), axis=1) + row).ravel()  # (r * width,)
        first = np.arange(r)[:, None] * width  # (r, 1): where row i's b start in the flat array
        # ties up to rounding count as >= (TIE_TOLERANCE of the sums' scale, 1)
        c = np.abs(x.sum(axis=1, keepdims=True)) - TIE_TOLERANCE  # (r, 1)
        at_least = width - (np.searchsorted(b, (c - a + row).ravel(), "left").reshape(r, -1) - first)
        at_most = np.searchsorted(b, (-c - a + row).ravel(), "right").reshape(r, -1) - first
        hits = np.clip(at_least, 0, width) + np.clip(at_most, 0, width)  # (r, 2**half)
        out[start : start + r] = np.minimum(hits, width).sum(axis=1) / 2**n  # c <= 0: every pattern, once
    return out


def sign_flip_p_values(
    differences: np.ndarray, exact_max_n: int = EXACT_MAX_N, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> np.ndarray:
    """`sign_flip_p_value` of each row of finite differences (..., n) -> (...): exact for n <= exact_max_n
    (meet in the middle), else Monte-Carlo; NaN for n = 0."""
    d = np.asarray(differences, dtype=float)
    lead, n = d.shape[:-1], d.shape[-1]
    if n == 0:
        return np.full(lead, np.nan)
    flat = d.reshape(-1, n)  # (rows, n)
    if n <= exact_max_n:
        return _exact_sign_flip(flat).reshape(lead)
    rng = np.random.default_rng(seed)
    scale = 2 * np.abs(flat).sum(axis=1, keepdims=True) + 1e-300  # (rows, 1)
    c = np.abs(flat.sum(axis=1) / scale[:, 0]) - TIE_TOLERANCE  # (rows,)
    out = np.empty(len(flat))
    for i, (x, s) in enumerate(zip(flat, scale[:, 0], strict=True)):
        signs = rng.choice([-1.0, 1.0], size=(n_resamples, n))  # (n_resamples, n)
        out[i] = (1 + int(np.sum(np.abs(signs @ (x / s)) >= c[i]))) / (1 + n_resamples)
    return out.reshape(lead)


def sign_flip_p_value(
    differences: Sequence[float] | np.ndarray,
    exact_max_n: int = EXACT_MAX_N,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> float:
    """Two-sided paired permutation test (Fisher's sign flip) of mean difference = 0.

    p = share of sign patterns whose |sum| >= the observed |sum|: all 2**n patterns when n <=
    exact_max_n (30 pairs: meet in the middle, `_exact_sign_flip`), else n_resamples random patterns
    with the (1 + hits) / (1 + draws) rule. NaN for no differences. The test is exact for every law
    symmetric about 0, discrete ones with ties included: p >= 2 / 2**n, and n equal non-zero
    differences get exactly 2 / 2**n (results/sequential.py decides a plan's looks with it).

    Not scipy.stats.permutation_test(permutation_type="samples"): it flips the same signs, but counts
    ties with a tolerance relative to the observed mean, so differences whose mean is 0 in exact
    arithmetic and -5.6e-18 after rounding, such as (-0.1, 0, -0.2, 0.1, 0.2), get p = 0.875, not 1
    (of 3,000 random cases, n = 2-12, normal and rounded differences, 30 differed, all so: p = 1
    here, < 1 there; the other 2,970 agreed exactly; 2026-11-24, scipy 1.17).
    """
    d = _finite(differences)
    return float(sign_flip_p_values(d, exact_max_n, n_resamples, seed)) if len(d) else float("nan")


def mean_ci(values: Sequence[float] | np.ndarray) -> tuple[int, float, float, float]:
    """(n, mean, lo, hi) of the finite values, with the Student-t CI of `t_ci`; (0, nan, nan, nan) if none."""
    x = _finite(values)
    if len(x) == 0:
        return 0, math.nan, math.nan, math.nan
    lo, hi = t_ci(x)
    return len(x), exact_mean(x), lo, hi


def metric_ci(
    metric: str, values: Sequence[float] | np.ndarray, runs=None
) -> tuple[int, float, float, float]:
    """`mean_ci`, its CI kept in the metric's range (`metric_range`, of the runs table where given)."""
    n, mean, lo, hi = mean_ci(values)
    return (n, mean, *clip_ci(lo, hi, metric_range(metric, runs)))


@dataclass(frozen=True)
class PairedTest:
    """a - b over the seeds both have: mean and Student-t CI of the per-seed differences, the exact
    sign-flip p, and p_holm, Holm-adjusted over the family the test was run in (`paired_tests`)."""

    seeds: list  # sorted, the seeds both a and b have
    n: int  # finite differences
    a_mean: float  # a's mean over `seeds`
    b_mean: float
    diff: float
    lo: float
    hi: float
    p: float
    p_holm: float = math.nan
    sd: float = math.nan  # SD (n - 1) of the per-seed differences; NaN below 2


def paired_test(a: Mapping, b: Mapping, bounds: tuple[float, float] = UNBOUNDED) -> PairedTest:
    """Pairs a[seed] with b[seed] (seed -> value: a dict or a pandas Series) over their common seeds;
    the CI of the difference kept in `bounds` (`difference_range`: [-1, 1] for a rate)."""
    seeds = sorted(set(a.keys()) & set(b.keys()))
    diffs = np.array([a[s] - b[s] for s in seeds], dtype=float)  # (pairs,)
    n, diff, lo, hi = mean_ci(diffs)
    lo, hi = clip_ci(lo, hi, bounds)
    a_mean = float(np.mean([a[s] for s in seeds])) if seeds else math.nan
    b_mean = float(np.mean([b[s] for s in seeds])) if seeds else math.nan
    sd = float(np.std(_finite(diffs), ddof=1)) if n >= 2 else math.nan
    return PairedTest(seeds, n, a_mean, b_mean, diff, lo, hi, sign_flip_p_value(diffs), sd=sd)


def paired_tests(
    pairs: Sequence[tuple[Mapping, Mapping]], bounds: Sequence[tuple[float, float]] | None = None
) -> list[PairedTest]:
    """`paired_test` of each (a, b) (within its `bounds`, if given), with p_holm: Holm's correction over
    these tests together."""
    bounds = bounds if bounds is not None else [UNBOUNDED] * len(pairs)
    tests = [paired_test(a, b, r) for (a, b), r in zip(pairs, bounds, strict=True)]
    adjusted = holm([t.p for t in tests])  # (tests,)
    return [replace(t, p_holm=float(q)) for t, q in zip(tests, adjusted, strict=True)]


def smallest_p_value(n: int) -> float:
    """The smallest two-sided exact sign-flip p-value n pairs can give: 2 / 2**n."""
    return min(1.0, 2.0 / 2**n) if n > 0 else float("nan")


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (Holm 1979), in the input order; NaNs stay NaN, not counted:
    sorted ascending, p_(i) * (m - i) for i = 0..m-1, made non-decreasing by a running max, capped at 1."""
    p = np.asarray(p_values, dtype=float)  # (k,)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]  # (m,)
    scaled = p[order] * (m - np.arange(m))  # (m,)
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def curve_xy(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The finite (x, y) points of a curve, sorted by x, the last y kept where x repeats."""
    x = np.asarray(x, dtype=float)  # (n,)
    y = np.asarray(y, dtype=float)  # (n,)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    last = np.append(x[1:] != x[:-1], True)[: len(x)]  # the last point of each run of equal x
    return x[last], y[last]


def value_at(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, at: float) -> float:
    """y at x = at, linearly interpolated (numpy.interp); NaN outside the curve's x range."""
    x, y = curve_xy(x, y)
    if len(x) == 0 or not np.isfinite(at) or at < x[0] or at > x[-1]:
        return float("nan")
    return float(np.interp(at, x, y))


def common_grid(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The union of the curves' x values inside the range that every curve covers."""
    curves = [c for c in curves if len(c[0])]
    if not curves:
        return np.array([])
    lo = max(float(x[0]) for x, _ in curves)
    hi = min(float(x[-1]) for x, _ in curves)
    grid = np.unique(np.concatenate([x for x, _ in curves]))
    return grid[(grid >= lo) & (grid <= hi)]


def band(
    curves: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(grid, mean, lo, hi): the runs' curves interpolated on their shared x range, mean and 95% CI."""
    clean = [curve_xy(x, y) for x, y in curves]
    grid = common_grid(clean)
    if len(grid) == 0:
        empty = np.array([])
        return empty, empty, empty, empty
    matrix = np.stack([np.interp(grid, x, y) for x, y in clean if len(x)])  # (runs, points)
    return (grid, *t_band(matrix))


# as text, for tables and headlines
def fmt(x: float) -> str:
    """A number for a table: thousands with separators, else 4 significant digits; n/a for NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def fmt_ci(mean: float, lo: float, hi: float) -> str:
    """`mean [lo, hi]`; a CI of no width says why: every seed gave the same value (for a difference,
    the same difference), not certainty."""
    if math.isnan(lo) or math.isnan(hi):
        return fmt(mean)
    if lo == hi == mean:
        return f"{fmt(mean)} [all seeds equal]"
    return f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"


def fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.3g}"
