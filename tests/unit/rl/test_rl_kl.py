"""KL estimators and the adaptive KL coefficient (spec.md 1.2, 2, 18.1)."""

import math

import pytest
import torch

from align_lab.rl import adaptive_kl_coef, kl_penalty, masked_mean, masked_sum

F64 = torch.float64


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), atol=1e-6, rtol=0)


# 18.1: logp = [-0.5, -1.2, -2.0], logp_ref = [-0.7, -1.0, -2.5] -> u = [0.2, -0.2, 0.5]
LOGP = torch.tensor([[-0.5, -1.2, -2.0]], dtype=F64)
LOGP_REF = torch.tensor([[-0.7, -1.0, -2.5]], dtype=F64)
MASK = torch.ones(1, 3, dtype=F64)


@pytest.mark.parametrize(
    ("estimator", "per_token", "token_mean", "seq_sum"),
    [
        # k1 = u; mean (0.2 - 0.2 + 0.5) / 3 = 0.1666667, sum 0.5
        ("k1", [0.2, -0.2, 0.5], 0.1666667, 0.5),
        # k2 = u^2 / 2 = [0.04, 0.04, 0.25] / 2; sum 0.165, mean 0.055
        ("k2", [0.02, 0.02, 0.125], 0.055, 0.165),
        # k3 = e^-u - 1 + u: e^-0.2 = 0.8187308 -> 0.0187308; e^0.2 = 1.2214028 -> 0.0214028;
        # e^-0.5 = 0.6065307 -> 0.1065307; sum 0.1466642, mean 0.0488881
        ("k3", [0.0187308, 0.0214028, 0.1065307], 0.0488881, 0.1466642),
    ],
)
def test_kl_estimators_match_18_1(estimator, per_token, token_mean, seq_sum):
    kl = kl_penalty(LOGP, LOGP_REF, estimator)
    close(kl, [per_token])
    close(masked_mean(kl, MASK), token_mean)
    close(masked_sum(kl, MASK, dim=-1), [seq_sum])


@pytest.mark.parametrize("estimator", ["k2", "k3"])
def test_kl_k2_k3_are_nonnegative(estimator):
    gen = torch.Generator().manual_seed(0)
    u = torch.cat(
        [
            torch.randn(1000, generator=gen, dtype=F64) * 3,
            # tiny ratios, where exp(-u) - 1 + u written naively cancels below zero
            torch.tensor([1e-9, -1e-9, 1e-12, -1e-12, 1e-16, 0.0], dtype=F64),
        ]
    )
    kl = kl_penalty(u, torch.zeros_like(u), estimator)
    assert (kl >= 0).all()


def test_kl_k3_is_zero_when_policies_agree():
    logp = torch.tensor([-0.3, -2.0], dtype=F64)
    close(kl_penalty(logp, logp.clone(), "k3"), [0.0, 0.0])


def test_kl_unknown_estimator_names_allowed_values():
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_penalty(LOGP, LOGP_REF, "k4")


def test_kl_clamp_bounds_result():
    logp = torch.tensor([20.0, -20.0, 0.5], dtype=F64)
    ref = torch.zeros(3, dtype=F64)
    # k1: u = [20, -20, 0.5] -> [10, -10, 0.5]
    close(kl_penalty(logp, ref, "k1", clamp=10.0), [10.0, -10.0, 0.5])
    # k3 at u = -20: e^20 - 1 - 20 = 4.85e8 -> 10; at u = 20: e^-20 - 1 + 20 = 19.0 -> 10
    close(kl_penalty(logp, ref, "k3", clamp=10.0)[:2], [10.0, 10.0])


def test_kl_is_unclamped_by_default():
    logp = torch.tensor([20.0], dtype=F64)
    close(kl_penalty(logp, torch.zeros(1, dtype=F64), "k1"), [20.0])


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        # e = 0.15 / 0.1 - 1 = 0.5, clipped to 0.2: 0.1 * (1 + 0.2 * 256 / 10000) = 0.100512
        (0.15, 0.100512),
        # e = 0.09 / 0.1 - 1 = -0.1: 0.1 * (1 - 0.1 * 0.0256) = 0.099744
        (0.09, 0.099744),
        # e = 0 / 0.1 - 1 = -1, clipped to -0.2: 0.1 * (1 - 0.2 * 0.0256) = 0.099488
        (0.0, 0.099488),
        # on target: unchanged
        (0.1, 0.1),
    ],
)
def test_adaptive_kl_coef_moves_toward_target_with_clipped_error(observed, expected):
    new = adaptive_kl_coef(0.1, observed, target=0.1, n_steps=256, horizon=10000)
    assert isinstance(new, float)
    assert math.isclose(new, expected, abs_tol=1e-12)


def test_adaptive_kl_coef_rejects_nonpositive_target_and_horizon():
    with pytest.raises(ValueError, match="target"):
        adaptive_kl_coef(0.1, 0.1, target=0.0, n_steps=1, horizon=10)
    with pytest.raises(ValueError, match="horizon"):
        adaptive_kl_coef(0.1, 0.1, target=0.1, n_steps=1, horizon=0)
