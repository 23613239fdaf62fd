"""DPPO, DRO and GDPO on hand-derived numbers (the arithmetic in each comment), and GDPO's refusals."""

import math

import pytest
import torch

from align_lab.algorithms.dppo import DPPO
from align_lab.algorithms.dro import DRO
from align_lab.algorithms.gdpo import GDPO
from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip
from align_lab.algorithms.signals import SourceScores
from align_lab.rewards.function import WeightedSum
from tests.unit.algorithms.test_algorithms_group import close, lengths_mask, rollout, t


def one_row(old_probs, new_probs, advantages):
    """A rollout of one response whose pi_old per token is old_probs; (batch, log pi) at new_probs."""
    n = len(old_probs)
    batch = rollout([0.0], lengths_mask([n], n), 1, logprobs=t([old_probs]).log())
    batch.advantages = t([advantages])
    return batch, t([new_probs]).log().requires_grad_()


def test_dppo_tv_masks_only_tokens_that_left_the_region_in_the_direction_a_pushes():
    # pi_old = 0.5 everywhere, clip = 0.2; p - p_old and A per token:
    # 0.8 (+0.3, A=+1) masked; 0.6 (+0.1, A=+1) kept, rho 1.2: -1.2 ln 0.6 = 0.6129908;
    # 0.2 (-0.3, A=-1) masked; 0.4 (-0.1, A=-1) kept, rho 0.8: 0.8 ln 0.4 = -0.7330326;
    # 0.2 (-0.3, A=+1) kept (moved against A's push), rho 0.4: -0.4 ln 0.2 = 0.6437752.
    # token mean: (0.6129908 - 0.7330326 + 0.6437752) / 5 = 0.1047467; 2 of 5 masked
    batch, logprobs = one_row([0.5] * 5, [0.8, 0.6, 0.2, 0.4, 0.2], [1.0, 1.0, -1.0, -1.0, 1.0])
    loss, stats = DPPO(kl_coef=0.0).loss(batch, logprobs, None)
    close(loss, 0.1047467)
    assert stats["train/clip_frac"] == pytest.approx(0.4)
    loss.backward()  # d/d log pi = -sg(rho) A / 5 on kept tokens, 0 on masked ones
    close(logprobs.grad, [[0.0, -1.2 / 5, 0.0, 0.8 / 5, -0.4 / 5]])


def test_dppo_binary_kl_bounds_the_bernoulli_kl_from_pi_old():
    # KL(0.5 || 0.8) = 0.5 ln(0.5/0.8) + 0.5 ln(0.5/0.2) = -0.2350018 + 0.4581454 = 0.2231436 = KL(0.5 || 0.2)
    # KL(0.5 || 0.55) = 0.5 ln(0.5/0.55) + 0.5 ln(0.5/0.45) = -0.0476551 + 0.0526803 = 0.0050252
    # clip 0.1: 0.8 with A=+1 masked (up, KL > 0.1); 0.2 with A=+1 kept (down): -0.4 ln 0.2 = 0.6437752;
    # 0.2 with A=-1 masked (down, KL > 0.1); 0.55 with A=-1 kept (KL <= 0.1): 1.1 ln 0.55 = -0.6576207
    # token mean (0.6437752 - 0.6576207) / 4 = -0.0034614
    batch, logprobs = one_row([0.5] * 4, [0.8, 0.2, 0.2, 0.55], [1.0, 1.0, -1.0, -1.0])
    algo = DPPO(kl_coef=0.0, divergence="binary_kl", clip=RatioClip(0.1))
    loss, stats = algo.loss(batch, logprobs, None)
    close(loss, -0.0034614)
    assert stats["train/clip_frac"] == pytest.approx(0.5)
    # clip 0.3 keeps the 0.8 token too (0.2231436 <= 0.3): rho 1.6, -1.6 ln 0.8 = 0.3570297, and the
    # 0.2 with A=-1: rho 0.4, 0.4 ln 0.2 = -0.6437752:
    # (0.3570297 + 0.6437752 - 0.6437752 - 0.6576207) / 4 = -0.0751478
    close(
        DPPO(kl_coef=0.0, divergence="binary_kl", clip=RatioClip(0.3)).loss(batch, logprobs, None)[0],
        -0.0751478,
    )


def test_dppo_ratio_cap_truncates_the_detached_weight():
    # pi_old 0.01 -> pi 0.5 with A = -1: p - p_old = +0.49 >= -0.2 (kept); rho = 50, capped at 20:
    # loss = -20 (-1) ln 0.5 = -13.862944; uncapped 50 ln 0.5 = -34.657359
    batch, logprobs = one_row([0.01], [0.5], [-1.0])
    close(DPPO(kl_coef=0.0).loss(batch, logprobs, None)[0], -13.862944)
    close(DPPO(kl_coef=0.0, ratio_cap=None).loss(batch, logprobs, None)[0], -34.657359)


def test_dro_is_the_policy_gradient_minus_half_beta_squared_log_ratio():
    # log pi_old [-1, -2], log pi [-0.5, -1.5], A [2, -1], beta 0.5:
    # -(2 (-0.5) - 0.25 (0.5)^2) = 1.0625; -((-1)(-1.5) - 0.25 (0.5)^2) = -1.4375; mean -0.1875
    # gradient -A + beta (log pi - log pi_old), / 2 tokens: (-2 + 0.25) / 2 = -0.875, (1 + 0.25) / 2 = 0.625
    batch = rollout([0.0], lengths_mask([2], 2), 1, logprobs=t([[-1.0, -2.0]]))
    batch.advantages = t([[2.0, -1.0]])
    logprobs = t([[-0.5, -1.5]]).requires_grad_()
    loss, stats = DRO(kl_coef=0.0, dro_beta=0.5).loss(batch, logprobs, None)
    close(loss, -0.1875)
    loss.backward()
    close(logprobs.grad, [[-0.875, 0.625]])
    assert stats["train/clip_frac"] == 0.0


def two_sources():
    """2 prompts x G = 2, sources r1 and r2, weights (1, 0.5), one token each."""
    batch = rollout([1.0, 0.0, 2.0, 1.0], lengths_mask([1, 1, 1, 1], 1), 2)
    scores = t([[1.0, 0.0], [0.0, 0.0], [1.0, 2.0], [1.0, 0.0]])  # (B, K)
    batch.signals["reward_sources"] = SourceScores(scores, ("r1", "r2"), (1.0, 0.5))
    return batch


def test_gdpo_normalises_each_source_in_its_group_then_weights_and_whitens():
    # G = 2, unbiased std, eps 0: a pair (a, b) normalises to +-(a - b)/2 / (|a - b| / sqrt 2) = +-0.7071068
    # r1: group 1 (1, 0) -> +-0.7071068, group 2 (1, 1) -> 0;
    # r2: group 1 (0, 0) -> 0, group 2 (2, 0) -> +-0.7071068
    # sum 1 * A1 + 0.5 * A2 = [0.7071068, -0.7071068, 0.3535534, -0.3535534]
    batch = two_sources()
    close(
        GDPO(group_size=2, eps=0.0, batch_whiten=False).advantages(batch)[0],
        [[0.7071068], [-0.7071068], [0.3535534], [-0.3535534]],
    )
    # whitened over the 4 tokens: mean 0, unbiased var (0.5 + 0.5 + 0.125 + 0.125) / 3 = 0.4166667,
    # rsqrt(0.4166667 + 1e-8) = 1.5491933: 0.7071068 -> 1.0954451, 0.3535534 -> 0.5477226
    close(
        GDPO(group_size=2, eps=0.0).advantages(batch)[0],
        [[1.0954451], [-1.0954451], [0.5477226], [-0.5477226]],
    )
    # GRPO on the weighted sum r1 + 0.5 r2 = (1, 0), (2, 1) gives both groups +-0.7071068: the weight is lost
    close(
        GRPO(group_size=2, eps=0.0).advantages(batch)[0],
        [[0.7071068], [-0.7071068], [0.7071068], [-0.7071068]],
    )


def test_gdpo_refuses_what_it_cannot_normalise():
    with pytest.raises(ValueError, match="algo=gdpo: needs each reward source"):
        GDPO().advantages(rollout([1.0, 0.0], lengths_mask([1, 1], 1), 2))
    for key, value in [("use_kl_loss", False), ("std_scope", "batch"), ("dynamic_sampling", True)]:
        with pytest.raises(ValueError, match=f"^{key}="):
            GDPO(**{key: value})


def test_weighted_sum_keeps_each_source_and_sums_in_order():
    # sources (B = 2): a = [1, 2], b = [10, 20]; weights (1, -0.5): [1 - 5, 2 - 10] = [-4, -8]
    def a(prompts, responses, finished):
        return torch.tensor([1.0, 2.0])

    def b(prompts, responses, finished):
        return torch.tensor([10.0, 20.0])

    scorer = WeightedSum(("a", "b"), (1.0, -0.5), [a, b])
    assert scorer.by_source([], [], []).tolist() == [[1.0, 10.0], [2.0, 20.0]]
    assert scorer([], [], []).tolist() == [-4.0, -8.0]


def test_dppo_and_dro_refuse_keys_they_have_no_use_for():
    with pytest.raises(ValueError, match="^clip.dual="):
        DPPO(clip=RatioClip(dual=3.0))
    with pytest.raises(ValueError, match="^ratio_cap="):
        DPPO(ratio_cap=0.0)
    with pytest.raises(ValueError, match="^clip.high="):
        DRO(clip=RatioClip(high=0.28))
    assert math.isfinite(DRO().dro_beta)


def test_gdpo_is_refused_in_one_line_without_two_reward_sources():
    from types import SimpleNamespace

    from align_lab.config import ConfigError
    from align_lab.rewards import GoldReward
    from align_lab.rewards.function import Combined, FunctionReward
    from align_lab.run.reward_sources import check_sources

    def spec(reward, name):
        return SimpleNamespace(algo=GDPO(), reward=reward, names={"algo": "gdpo", "reward": name})

    with pytest.raises(ConfigError, match="^algo=gdpo normalises each reward source .* not reward=gold; "):
        check_sources(spec(GoldReward(), "gold"))
    brevity = {"weight": -0.01, "source": FunctionReward("align_lab.rewards.function:word_count")}
    with pytest.raises(ConfigError, match=r"^reward.components: algo=gdpo with one source \(brevity\)"):
        check_sources(spec(Combined({"brevity": brevity}), "combined"))
    check_sources(
        spec(Combined({"gold": {"weight": 1.0, "source": GoldReward()}, "brevity": brevity}), "combined")
    )
    check_sources(SimpleNamespace(algo=GRPO(), reward=GoldReward(), names={}))  # GRPO: any reward
