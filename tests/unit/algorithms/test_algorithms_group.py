"""Algorithms with k samples per prompt: RLOO, RAFT, GRPO, Dr. GRPO, REINFORCE++-baseline
(spec.md 6, 7, 9, 11, 18.1, 18.3, 18.5, 18.6, 18.9)."""

import math

import pytest
import torch

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.raft import RAFT
from align_lab.algorithms.reinforce_pp import ReinforcePP
from align_lab.algorithms.rloo import RLOO

F64 = torch.float64


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), atol=1e-6, rtol=0)


def t(values):
    return torch.as_tensor(values, dtype=F64)


def lengths_mask(lengths, width):
    return (torch.arange(width) < torch.tensor(lengths)[:, None]).to(F64)  # (B, T)


def rollout(scores, mask, group_size, kl=None, logprobs=None, ref_logprobs=None) -> Rollout:
    """Reward-side k1 KL (old - ref log-probs) is `kl` (0 by default)."""
    b, n = mask.shape
    if ref_logprobs is None:
        ref_logprobs = torch.full((b, n), -1.0, dtype=F64)
    if logprobs is None:
        logprobs = ref_logprobs + (0 if kl is None else t(kl))
    return Rollout(
        prompt_ids=torch.zeros(b, 2, dtype=torch.long),
        prompt_attn=torch.ones(b, 2, dtype=torch.long),
        response_ids=torch.zeros(b, n, dtype=torch.long),
        mask=mask,
        logprobs=logprobs,
        scores=t(scores),
        signals={"reference": ref_logprobs},
    )


# 18.3: one group of k = 4; padding after EOS in rows 1-3
GROUP = [0.8, 0.2, 0.5, 0.9]
MASK = lengths_mask([3, 1, 2, 3], 3)


def tokens(per_sequence, mask=MASK):
    return t(per_sequence)[:, None] * mask


# ---- RLOO
def test_rloo_leave_one_out_matches_18_3_on_every_token_and_zero_on_padding():
    advantages, returns = RLOO(group_size=4).advantages(rollout(GROUP, MASK, 4))
    # r_i - mean of the other three: [0.8 - 1.6/3, 0.2 - 2.2/3, 0.5 - 1.9/3, 0.9 - 1.5/3]
    close(advantages, tokens([0.266667, -0.533333, -0.133333, 0.4]))
    assert returns is None


def test_rloo_baselines_the_kl_shaped_sequence_reward():
    # KL sums [1.0, 0, 0, 0] (0.5 + 0.5 on row 0), beta 0.1 -> R = [0.7, 0.2, 0.5, 0.9]
    kl = [[0.5, 0.5, 0.0], [0.0] * 3, [0.0] * 3, [0.0] * 3]
    advantages, _ = RLOO(group_size=4, kl_coef=0.1).advantages(rollout(GROUP, MASK, 4, kl))
    # [0.7 - 1.6/3, 0.2 - 2.1/3, 0.5 - 1.8/3, 0.9 - 1.4/3]
    close(advantages, tokens([0.166667, -0.5, -0.1, 0.433333]))


def test_rloo_token_level_kl_shapes_after_the_baseline_openrlhf():
    kl = [[0.5, 0.5, 0.0], [0.0] * 3, [0.0] * 3, [0.0] * 3]
    algo = RLOO(group_size=4, kl_coef=0.1, token_level_kl=True)
    advantages, _ = algo.advantages(rollout(GROUP, MASK, 4, kl))
    # baseline on raw scores: [0.266667, -0.533333, -0.133333, 0.4] at each last token, then
    # row 0 rewards [-0.05, -0.05, 0.266667] -> return-to-go [0.166667, 0.216667, 0.266667]
    close(advantages[0], [0.166667, 0.216667, 0.266667])
    close(advantages[1:], tokens([-0.533333, -0.133333, 0.4], MASK[1:]))


def test_rloo_all_equal_group_gives_zero():
    advantages, _ = RLOO(group_size=4).advantages(rollout([0.3] * 4, MASK, 4))
    assert (advantages == 0).all()


def test_rloo_paper_loss_is_sequence_level_reinforce():
    algo = RLOO(group_size=2)
    batch = rollout([1.0, 0.0], lengths_mask([2, 1], 2), 2)
    batch.advantages, _ = algo.advantages(batch)  # [[1, 1], [-1, 0]]
    logprobs = t([[-1.0, -2.0], [-0.5, -9.0]]).requires_grad_()
    loss, stats = algo.loss(batch, logprobs, None)
    # -(1 * (-1 - 2) + (-1) * (-0.5)) / 2 = (3 - 0.5) / 2 = 1.25
    assert math.isclose(loss.item(), 1.25, abs_tol=1e-9)
    loss.backward()
    close(logprobs.grad, [[-0.5, -0.5], [0.5, 0.0]])
    assert stats == {"train/clip_frac": 0.0}


def test_rloo_sequence_ratio_clips_one_ratio_per_sequence_trl():
    # 18.6 per sequence: summed new log-prob -1.0, old -1.3 -> rho = 1.349859, eps 0.2
    algo = RLOO(group_size=2, ratio="sequence")
    mask = lengths_mask([2, 2], 2)
    batch = rollout([1.0, 0.0], mask, 2, logprobs=t([[-0.65, -0.65]] * 2))
    batch.advantages = tokens([1.0, -1.0], mask)
    loss, stats = algo.loss(batch, t([[-0.5, -0.5]] * 2), None)
    # A = +1: -min(1.349859, 1.2) = -1.2 (clipped); A = -1: -min(-1.349859, -1.2) = 1.349859
    assert math.isclose(loss.item(), (-1.2 + 1.349859) / 2, abs_tol=1e-6)
    assert stats["train/clip_frac"] == 0.5


def test_rloo_token_ratio_clips_per_token_openrlhf():
    algo = RLOO(group_size=2, ratio="token", loss_aggregation="token_mean")
    mask = lengths_mask([2, 1], 2)
    batch = rollout([1.0, 0.0], mask, 2, logprobs=t([[-1.3, -1.0], [-1.3, -5.0]]))
    batch.advantages = tokens([1.0, -1.0], mask)
    loss, stats = algo.loss(batch, t([[-1.0, -1.0], [-1.0, -1.0]]), None)
    # tokens: rho [1.349859, 1, 1.349859]: losses [-1.2, -1.0, 1.349859] -> mean 0.149859 / 3
    assert math.isclose(loss.item(), (-1.2 - 1.0 + 1.349859) / 3, abs_tol=1e-6)
    assert math.isclose(stats["train/clip_frac"], 1 / 3, abs_tol=1e-6)


@pytest.mark.parametrize(
    "cls,kwargs,message",
    [
        (RLOO, {"group_size": 1}, "group_size=1: must be >= 2"),
        (RLOO, {"ratio": "sequence", "token_level_kl": True}, "ratio=sequence: must be token or none"),
        (RLOO, {"ratio": "tokens"}, "ratio=tokens: must be one of"),
        (RAFT, {"group_size": 1}, "group_size=1: must be >= 2"),
        (GRPO, {"group_size": 1}, "group_size=1: must be >= 2"),
        (ReinforcePP, {"group_baseline": True, "group_size": 1}, "group_size=1: must be >= 2"),
    ],
)
def test_wrong_combinations_fail_before_compute_with_one_line(cls, kwargs, message):
    with pytest.raises(ValueError) as e:
        cls(**kwargs)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


# ---- RAFT
def test_raft_keeps_the_best_kl_shaped_response_of_each_group():
    # KL sums [0.5, 0, 0, 2.0], beta 0.1: R = [0.75, 0.2, 0.5, 0.7] -> row 0 wins (raw score: row 3)
    kl = [[0.5, 0.0, 0.0], [0.0] * 3, [0.0] * 3, [1.0, 1.0, 0.0]]
    advantages, _ = RAFT(group_size=4, kl_coef=0.1).advantages(rollout(GROUP, MASK, 4, kl))
    close(advantages, tokens([1.0, 0.0, 0.0, 0.0]))


def test_raft_ties_keep_exactly_one_response():
    advantages, _ = RAFT(group_size=4).advantages(rollout([0.5] * 4, MASK, 4))
    close(advantages, tokens([1.0, 0.0, 0.0, 0.0]))


def test_raft_loss_is_nll_over_the_kept_tokens_only():
    algo = RAFT(group_size=2)
    mask = lengths_mask([2, 2], 2)
    batch = rollout([1.0, 0.0], mask, 2)
    batch.advantages, _ = algo.advantages(batch)  # row 0 kept
    logprobs = t([[-1.0, -3.0], [-10.0, -10.0]]).requires_grad_()
    loss, stats = algo.loss(batch, logprobs, None)
    assert math.isclose(loss.item(), 2.0)  # (1 + 3) / 2 kept tokens
    loss.backward()
    close(logprobs.grad, [[-0.5, -0.5], [0.0, 0.0]])
    assert stats == {"train/clip_frac": 0.0}


# ---- GRPO and Dr. GRPO
def test_grpo_advantages_match_18_3_unbiased_std_plus_eps():
    advantages, _ = GRPO(group_size=4).advantages(rollout(GROUP, MASK, 4))
    # (r - 0.6) / (0.316228 + 1e-4): TRL's convention
    close(advantages, tokens([0.632256, -1.264511, -0.316128, 0.948383]))


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({"eps": 1e-9}, [0.632456, -1.264911, -0.316228, 0.948683]),  # OpenRLHF group_norm
        ({"std_unbiased": False, "eps": 0.0}, [0.730297, -1.460593, -0.365148, 1.095445]),
        ({"scale_by_std": False}, [0.2, -0.4, -0.1, 0.3]),  # Dr. GRPO
    ],
)
def test_grpo_normalisation_conventions_are_keys(kwargs, expected):
    advantages, _ = GRPO(group_size=4, **kwargs).advantages(rollout(GROUP, MASK, 4))
    close(advantages, tokens(expected))


def test_grpo_all_equal_group_gives_exactly_zero():
    advantages, _ = GRPO(group_size=4).advantages(rollout([1.0] * 4, MASK, 4))
    assert (advantages == 0).all()


def test_grpo_kl_in_the_reward_shapes_the_normalised_score_per_token():
    # use_kl_loss=false (OpenRLHF default for group_norm): row 0 k1 KL [0.5, 0.5, 0], beta 0.1
    kl = [[0.5, 0.5, 0.0], [0.0] * 3, [0.0] * 3, [0.0] * 3]
    algo = GRPO(group_size=4, use_kl_loss=False, kl_estimator="k1", kl_coef=0.1)
    advantages, _ = algo.advantages(rollout(GROUP, MASK, 4, kl))
    # rewards [-0.05, -0.05, 0.632256] -> return-to-go [0.532256, 0.582256, 0.632256]
    close(advantages[0], [0.532256, 0.582256, 0.632256])


def test_grpo_loss_adds_k3_kl_on_the_current_policy_and_averages_per_sequence():
    # 18.1: row 0 log-probs [-0.5, -1.2, -2.0] vs reference [-0.7, -1.0, -2.5]:
    # k3 = [0.0187308, 0.0214028, 0.1065307], token mean 0.0488881; row 1 equals its reference
    ref = t([[-0.7, -1.0, -2.5], [-1.0, -1.0, -1.0]])
    new = t([[-0.5, -1.2, -2.0], [-1.0, -1.0, -1.0]])
    mask = lengths_mask([3, 2], 3)
    batch = rollout([1.0, 0.0], mask, 2, logprobs=new.clone(), ref_logprobs=ref)  # ratio 1
    batch.advantages = tokens([1.0, -0.5], mask)
    loss, stats = GRPO(group_size=2, kl_coef=0.04).loss(batch, new.requires_grad_(), None)
    # row 0: mean(-1 + 0.04 k3) = -1 + 0.04 * 0.0488881 = -0.99804448; row 1: mean(0.5) = 0.5
    assert math.isclose(loss.item(), (-0.99804448 + 0.5) / 2, abs_tol=1e-7)
    assert math.isclose(stats["train/kl_loss"], 0.1466642 / 5, abs_tol=1e-6)  # token mean over 5
    assert stats["train/clip_frac"] == 0.0


@pytest.mark.parametrize(
    "aggregation,max_len,expected",
    [
        ("seq_mean_token_mean", None, 1.5),  # 18.9 GRPO: (1 + 2) / 2
        ("token_mean", None, 1.4),  # (3 + 4) / 5
        ("constant", None, 0.7),  # Dr. GRPO: 7 / (2 * 5)
        ("constant", 10, 0.35),  # 7 / (2 * 10)
    ],
)
def test_grpo_aggregations_match_18_9(aggregation, max_len, expected):
    # ratio 1 and no KL, so the per-token loss is -A: [[1, 1, 1, ., .], [2, 2, ., ., .]]
    mask = lengths_mask([3, 2], 5)
    old = torch.full((2, 5), -1.0, dtype=F64)
    batch = rollout([0.0, 1.0], mask, 2, logprobs=old)
    batch.advantages = tokens([-1.0, -2.0], mask)
    algo = GRPO(group_size=2, kl_coef=0.0, loss_aggregation=aggregation, max_len=max_len)
    loss, _ = algo.loss(batch, old.clone(), None)
    assert math.isclose(loss.item(), expected, abs_tol=1e-9)


# ---- REINFORCE++-baseline (REINFORCE++ with group_baseline and a k2 KL loss)
def rpp_baseline(**kwargs):
    return ReinforcePP(group_size=4, group_baseline=True, use_kl_loss=True, kl_estimator="k2", **kwargs)


def test_reinforce_pp_baseline_matches_18_5_and_ignores_reward_side_kl():
    scores = [1, 0, 0, 1, 0.5, 0.2, 0.9, 0.4]
    mask = lengths_mask([3, 2, 4, 1, 2, 2, 3, 3], 4)
    kl = torch.full((8, 4), 0.3, dtype=F64)  # KL goes to the loss, so it must not move advantages
    advantages, returns = rpp_baseline(kl_coef=0.1).advantages(rollout(scores, mask, 4, kl))
    # group means 0.5, 0.5 -> [0.5, -0.5, -0.5, 0.5, 0, -0.3, 0.4, -0.1]; token-weighted mean
    # -0.035, population var 0.158275 -> (A + 0.035) / 0.397838 on each kept token
    expected = [1.344769, -1.168818, -1.168818, 1.344769, 0.087976, -0.6661, 1.09341, -0.163383]
    close(advantages, tokens(expected, mask))
    assert returns is None


def test_reinforce_pp_baseline_all_equal_groups_give_zero():
    mask = lengths_mask([3, 2, 4, 1, 2, 2, 3, 3], 4)
    advantages, _ = rpp_baseline().advantages(rollout([1, 1, 1, 1, 0, 0, 0, 0], mask, 4))
    assert (advantages == 0).all()


def test_reinforce_pp_baseline_loss_adds_k2_whose_gradient_is_u_grad_logprob():
    # 18.1: u = [0.2, -0.2, 0.5], k2 = u^2 / 2 = [0.02, 0.02, 0.125]; ratio 1, A = 1, lambda 0.1
    ref = t([[-0.7, -1.0, -2.5]])
    new = t([[-0.5, -1.2, -2.0]])
    mask = t([[1, 1, 1]])
    batch = rollout([1.0], mask, 1, logprobs=new.clone(), ref_logprobs=ref)
    batch.advantages = mask.clone()
    logprobs = new.clone().requires_grad_()
    algo = ReinforcePP(use_kl_loss=True, kl_estimator="k2", kl_coef=0.1)
    loss, stats = algo.loss(batch, logprobs, None)
    # token mean of -1 + 0.1 * k2: -1 + 0.1 * 0.165 / 3 = -0.9945
    assert math.isclose(loss.item(), -0.9945, abs_tol=1e-9)
    loss.backward()
    # (-A + lambda u) / 3 = [(-1 + 0.02) / 3, (-1 - 0.02) / 3, (-1 + 0.05) / 3]
    close(logprobs.grad, [[-0.326667, -0.34, -0.316667]])
    assert math.isclose(stats["train/kl_loss"], 0.055, abs_tol=1e-9)
