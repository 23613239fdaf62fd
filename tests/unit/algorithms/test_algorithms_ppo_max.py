"""PPO-max's switches on PPO (spec.md 3.3, 18.2): running reward moments, clip, advantage switches."""

import math
import re

import pytest
import torch

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.ppo import PPO

F64 = torch.float64


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), atol=1e-6, rtol=0)


def t(values):
    return torch.tensor(values, dtype=F64)


def rollout(scores, mask, logprobs, ref_logprobs, values) -> Rollout:
    mask = t(mask)
    b, n = mask.shape
    return Rollout(
        prompt_ids=torch.zeros(b, 2, dtype=torch.long),
        prompt_attn=torch.ones(b, 2, dtype=torch.long),
        response_ids=torch.zeros(b, n, dtype=torch.long),
        mask=mask,
        logprobs=t(logprobs),
        scores=t(scores),
        values=t(values),
        signals={"reference": t(ref_logprobs)},
    )


def test_reward_normalisation_uses_running_moments_including_the_current_batch_then_clips():
    algo = PPO(reward_scaling=True, reward_norm=True, reward_clip=0.8)
    # batch [1, 2, 3]: running mean 2, Bessel std 1 -> [-1, 0, 1], clipped to +-0.8
    close(algo.process_scores(t([1.0, 2.0, 3.0])), [-0.8, 0.0, 0.8])
    # batch [5, 7]: history [1, 2, 3, 5, 7], mean 3.6, std sqrt(23.2 / 4) = 2.408319
    # (5 - 3.6) / 2.408319 = 0.581318; (7 - 3.6) / 2.408319 = 1.411773 -> clipped to 0.8
    close(algo.process_scores(t([5.0, 7.0])), [0.581318, 0.8])
    assert math.isclose(algo.reward_mean, 3.6, abs_tol=1e-9)


def test_reward_scaling_alone_divides_by_the_running_std_without_centring():
    algo = PPO(reward_scaling=True, reward_norm=False, reward_clip=None)  # MOSS-RLHF release
    close(algo.process_scores(t([1.0, 2.0, 3.0])), [1.0, 2.0, 3.0])  # std 1
    # 5 / 2.408319 = 2.076137, 7 / 2.408319 = 2.906592
    close(algo.process_scores(t([5.0, 7.0])), [2.076137, 2.906592])


def test_plain_ppo_only_clamps_the_raw_scores():
    algo = PPO(reward_clip=10.0)
    close(algo.process_scores(t([-12.0, 3.0, 11.0])), [-10.0, 3.0, 10.0])


# 18.2: one response of 4 tokens + padding; KL = old - ref = [0.1, -0.05, 0.2, 0.0]
MASK = [[1, 1, 1, 1, 0]]
OLD = [[-1.0, -1.05, -0.8, -1.0, -9.0]]
REF = [[-1.1, -1.0, -1.0, -1.0, -3.0]]
VALUES = [[0.5, 0.6, 0.7, 0.8, 0.9]]
GAE_18_2 = [[0.433425, 0.3615, 0.27, 0.2, 0.0]]  # gamma 1, lam 0.95, beta 0.1 (see test_rl_advantages)


def test_without_advantage_whitening_gae_is_returned_as_is():
    algo = PPO(kl_coef=0.1, lam=0.95, reward_clip=None, whiten_advantages=False)
    advantages, returns = algo.advantages(rollout([1.0], MASK, OLD, REF, VALUES))
    close(advantages, GAE_18_2)
    close(returns, [[0.933425, 0.9615, 0.97, 1.0, 0.0]])


def test_advantage_clip_bounds_the_advantages_and_keeps_padding_zero():
    algo = PPO(kl_coef=0.1, lam=0.95, reward_clip=None, whiten_advantages=False, advantage_clip=0.3)
    advantages, _ = algo.advantages(rollout([1.0], MASK, OLD, REF, VALUES))
    close(advantages, [[0.3, 0.3, 0.27, 0.2, 0.0]])


def test_whitening_eps_is_a_key():
    # population variance, eps 0: 18.2's OpenRLHF numbers
    algo = PPO(kl_coef=0.1, lam=0.95, whiten_unbiased=False, whiten_eps=0.0)
    advantages, _ = algo.advantages(rollout([1.0], MASK, OLD, REF, VALUES))
    close(advantages, [[1.32208, 0.510683, -0.521541, -1.311222, 0.0]])


def test_running_moments_are_plain_floats_a_checkpoint_can_restore():
    algo = PPO(reward_scaling=True, reward_norm=True)
    algo.advantages(rollout([1.0], MASK, OLD, REF, VALUES))
    state = dict(vars(algo))
    assert all(type(state[k]) is float for k in ("reward_mean", "reward_var", "reward_count"))
    fresh = PPO(reward_scaling=True, reward_norm=True)
    for key, value in state.items():
        setattr(fresh, key, value)
    assert fresh.process_scores(t([2.0])).item() == algo.process_scores(t([2.0])).item()


def test_loss_stats_are_floats_and_policy_and_value_losses_add_up():
    algo = PPO(kl_coef=0.1, reward_clip=None, whiten_advantages=False, value_clip=0.2)
    batch = rollout([1.0], MASK, OLD, REF, VALUES)
    batch.advantages, batch.returns = algo.advantages(batch)
    logprobs = t(OLD).requires_grad_()  # ratio 1: clipped surrogate = -A
    values = t(VALUES)
    loss, stats = algo.loss(batch, logprobs, values)
    # policy: -(0.433425 + 0.3615 + 0.27 + 0.2) / 4 = -0.31623125
    # value: 1/2 (V - R)^2 with V - R = -A, token mean:
    # (0.187857 + 0.130682 + 0.0729 + 0.04) / 8 = 0.431439 / 8 = 0.0539299
    assert math.isclose(loss.item(), -0.31623125 + 0.0539299, abs_tol=1e-6)
    assert all(type(v) is float for v in stats.values())
    assert stats["train/clip_frac"] == 0.0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"reward_clip": 0.0},
            "reward_clip=0.0: must be > 0 or null (the range is [-reward_clip, reward_clip])",
        ),
        ({"advantage_clip": -1.0}, "advantage_clip=-1.0: must be > 0 or null"),
        ({"critic_pretrain_steps": -1}, "critic_pretrain_steps=-1: must be >= 0"),
        ({"ptx_coef": -0.1}, "ptx_coef=-0.1: must be >= 0"),
        ({"entropy_coef": -0.1}, "entropy_coef=-0.1: must be >= 0"),
    ],
)
def test_bad_switches_fail_with_one_line(kwargs, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        PPO(**kwargs)
