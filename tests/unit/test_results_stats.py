"""align_lab.results.stats: bootstrap CIs, sign-flip p-values, Holm, budget interpolation.

Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from align_lab.results.stats import (
    bootstrap_band,
    bootstrap_ci,
    common_grid,
    curve_xy,
    holm,
    sign_flip_p_value,
    smallest_p_value,
    value_at,
)


def test_bootstrap_ci_of_a_tiny_sample_lies_in_the_data_range_and_holds_the_mean() -> None:
    values = [1.0, 2.0, 4.0]  # mean 7/3
    lo, hi = bootstrap_ci(values, seed=0)
    assert 1.0 <= lo <= 7 / 3 <= hi <= 4.0
    assert lo < hi  # three distinct values: resampled means spread
    assert bootstrap_ci(values, seed=0) == (lo, hi)  # fixed seed: reproducible


def test_bootstrap_ci_is_degenerate_for_constant_data_and_nan_below_two_values() -> None:
    assert bootstrap_ci([5.0, 5.0, 5.0]) == (5.0, 5.0)  # every resample's mean is 5
    assert all(math.isnan(v) for v in bootstrap_ci([3.0]))
    assert all(math.isnan(v) for v in bootstrap_ci([3.0, float("nan")]))  # NaN ignored -> one value


def test_bootstrap_ci_narrows_with_lower_confidence() -> None:
    values = [0.1, 0.5, 0.2, 0.9, 0.4, 0.3]
    lo95, hi95 = bootstrap_ci(values, confidence=0.95)
    lo50, hi50 = bootstrap_ci(values, confidence=0.50)
    assert lo95 <= lo50 <= hi50 <= hi95


def test_exact_sign_flip_p_value_of_1_2_3_is_two_of_eight() -> None:
    # 8 sign patterns of (1, 2, 3); |mean| >= 2 (the observed) only for +++ (2) and --- (-2):
    # e.g. -++ -> 4/3, +-+ -> 2/3, ++- -> 0. p = 2/8 = 0.25
    assert sign_flip_p_value([1.0, 2.0, 3.0]) == 0.25
    assert sign_flip_p_value([-1.0, -2.0, -3.0]) == 0.25  # two-sided


def test_sign_flip_p_value_counts_ties_and_zero_mean() -> None:
    # (1, -1): observed mean 0; every pattern has |mean| >= 0 -> p = 1
    assert sign_flip_p_value([1.0, -1.0]) == 1.0
    # (0.1, 0.1): patterns ++ (0.1), +- (0), -+ (0), -- (-0.1) -> 2 of 4 reach 0.1 -> p = 0.5,
    # with 0.1 + 0.1 computed in floating point (the tie must still count)
    assert sign_flip_p_value([0.1, 0.1]) == 0.5
    # (-0.10, 0.05, -0.04): |sums| 0.19, 0.11, 0.09, 0.01 twice each; observed 0.09 -> 6/8
    assert sign_flip_p_value([-0.10, 0.05, -0.04]) == 0.75
    assert math.isnan(sign_flip_p_value([]))


def test_monte_carlo_sign_flip_agrees_with_exact() -> None:
    # forcing Monte-Carlo on (1, 2, 3): p ~ 0.25 within sampling error (sd ~ 0.003 at 20,000 draws)
    p = sign_flip_p_value([1.0, 2.0, 3.0], exact_max_n=0, n_resamples=20_000, seed=1)
    assert abs(p - 0.25) < 0.015
    # 13 equal positive differences: exact p = 2/2**13 = 0.00024; Monte-Carlo (1 + hits)/(1 + 10,000)
    p13 = sign_flip_p_value([1.0] * 13)
    assert 1 / 10_001 <= p13 < 0.002


def test_smallest_p_value_is_two_over_two_to_the_n() -> None:
    assert smallest_p_value(3) == 0.25  # 2/8
    assert smallest_p_value(6) == 0.03125  # 2/64: the first n with p < 0.05
    assert smallest_p_value(1) == 1.0


def test_holm_correction_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 -> 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max
    # 0.03, 0.06, 0.06; back in input order [0.01, 0.04, 0.03] -> [0.03, 0.06, 0.06]
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_holm_caps_at_one_and_skips_nan() -> None:
    # 0.6*2 = 1.2 -> 1; 0.7*1 = 0.7 -> running max 1
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])
    # NaN is not a test: m = 1, 0.02 stays 0.02
    out = holm([0.02, float("nan")])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1])
    assert holm([]).shape == (0,)


def test_value_at_interpolates_linearly_by_hand() -> None:
    x, y = [0.0, 100.0, 300.0], [0.2, 0.4, 0.1]
    # at 250: 0.4 + (250 - 100) / (300 - 100) * (0.1 - 0.4) = 0.4 - 0.75 * 0.3 = 0.175
    assert value_at(x, y, 250.0) == pytest.approx(0.175)
    # at 50: 0.2 + 0.5 * 0.2 = 0.3
    assert value_at(x, y, 50.0) == pytest.approx(0.3)
    assert value_at(x, y, 300.0) == pytest.approx(0.1)
    assert math.isnan(value_at(x, y, 301.0))  # no extrapolation past the run's budget
    assert math.isnan(value_at([], [], 1.0))


def test_curve_xy_sorts_drops_nan_and_keeps_the_last_of_repeated_x() -> None:
    x, y = curve_xy([100.0, 0.0, 100.0, float("nan")], [0.3, 0.2, 0.4, 0.9])
    assert x.tolist() == [0.0, 100.0] and y.tolist() == [0.2, 0.4]


def test_bootstrap_band_and_common_grid() -> None:
    mean, lo, hi = bootstrap_band(np.array([[0.0, 1.0], [2.0, 3.0]]))
    assert mean.tolist() == [1.0, 2.0]
    assert (lo >= [0.0, 1.0]).all() and (hi <= [2.0, 3.0]).all() and (lo <= mean).all() and (mean <= hi).all()
    _, lo1, _ = bootstrap_band(np.array([[1.0, 2.0]]))
    assert np.isnan(lo1).all()  # one run: no band
    # curves over [0, 400] and [0, 480]: the shared range is [0, 400]
    grid = common_grid(
        [(np.array([0.0, 200.0, 400.0]), np.zeros(3)), (np.array([0.0, 240.0, 480.0]), np.zeros(3))]
    )
    assert grid.tolist() == [0.0, 200.0, 240.0, 400.0]
