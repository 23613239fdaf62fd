"""Masked reductions and whitening (spec.md 1.6, 18.2)."""

import math

import pytest
import torch

from align_lab.rl import (
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
    running_moments,
    running_std,
)

F64 = torch.float64
NAN, INF = float("nan"), float("inf")


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), atol=1e-6, rtol=0)


X = torch.tensor([[1.0, 2.0, 3.0], [4.0, NAN, INF]], dtype=F64)
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=F64)


def test_masked_sum_and_mean_ignore_nonfinite_padding():
    # kept: 1 + 2 + 3 + 4 = 10 over 4 tokens; rows: 6 / 3 and 4 / 1
    close(masked_sum(X, MASK), 10.0)
    close(masked_mean(X, MASK), 2.5)
    close(masked_sum(X, MASK, dim=-1), [6.0, 4.0])
    close(masked_mean(X, MASK, dim=-1), [2.0, 4.0])


def test_masked_reductions_accept_bool_and_float_masks():
    for fn in (masked_sum, masked_mean):
        torch.testing.assert_close(fn(X, MASK, dim=-1), fn(X, MASK.bool(), dim=-1))
    torch.testing.assert_close(masked_whiten(X, MASK), masked_whiten(X, MASK.bool()))


def test_masked_mean_of_empty_row_is_zero():
    mask = torch.tensor([[1, 1, 1], [0, 0, 0]], dtype=F64)
    close(masked_mean(X, mask, dim=-1), [2.0, 0.0])


# x = [1, 2, 3, 4] (+ a masked 100): mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5
VALUES = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0], dtype=F64)
VALUES_MASK = torch.tensor([1, 1, 1, 1, 0], dtype=F64)


def test_masked_var_population_and_unbiased():
    close(masked_var(VALUES, VALUES_MASK), 1.25)  # 5 / 4
    close(masked_var(VALUES, VALUES_MASK, unbiased=True), 5 / 3)  # 5 / 3 = 1.666667


def test_masked_var_unbiased_needs_two_kept_positions():
    with pytest.raises(ValueError, match="at least 2"):
        masked_var(VALUES, torch.tensor([1, 0, 0, 0, 0], dtype=F64), unbiased=True)


# 18.2 advantages over 4 valid tokens, last position padding
ADV = torch.tensor([[0.433425, 0.3615, 0.27, 0.2, 0.0]], dtype=F64)
ADV_MASK = torch.tensor([[1, 1, 1, 1, 0]], dtype=F64)


def test_masked_whiten_population_matches_18_2_openrlhf():
    # mean 1.264925 / 4 = 0.31623125, population var 0.0078577 -> (A - mean) / 0.0886435.
    # OpenRLHF takes rsqrt(max(var, 1e-8)) = rsqrt(var) here, i.e. our eps=0.
    expected = [[1.32208, 0.510683, -0.521541, -1.311222, 0.0]]
    close(masked_whiten(ADV, ADV_MASK, eps=0.0), expected)
    # the default rsqrt(var + 1e-8) moves each value by at most |x| * 1e-8 / (2 var) = 8.4e-7
    torch.testing.assert_close(
        masked_whiten(ADV, ADV_MASK), torch.tensor(expected, dtype=F64), atol=2e-6, rtol=0
    )


def test_masked_whiten_unbiased_matches_18_2_trl():
    # unbiased var = 4/3 * population: each value above times sqrt(3/4) = 0.8660254
    close(
        masked_whiten(ADV, ADV_MASK, unbiased=True),
        [[1.144954, 0.442265, -0.451668, -1.135551, 0.0]],
    )


def test_masked_whiten_is_exactly_zero_on_padding():
    x = torch.tensor([[0.5, -1.0, NAN], [2.0, INF, 7.0]], dtype=F64)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=F64)
    out = masked_whiten(x, mask)
    assert torch.isfinite(out).all()
    assert (out[mask == 0] == 0).all()


def test_masked_whiten_without_mean_shift_keeps_the_level():
    # population std sqrt(1.25) = 1.118034: (x - 2.5) / 1.118034 + 2.5
    # = [-1.341641, -0.447214, 0.447214, 1.341641] + 2.5
    out = masked_whiten(VALUES, VALUES_MASK, shift_mean=False)
    close(out, [1.158359, 2.052786, 2.947214, 3.841641, 0.0])
    assert math.isclose(float(out[:4].mean()), 2.5, abs_tol=1e-9)


def test_running_moments_merge_batches_like_one_pass():
    # MOSS-RLHF start (mean 0, var 1, count 1e-24); batch [1, 2, 3]: mean 2, population var 2/3
    mean, var, count = running_moments(0.0, 1.0, 1e-24, torch.tensor([1.0, 2.0, 3.0]))
    assert math.isclose(mean, 2.0, abs_tol=1e-9) and math.isclose(var, 2 / 3, abs_tol=1e-9)
    assert math.isclose(count, 3.0)
    # Bessel-corrected std sqrt(2/3 * 3/2) = 1
    assert math.isclose(running_std(var, count), 1.0, abs_tol=1e-9)
    # batch [5, 7]: mean 6, var 1, delta 4; M2 = 2 + 2 + 16 * 3 * 2 / 5 = 23.2 over 5 values
    # = [1, 2, 3, 5, 7] in one pass: mean 3.6, squared deviations 6.76 + 2.56 + 0.36 + 1.96 + 11.56
    mean, var, count = running_moments(mean, var, count, torch.tensor([5.0, 7.0]))
    assert math.isclose(mean, 3.6, abs_tol=1e-9) and math.isclose(var, 23.2 / 5, abs_tol=1e-9)
    assert math.isclose(running_std(var, count), math.sqrt(23.2 / 4), abs_tol=1e-9)  # 2.408319


def test_running_std_is_one_until_two_values_were_seen():
    _, var, count = running_moments(0.0, 1.0, 1e-24, torch.tensor([4.0]))
    assert running_std(var, count) == 1.0
