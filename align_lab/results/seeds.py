"""How many seeds decide a difference: the fixed design's seeds per arm for 80% power against an effect
of interest, at the SD's one-sided upper confidence bound, never below the exact sign-flip test's floor
(power.py's lines and the action line size every figure here; docs/compare.md, "Power")."""

from __future__ import annotations

import math
import warnings

from align_lab.results import stats

POWER = 0.8
DEFAULT_MIN_EFFECT_SD = 0.5  # smallest effect of interest where a claim names none: half the differences' SD
SD_CONFIDENCE = 0.8  # the SD behind a seeds figure: this one-sided upper confidence bound of the observed one


def sign_flip_floor(alpha: float) -> int:
    """The fewest pairs whose exact two-sided sign-flip p can fall below alpha: 2 / 2^n < alpha
    (strict, as claims.claim_verdict's Holm p < ALPHA)."""
    n = 1
    while not stats.smallest_p_value(n) < alpha:
        n += 1
    return n


def t_test_seeds(effect: float, sd: float, alpha: float, power: float = POWER) -> float:
    """Pairs the two-sided paired t test needs for `power` at effect / sd (statsmodels TTestPower)."""
    from statsmodels.stats.power import TTestPower
    from statsmodels.tools.sm_exceptions import ConvergenceWarning  # its import sets "always"

    if sd == 0:
        return 2.0
    size = abs(effect) / sd
    with warnings.catch_warnings():  # a root finder that does not converge says so with NaN
        warnings.simplefilter("ignore", ConvergenceWarning)
        n = float(
            TTestPower().solve_power(effect_size=size, alpha=alpha, power=power, alternative="two-sided")
        )
    return n if math.isfinite(n) else float(smallest_pairs(size, alpha, power))


def smallest_pairs(size: float, alpha: float, power: float = POWER) -> int:
    """The smallest n >= 2 whose two-sided paired t test has `power` at effect size `size`, by search
    over TTestPower().power: where statsmodels' root finder returns NaN (an effect of 100 SD: n = 2)."""
    from statsmodels.stats.power import TTestPower

    def enough(n: int) -> bool:
        return TTestPower().power(effect_size=size, nobs=n, alpha=alpha, alternative="two-sided") >= power

    high = 2
    while not enough(high):
        high *= 2
    low = max(2, high // 2)
    while low < high:  # the smallest n in [low, high] with enough power
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid + 1, high)
    return high


def seeds_needed(effect: float, sd: float, alpha: float, power: float = POWER) -> int | None:
    """max(ceil(t test's pairs), sign-flip floor) for a true effect `effect` with SD `sd`; None without
    an effect or an SD."""
    if not math.isfinite(effect) or effect == 0 or not math.isfinite(sd):
        return None
    return max(math.ceil(t_test_seeds(effect, sd, alpha, power) - 1e-9), sign_flip_floor(alpha))


def sd_upper(sd: float, n: int, confidence: float = SD_CONFIDENCE) -> float:
    """One-sided upper confidence bound of a normal SD from n values (chi-square on n - 1 df):
    s * sqrt((n - 1) / chi2_{1 - confidence}(n - 1)). n = 8, 80%: s * 1.35; n = 2: s * 3.95. NaN below 2."""
    from scipy import stats as sps

    if n < 2 or not math.isfinite(sd):
        return math.nan
    return sd * math.sqrt((n - 1) / float(sps.chi2.ppf(1 - confidence, n - 1)))


def pair_seeds(sd: float, n: int, level: float, min_effect_sd: float = DEFAULT_MIN_EFFECT_SD) -> int | None:
    """Seeds per group that decide a difference of min_effect_sd SDs from a baseline with 80% power at
    `level`: an effect in SDs needs the same seeds whatever the SD, so sized at min_effect_sd (until
    2026-11-29 against the SD's upper bound, an effect of 0.24-0.37 SD of it); None without an SD."""
    if n < 2 or not math.isfinite(sd) or sd == 0:
        return None
    return seeds_needed(min_effect_sd * sd, sd, level)
