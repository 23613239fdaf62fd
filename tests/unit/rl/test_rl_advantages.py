"""Reward shaping, GAE, returns and group baselines (spec.md 1.1, 2, 6, 9, 10, 11, 18)."""

import pytest
import torch

from align_lab.rl import (
    best_of_group,
    broadcast_to_tokens,
    discounted_returns,
    gae,
    group_normalize,
    leave_one_out,
    masked_whiten,
    shape_sequence_rewards,
    shape_token_rewards,
)

F64 = torch.float64


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), atol=1e-6, rtol=0)


def t(values):
    return torch.tensor(values, dtype=F64)


# 18.2: one response of 4 valid tokens + 1 padding; the padded value 0.9 must be ignored
KL_18_2 = t([[0.1, -0.05, 0.2, 0.0, 0.0]])
MASK_18_2 = t([[1, 1, 1, 1, 0]])
VALUES_18_2 = t([[0.5, 0.6, 0.7, 0.8, 0.9]])
# R_t = -0.1 * KL_t, + 1.0 on index 3: [-0.01, 0.005, -0.02, 0 + 1.0, 0]
REWARDS_18_2 = [[-0.01, 0.005, -0.02, 1.0, 0.0]]
# gamma 1, lam 0.95, V after index 3 = 0, backward:
# d3 = 1.0 + 0 - 0.8 = 0.2                   A3 = 0.2
# d2 = -0.02 + 0.8 - 0.7 = 0.08              A2 = 0.08 + 0.95 * 0.2 = 0.27
# d1 = 0.005 + 0.7 - 0.6 = 0.105             A1 = 0.105 + 0.95 * 0.27 = 0.3615
# d0 = -0.01 + 0.6 - 0.5 = 0.09              A0 = 0.09 + 0.95 * 0.3615 = 0.433425
ADVANTAGES_18_2 = [[0.433425, 0.3615, 0.27, 0.2, 0.0]]
RETURNS_18_2 = [[0.933425, 0.9615, 0.97, 1.0, 0.0]]  # A + V on valid tokens, 0 on padding


def test_shape_token_rewards_match_18_2():
    close(shape_token_rewards(t([1.0]), KL_18_2, MASK_18_2, kl_coef=0.1), REWARDS_18_2)


def test_shape_token_rewards_put_score_on_last_kept_token():
    # mask [0, 1, 1, 0] (left and right padding): the score goes to index 2; padding gets nothing
    kl = t([[5.0, 0.1, 0.2, 5.0]])
    out = shape_token_rewards(t([2.0]), kl, t([[0, 1, 1, 0]]), kl_coef=0.5)
    close(out, [[0.0, -0.05, -0.1 + 2.0, 0.0]])


def test_shape_token_rewards_empty_mask_gets_no_score():
    kl = t([[0.1, 0.2], [0.3, 0.4]])
    out = shape_token_rewards(t([1.0, 7.0]), kl, t([[1, 1], [0, 0]]), kl_coef=0.1)
    close(out, [[-0.01, -0.02 + 1.0], [0.0, 0.0]])


def test_gae_matches_18_2():
    rewards = shape_token_rewards(t([1.0]), KL_18_2, MASK_18_2, kl_coef=0.1)
    advantages, returns = gae(rewards, VALUES_18_2, MASK_18_2, gamma=1.0, lam=0.95)
    close(advantages, ADVANTAGES_18_2)
    close(returns, RETURNS_18_2)


def test_gae_then_whitening_matches_18_2_in_both_conventions():
    rewards = shape_token_rewards(t([1.0]), KL_18_2, MASK_18_2, kl_coef=0.1)
    advantages, _ = gae(rewards, VALUES_18_2, MASK_18_2, gamma=1.0, lam=0.95)
    # population variance (OpenRLHF's rsqrt(max(var, 1e-8)) = rsqrt(var) here: eps=0)
    close(
        masked_whiten(advantages, MASK_18_2, eps=0.0),
        [[1.32208, 0.510683, -0.521541, -1.311222, 0.0]],
    )
    # unbiased variance + 1e-8 (TRL masked_whiten)
    close(
        masked_whiten(advantages, MASK_18_2, unbiased=True),
        [[1.144954, 0.442265, -0.451668, -1.135551, 0.0]],
    )


def test_gae_ignores_padding_after_eos():
    mask = t([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
    rewards = t([[0.1, 0.0, 0.2, 1.0, 0.0, 0.0], [0.3, -1.0, 0.0, 0.0, 0.0, 0.0]])
    values = t([[0.5, 0.6, 0.7, 0.8, 0.0, 0.0], [0.1, 0.2, 0.0, 0.0, 0.0, 0.0]])
    garbage = (1 - mask) * 123.0  # (B, T) only on padding
    clean = gae(rewards, values, mask, gamma=0.99, lam=0.95)
    dirty = gae(rewards + garbage, values - garbage, mask, gamma=0.99, lam=0.95)
    for a, b in zip(clean, dirty, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
        assert (a[mask == 0] == 0).all()


def test_gae_with_gamma_lam_one_is_return_to_go_minus_value():
    # rewards [0, 0, 1]: return-to-go [1, 1, 1]; minus V [0.2, 0.4, 0.6] -> [0.8, 0.6, 0.4]
    advantages, returns = gae(t([[0.0, 0.0, 1.0]]), t([[0.2, 0.4, 0.6]]), t([[1, 1, 1]]), 1.0, 1.0)
    close(advantages, [[0.8, 0.6, 0.4]])
    close(returns, [[1.0, 1.0, 1.0]])


def test_gae_with_lam_zero_is_one_step_td_error():
    # d2 = 1 - 0.6 = 0.4; d1 = 0 + 0.6 - 0.4 = 0.2; d0 = 0 + 0.4 - 0.2 = 0.2
    advantages, _ = gae(t([[0.0, 0.0, 1.0]]), t([[0.2, 0.4, 0.6]]), t([[1, 1, 1]]), 1.0, 0.0)
    close(advantages, [[0.2, 0.2, 0.4]])


def test_gae_accepts_bool_mask():
    rewards = shape_token_rewards(t([1.0]), KL_18_2, MASK_18_2.bool(), kl_coef=0.1)
    advantages, _ = gae(rewards, VALUES_18_2, MASK_18_2.bool(), gamma=1.0, lam=0.95)
    close(advantages, ADVANTAGES_18_2)


def test_discounted_returns_with_gamma():
    # gamma 0.5, rewards [1, 0, 2]: G2 = 2, G1 = 0 + 0.5 * 2 = 1, G0 = 1 + 0.5 * 1 = 1.5
    close(discounted_returns(t([[1.0, 0.0, 2.0, 9.0]]), t([[1, 1, 1, 0]]), 0.5), [[1.5, 1.0, 2.0, 0]])


def test_discounted_returns_skip_masked_positions_inside_the_response():
    # a masked step (e.g. tool output) is not a step: G2 = 2, G1 = 0 (masked), G0 = 1 + 0.5 * 2 = 2
    close(discounted_returns(t([[1.0, 9.0, 2.0]]), t([[1, 0, 1]]), 0.5), [[2.0, 0.0, 2.0]])


def test_reinforce_pp_pipeline_matches_18_4():
    mask = t([[1, 1, 1], [1, 1, 0]])
    kl = t([[0.1, 0.2, -0.1], [0.3, 0.0, 0.0]])
    rewards = shape_token_rewards(t([1.0, -0.5]), kl, mask, kl_coef=0.1)
    # -0.1 * KL, scores 1.0 at index 2 and -0.5 at index 1
    close(rewards, [[-0.01, -0.02, 0.01 + 1.0], [-0.03, -0.5, 0.0]])
    returns = discounted_returns(rewards, mask, gamma=1.0)
    # row 0: 1.01, 1.01 - 0.02 = 0.99, 0.99 - 0.01 = 0.98; row 1: -0.5, -0.5 - 0.03 = -0.53
    close(returns, [[0.98, 0.99, 1.01], [-0.53, -0.5, 0.0]])
    # 5 valid tokens: mean (0.98 + 0.99 + 1.01 - 0.53 - 0.5) / 5 = 0.39, population var 0.5462
    # (A - 0.39) / sqrt(0.5462) = (A - 0.39) / 0.739053
    close(
        masked_whiten(returns, mask),
        [[0.798318, 0.811849, 0.838911], [-1.244836, -1.204243, 0.0]],
    )


def test_reinforce_pp_baseline_pipeline_matches_18_5():
    scores = t([1, 0, 0, 1, 0.5, 0.2, 0.9, 0.4])  # 2 prompts x 4 samples, contiguous
    lengths = torch.tensor([3, 2, 4, 1, 2, 2, 3, 3])
    mask = (torch.arange(4) < lengths[:, None]).to(F64)  # (8, 4)
    centred = group_normalize(scores, group_size=4, scale_by_std=False)
    # group means 0.5 and 0.5: [0.5, -0.5, -0.5, 0.5, 0.0, -0.3, 0.4, -0.1]
    close(centred, [0.5, -0.5, -0.5, 0.5, 0.0, -0.3, 0.4, -0.1])
    tokens = centred[:, None].expand(8, 4)  # (8, 4) each sequence's advantage on its tokens
    # token-weighted mean (1.5 - 1 - 2 + 0.5 + 0 - 0.6 + 1.2 - 0.3) / 20 = -0.035, var 0.158275
    whitened = masked_whiten(tokens, mask)
    expected = [1.344769, -1.168818, -1.168818, 1.344769, 0.087976, -0.6661, 1.09341, -0.163383]
    close(whitened[:, 0], expected)
    close(whitened, t(expected)[:, None] * mask)  # same value on every token, 0 on padding
    # contrast: sequence-weighted (one token each): std sqrt(1.26 / 8) = 0.396863
    per_sequence = masked_whiten(centred[:, None], torch.ones(8, 1))
    close(
        per_sequence[:, 0],
        [1.259882, -1.259882, -1.259882, 1.259882, 0.0, -0.755929, 1.007905, -0.251976],
    )


# 18.3: one group of 4, mean 0.6, deviations [0.2, -0.4, -0.1, 0.3]
GROUP = t([0.8, 0.2, 0.5, 0.9])


def test_leave_one_out_matches_18_3():
    # r_i - mean of the other 3: 0.8 - 1.6 / 3 = 0.266667, 0.2 - 2.2 / 3 = -0.533333,
    # 0.5 - 1.9 / 3 = -0.133333, 0.9 - 1.5 / 3 = 0.4
    close(leave_one_out(GROUP, group_size=4), [0.266667, -0.533333, -0.133333, 0.4])


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # mean baseline (Dr. GRPO, REINFORCE++-baseline step 1)
        ({"scale_by_std": False}, [0.2, -0.4, -0.1, 0.3]),
        # unbiased std sqrt(0.3 / 3) = 0.316228, + 1e-4 (TRL)
        ({}, [0.632256, -1.264511, -0.316128, 0.948383]),
        # + 1e-9 (OpenRLHF group_norm)
        ({"eps": 1e-9}, [0.632456, -1.264911, -0.316228, 0.948683]),
        # population std sqrt(0.3 / 4) = 0.273861, no eps
        ({"unbiased": False, "eps": 0.0}, [0.730297, -1.460593, -0.365148, 1.095445]),
    ],
)
def test_group_normalize_matches_18_3(kwargs, expected):
    close(group_normalize(GROUP, group_size=4, **kwargs), expected)


ALL_EQUAL = [t([1.0] * 4), t([0.1] * 4), t([0.7] * 4), t([-3.3] * 4)]


@pytest.mark.parametrize("scores", ALL_EQUAL)
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"eps": 1e-9}, {"unbiased": False, "eps": 0.0}, {"scale_by_std": False}],
)
def test_group_normalize_all_equal_group_gives_exactly_zero(scores, kwargs):
    out = group_normalize(scores, group_size=4, **kwargs)
    assert (out == 0).all()


@pytest.mark.parametrize("scores", ALL_EQUAL)
def test_leave_one_out_all_equal_group_gives_exactly_zero(scores):
    assert (leave_one_out(scores, group_size=4) == 0).all()


def test_group_statistics_use_contiguous_groups():
    # second prompt all-equal -> zeros; first prompt unaffected by it
    scores = torch.cat([GROUP, t([1.0] * 4)])
    close(
        group_normalize(scores, group_size=4, eps=1e-9)[:4],
        [0.632456, -1.264911, -0.316228, 0.948683],
    )
    close(group_normalize(scores, group_size=4)[4:], [0.0] * 4)
    close(leave_one_out(scores, group_size=4)[:4], [0.266667, -0.533333, -0.133333, 0.4])


@pytest.mark.parametrize("fn", [leave_one_out, group_normalize])
def test_group_size_that_does_not_divide_batch_raises(fn):
    with pytest.raises(ValueError, match="does not divide"):
        fn(t([1.0, 2.0, 3.0, 4.0, 5.0]), group_size=2)


@pytest.mark.parametrize("fn", [leave_one_out, group_normalize])
@pytest.mark.parametrize("group_size", [0, 1])
def test_group_size_below_two_raises(fn, group_size):
    with pytest.raises(ValueError, match="group_size"):
        fn(GROUP, group_size=group_size)


def test_shape_sequence_rewards_subtracts_summed_kl_of_kept_tokens():
    # 18.1 per-token k1 [0.2, -0.2, 0.5] sums to 0.5; the padded 9.0 is ignored: 1.0 - 0.1 * 0.5
    kl = t([[0.2, -0.2, 0.5, 9.0], [0.3, 9.0, 9.0, 9.0]])
    mask = t([[1, 1, 1, 0], [1, 0, 0, 0]])
    close(shape_sequence_rewards(t([1.0, -1.0]), kl, mask, kl_coef=0.1), [0.95, -1.03])


def test_broadcast_to_tokens_is_zero_on_padding():
    out = broadcast_to_tokens(t([0.5, -2.0]), t([[1, 1, 0], [1, 0, 0]]))
    close(out, [[0.5, 0.5, 0.0], [-2.0, 0.0, 0.0]])


def test_best_of_group_picks_one_per_group_first_on_ties():
    # groups [0.8, 0.2, 0.5, 0.9] -> index 3; [1, 1, 0, 1] -> the first of the tied maxima
    out = best_of_group(t([0.8, 0.2, 0.5, 0.9, 1.0, 1.0, 0.0, 1.0]), group_size=4)
    close(out, [0, 0, 0, 1, 1, 0, 0, 0])
