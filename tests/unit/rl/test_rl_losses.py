"""Loss aggregation, PPO clip, value clip and the DPO family (spec.md 1.3-1.5, 12-14, 18)."""

import math

import pytest
import torch

from align_lab.rl import aggregate_loss, clipped_surrogate, clipped_value_loss, dpo_loss

F64 = torch.float64
NAN = float("nan")


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), atol=1e-6, rtol=0)


def t(values, **kwargs):
    return torch.tensor(values, dtype=F64, **kwargs)


# 18.9: per-token losses [[1, 1, 1, ., .], [2, 2, ., ., .]], B = 2, T = L_max = 5
LOSS = t([[1.0, 1.0, 1.0, NAN, 99.0], [2.0, 2.0, NAN, 99.0, 99.0]])
LOSS_MASK = t([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("token_mean", 1.4),  # (3 + 4) / 5 tokens
        ("seq_mean_token_mean", 1.5),  # (3 / 3 + 4 / 2) / 2
        ("seq_mean_token_sum", 3.5),  # (3 + 4) / 2
        ("constant", 0.7),  # 7 / (2 * 5)
    ],
)
def test_aggregate_loss_matches_18_9(mode, expected):
    close(aggregate_loss(LOSS, LOSS_MASK, mode), expected)
    close(aggregate_loss(LOSS, LOSS_MASK.bool(), mode), expected)


def test_aggregate_loss_constant_uses_given_max_len():
    close(aggregate_loss(LOSS, LOSS_MASK, "constant", max_len=10), 0.35)  # 7 / (2 * 10)


def test_aggregate_loss_unknown_mode_lists_allowed():
    with pytest.raises(ValueError, match="token_mean, seq_mean_token_mean"):
        aggregate_loss(LOSS, LOSS_MASK, "sum")


# 18.6: logp_new - logp_old = -1.0 + 1.3 = 0.3 -> rho = e^0.3 = 1.349859
RHO = math.exp(0.3)


def test_clipped_surrogate_matches_18_6_and_flags_clipped_tokens():
    # tokens: rho = e^0.3 with A = +1 and A = -1; rho = 1 with A = +1;
    # rho = e^-0.3 = 0.740818 with A = -1
    logprobs = t([[-1.0, -1.0, -1.3, -1.6]], requires_grad=True)
    old = t([[-1.3, -1.3, -1.3, -1.3]])
    advantages = t([[1.0, -1.0, 1.0, -1.0]])
    loss, clipped = clipped_surrogate(logprobs, old, advantages, clip_low=0.2)
    # -min(1.349859, 1.2) = -1.2; -min(-1.349859, -1.2) = 1.349859; -1; -min(-0.740818, -0.8) = 0.8
    close(loss, [[-1.2, RHO, -1.0, 0.8]])
    assert clipped.tolist() == [[True, False, False, True]]
    loss.sum().backward()
    # d(-rho A)/d logprobs = -rho A where unclipped, 0 where a clip bound is active
    close(logprobs.grad, [[0.0, RHO, -1.0, 0.0]])


def test_clipped_surrogate_gradient_flows_only_where_not_clipped():
    gen = torch.Generator().manual_seed(0)
    logprobs = (torch.randn(4, 16, generator=gen, dtype=F64) * 0.3).requires_grad_()
    old = torch.zeros(4, 16, dtype=F64)
    advantages = torch.randn(4, 16, generator=gen, dtype=F64)
    loss, clipped = clipped_surrogate(logprobs, old, advantages, clip_low=0.2, dual_clip=3.0)
    loss.sum().backward()
    assert clipped.any() and (~clipped).any()
    assert (logprobs.grad[clipped] == 0).all()
    assert (logprobs.grad[~clipped & (advantages != 0)] != 0).all()


def test_clipped_surrogate_clip_high_defaults_to_clip_low_and_can_differ():
    logprobs, old, advantages = t([[-1.0]]), t([[-1.3]]), t([[1.0]])
    close(clipped_surrogate(logprobs, old, advantages, 0.2)[0], [[-1.2]])
    close(clipped_surrogate(logprobs, old, advantages, 0.2, clip_high=0.28)[0], [[-1.28]])
    loss, clipped = clipped_surrogate(logprobs, old, advantages, 0.2, clip_high=0.4)
    close(loss, [[-RHO]])  # 1.349859 < 1.4: unclipped
    assert not clipped.any()


def test_clipped_surrogate_dual_clip_caps_negative_advantage_loss():
    # rho = 5: A = -1 -> -min(-5, -1.2) = 5, capped at -c A = 3; A = +1 -> -1.2, unaffected
    logprobs = t([[math.log(5.0), math.log(5.0)]], requires_grad=True)
    old, advantages = t([[0.0, 0.0]]), t([[-1.0, 1.0]])
    close(clipped_surrogate(logprobs, old, advantages)[0], [[5.0, -1.2]])
    loss, clipped = clipped_surrogate(logprobs, old, advantages, dual_clip=3.0)
    close(loss, [[3.0, -1.2]])
    assert clipped.tolist() == [[True, True]]
    loss.sum().backward()
    close(logprobs.grad, [[0.0, 0.0]])


def test_clipped_surrogate_rejects_dual_clip_not_above_one():
    with pytest.raises(ValueError, match="dual_clip"):
        clipped_surrogate(t([[0.0]]), t([[0.0]]), t([[1.0]]), dual_clip=1.0)


def test_clipped_surrogate_clamps_log_ratio_at_20():
    # log-ratio 50 -> 20: -min(e^20 * -1, 1.2 * -1) = e^20 = 485165195.4097903, finite
    loss, _ = clipped_surrogate(t([[50.0]]), t([[0.0]]), t([[-1.0]]))
    assert math.isclose(float(loss), math.exp(20.0), rel_tol=1e-12)


def test_clipped_surrogate_log_ratio_clamp_is_a_parameter_and_none_leaves_it_unclamped():
    # log-ratio 3, A = -1: clamp 2 -> e^2 = 7.389056; None (TRL) -> e^3 = 20.085537; the default 20 -> e^3
    logprobs, old, advantages = t([[3.0]]), t([[0.0]]), t([[-1.0]])
    close(clipped_surrogate(logprobs, old, advantages, log_ratio_clamp=2.0)[0], [[7.389056]])
    close(clipped_surrogate(logprobs, old, advantages, log_ratio_clamp=None)[0], [[20.085537]])
    close(clipped_surrogate(logprobs, old, advantages)[0], [[20.085537]])


def test_clipped_surrogate_broadcasts_sequence_advantages():
    logprobs, old = t([[-1.0, -1.3], [-1.3, -1.0]]), torch.full((2, 2), -1.3, dtype=F64)
    per_sequence = t([[1.0], [-1.0]])  # (B, 1)
    loss, _ = clipped_surrogate(logprobs, old, per_sequence)
    close(loss, [[-1.2, -1.0], [1.0, RHO]])


def test_clipped_value_loss_matches_18_6():
    # V_clip = 0.5 + clip(0.5, -0.2, 0.2) = 0.7; 1/2 max((1.0 - 0.8)^2, (0.7 - 0.8)^2) = 0.02
    close(clipped_value_loss(t([1.0]), t([0.5]), t([0.8]), clip=0.2), [0.02])


def test_clipped_value_loss_takes_the_larger_and_none_disables_clipping():
    # return 1.2: (1.0 - 1.2)^2 = 0.04, (0.7 - 1.2)^2 = 0.25 -> 0.125; unclipped 0.04 / 2 = 0.02
    close(clipped_value_loss(t([1.0]), t([0.5]), t([1.2]), clip=0.2), [0.125])
    close(clipped_value_loss(t([1.0]), t([0.5]), t([1.2]), clip=None), [0.02])


# 18.7: sums log pi(y_w) = -10, log pi(y_l) = -12, ref -10.5 / -11, beta 0.1
# h = (-10 + 10.5) - (-12 + 11) = 1.5, beta h = 0.15
PAIR = (t([-10.0]), t([-12.0]), t([-10.5]), t([-11.0]))


@pytest.mark.parametrize(
    ("loss_type", "label_smoothing", "expected"),
    [
        ("sigmoid", 0.0, 0.620957),  # -log sigmoid(0.15) = log(1 + e^-0.15)
        ("sigmoid", 0.1, 0.635957),  # 0.9 * 0.620957 + 0.1 * (0.620957 + 0.15)
        ("hinge", 0.0, 0.85),  # relu(1 - 0.15)
        ("ipo", 0.0, 12.25),  # (1.5 - 1 / 0.2)^2 = (-3.5)^2
    ],
)
def test_dpo_loss_matches_18_7(loss_type, label_smoothing, expected):
    losses, chosen, rejected = dpo_loss(*PAIR, 0.1, loss_type, label_smoothing)
    close(losses, [expected])
    close(chosen, [0.05])  # 0.1 * (-10 + 10.5)
    close(rejected, [-0.1])  # 0.1 * (-12 + 11)


def test_dpo_ipo_with_per_token_averages_matches_18_7():
    # caller averages: chosen 5 tokens, rejected 4: h = (0.5 / 5) - (-1 / 4) = 0.35;
    # (0.35 - 5)^2 = 21.6225
    averaged = (t([-10.0 / 5]), t([-12.0 / 4]), t([-10.5 / 5]), t([-11.0 / 4]))
    close(dpo_loss(*averaged, 0.1, "ipo")[0], [21.6225])


def test_dpo_gradient_matches_18_7():
    chosen = t([-10.0], requires_grad=True)
    rejected = t([-12.0], requires_grad=True)
    losses, chosen_rewards, _ = dpo_loss(chosen, rejected, t([-10.5]), t([-11.0]), 0.1)
    losses.sum().backward()
    # -beta sigmoid(-beta h) = -0.1 * sigmoid(-0.15) = -0.1 * 0.462570
    close(chosen.grad, [-0.046257])
    close(rejected.grad, [0.046257])
    assert not chosen_rewards.requires_grad


def test_dpo_sigmoid_is_stable_for_large_margins():
    # h = +-10000, beta h = +-1000: -log sigmoid(1000) ~ 0;
    # -log sigmoid(-1000) = 1000 + log(1 + e^-1000) ~ 1000, no overflow to inf
    far = dpo_loss(t([0.0, -1e4]), t([-1e4, 0.0]), t([0.0, 0.0]), t([0.0, 0.0]), 0.1)[0]
    close(far, [0.0, 1000.0])


def test_dpo_unknown_loss_type_lists_allowed():
    with pytest.raises(ValueError, match="sigmoid, ipo, hinge"):
        dpo_loss(*PAIR, 0.1, "kto")


def test_dpo_label_smoothing_only_for_sigmoid():
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(*PAIR, 0.1, "ipo", 0.1)
