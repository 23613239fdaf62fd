"""Critic-free and baseline REINFORCE variants with one sample per prompt (spec.md 4, 5, 8, 18.2)."""

import math

import pytest
import torch

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.reinforce_ma import ReinforceMA
from align_lab.algorithms.remax import ReMax
from align_lab.algorithms.signals import GreedyBaseline
from align_lab.algorithms.vanilla_pg import VanillaPG

F64 = torch.float64


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), atol=1e-6, rtol=0)


def t(values):
    return torch.tensor(values, dtype=F64)


def rollout(scores, mask, kl, values=None, baseline_scores=None) -> Rollout:
    """A hand-made rollout whose reward-side k1 KL (old - ref log-probs) is `kl`."""
    mask = t(mask)
    b, n = mask.shape
    ref_logprobs = torch.full((b, n), -1.0, dtype=F64)
    return Rollout(
        prompt_ids=torch.zeros(b, 2, dtype=torch.long),
        prompt_attn=torch.ones(b, 2, dtype=torch.long),
        response_ids=torch.zeros(b, n, dtype=torch.long),
        mask=mask,
        logprobs=ref_logprobs + t(kl),
        scores=t(scores),
        values=None if values is None else t(values),
        signals={
            "reference": ref_logprobs,
            **({} if baseline_scores is None else {"greedy_baseline": t(baseline_scores)}),
        },
    )


# ---- Vanilla PG: 18.2's response (4 tokens + padding), beta 0.1, score 1.0, gamma 1
MASK_18_2 = [[1, 1, 1, 1, 0]]
KL_18_2 = [[0.1, -0.05, 0.2, 0.0, 7.0]]  # the padded 7.0 must not enter
VALUES_18_2 = [[0.5, 0.6, 0.7, 0.8, 0.9]]  # the padded 0.9 must not enter


def test_vanilla_pg_advantage_is_return_to_go_minus_baseline():
    algo = VanillaPG(kl_coef=0.1)
    advantages, returns = algo.advantages(rollout([1.0], MASK_18_2, KL_18_2, VALUES_18_2))
    # shaped rewards [-0.01, 0.005, -0.02, 1.0]; return-to-go G = [0.975, 0.985, 0.98, 1.0]
    close(returns, [[0.975, 0.985, 0.98, 1.0, 0.0]])
    # minus V = [0.5, 0.6, 0.7, 0.8]
    close(advantages, [[0.475, 0.385, 0.28, 0.2, 0.0]])


def test_vanilla_pg_loss_is_token_sum_policy_gradient_plus_half_squared_error():
    algo = VanillaPG(kl_coef=0.1)
    batch = rollout([1.0], MASK_18_2, KL_18_2, VALUES_18_2)
    batch.advantages, batch.returns = algo.advantages(batch)
    logprobs = t([[-1.0, -2.0, -0.5, -0.1, -7.0]]).requires_grad_()
    values = t([[1.0, 1.0, 1.0, 1.0, 5.0]]).requires_grad_()
    loss, stats = algo.loss(batch, logprobs, values)
    # policy: -(0.475 * -1 + 0.385 * -2 + 0.28 * -0.5 + 0.2 * -0.1) = 0.475 + 0.77 + 0.14 + 0.02 = 1.405
    # value: 1/2 mean((1 - G)^2) = 1/2 (0.000625 + 0.000225 + 0.0004 + 0) / 4 = 0.00015625
    assert math.isclose(loss.item(), 1.405 + 0.00015625, abs_tol=1e-9)
    loss.backward()
    close(logprobs.grad, [[-0.475, -0.385, -0.28, -0.2, 0.0]])  # -stopgrad(G - b), none on padding
    # d/dV 1/2 (V - G)^2 / 4 = (V - G) / 4 = [0.025, 0.015, 0.02, 0] / 4
    close(values.grad, [[0.00625, 0.00375, 0.005, 0.0, 0.0]])
    assert stats == {"train/clip_frac": 0.0, "train/value_loss": pytest.approx(0.00015625)}


# ---- REINFORCE with a moving-average baseline, beta 0.1
def test_reinforce_ma_baseline_is_the_mean_of_past_rewards_only():
    algo = ReinforceMA(kl_coef=0.1)
    # step 1: sequence KL sums 0.2 + 0.3 = 0.5 and -0.1: R = [1 - 0.05, 0 + 0.01] = [0.95, 0.01];
    # no past reward yet, so b = 0
    first = rollout([1.0, 0.0], [[1, 1, 0], [1, 0, 0]], [[0.2, 0.3, 9.0], [-0.1, 9.0, 9.0]])
    advantages, returns = algo.advantages(first)
    close(advantages, [[0.95, 0.95, 0.0], [0.01, 0.0, 0.0]])
    assert returns is None
    # step 2: R = [0.5, 0.5] (no KL); b = mean(0.95, 0.01) = 0.48, not (0.96 + 1) / 4 = 0.49
    second = rollout([0.5, 0.5], [[1, 1, 1], [1, 1, 0]], [[0.0] * 3, [0.0] * 3])
    advantages, _ = algo.advantages(second)
    close(advantages, [[0.02, 0.02, 0.02], [0.02, 0.02, 0.0]])
    assert math.isclose(algo.baseline, 0.49)  # the next step's baseline includes step 2
    assert type(algo.reward_sum) is float and type(algo.reward_count) is int


def test_reinforce_ma_loss_is_advantage_times_summed_logprobs():
    algo = ReinforceMA(kl_coef=0.1)
    batch = rollout([1.0, 0.0], [[1, 1, 0], [1, 0, 0]], [[0.2, 0.3, 9.0], [-0.1, 9.0, 9.0]])
    batch.advantages, _ = algo.advantages(batch)
    logprobs = t([[-1.0, -2.0, -5.0], [-3.0, -5.0, -5.0]]).requires_grad_()
    loss, stats = algo.loss(batch, logprobs, None)
    # -(0.95 * (-1 - 2) + 0.01 * (-3)) / 2 = (2.85 + 0.03) / 2 = 1.44
    assert math.isclose(loss.item(), 1.44, abs_tol=1e-9)
    loss.backward()
    close(logprobs.grad, [[-0.475, -0.475, 0.0], [-0.005, 0.0, 0.0]])  # -A / B, none on padding
    assert stats["train/clip_frac"] == 0.0 and all(type(v) is float for v in stats.values())


# ---- ReMax, beta 0.1
def test_remax_advantage_is_return_to_go_minus_greedy_score():
    algo = ReMax(kl_coef=0.1)
    batch = rollout(
        scores=[1.0, 0.0],
        mask=[[1, 1, 1, 0], [1, 0, 0, 0]],
        kl=[[0.1, -0.1, 0.2, 9.0], [0.5, 9.0, 9.0, 9.0]],
        baseline_scores=[0.7, 0.2],
    )
    advantages, returns = algo.advantages(batch)
    # row 0: rewards [-0.01, 0.01, -0.02 + 1] -> return-to-go [0.98, 0.99, 0.98], minus 0.7
    # row 1: reward [-0.05] -> -0.05 - 0.2 = -0.25
    close(advantages, [[0.28, 0.29, 0.28, 0.0], [-0.25, 0.0, 0.0, 0.0]])
    assert returns is None


def test_remax_sample_equal_to_greedy_without_kl_has_zero_advantage():
    algo = ReMax(kl_coef=0.1)
    batch = rollout([0.4], [[1, 1, 0]], [[0.0, 0.0, 3.0]], baseline_scores=[0.4])
    advantages, _ = algo.advantages(batch)
    assert (advantages == 0).all()


def test_remax_asks_the_loop_for_greedy_baselines_and_fails_without_them():
    algo = ReMax()
    assert GreedyBaseline() in algo.signals
    with pytest.raises(ValueError, match="greedy_baseline"):
        algo.advantages(rollout([1.0], [[1, 0]], [[0.0, 0.0]]))


def test_remax_loss_is_reinforce_with_token_sums():
    algo = ReMax(kl_coef=0.0)
    batch = rollout([1.0, 0.0], [[1, 1], [1, 0]], [[0.0, 0.0], [0.0, 0.0]], baseline_scores=[0.5, 0.5])
    batch.advantages, _ = algo.advantages(batch)  # [[0.5, 0.5], [-0.5, 0]]
    logprobs = t([[-1.0, -1.0], [-2.0, -9.0]])
    loss, stats = algo.loss(batch, logprobs, None)
    # -(0.5 * -2 + -0.5 * -2) / 2 = 0
    assert math.isclose(loss.item(), 0.0, abs_tol=1e-12)
    assert stats == {"train/clip_frac": 0.0}


def test_the_plain_reinforce_term_is_minus_advantage_times_logprob_and_clips_nothing():
    from align_lab.algorithms.parts import Reinforce

    batch = rollout([1.0], [[1, 1, 0]], [[0.0, 0.0, 0.0]])
    batch.advantages = t([[2.0, -1.0, 0.0]])
    per_token, clipped = Reinforce()(batch, t([[-0.5, -3.0, -7.0]]), batch.logprobs, None)
    # -A log pi: -(2 * -0.5) = 1, -(-1 * -3) = -3, -(0 * -7) = 0 (padding: the mask drops it later)
    close(per_token, [[1.0, -3.0, 0.0]])
    assert not clipped.any()


@pytest.mark.parametrize("cls", [ReMax, ReinforceMA, VanillaPG])
def test_remax_reinforce_ma_and_vanilla_pg_take_the_one_loss_with_the_plain_term(cls):
    # issue 60 item 2: their policy loss is parts.ClipLoss (correction, then their loss_aggregation)
    from align_lab.algorithms.parts import ClipLoss, Reinforce

    algo = cls(loss_aggregation="token_mean")
    assert isinstance(algo.clip_loss, ClipLoss) and isinstance(algo.clip_loss.term, Reinforce)
    assert not algo.clip_loss.kl_in_loss  # their KL is in the reward
    assert algo.clip_loss.aggregation.loss_aggregation == "token_mean"
