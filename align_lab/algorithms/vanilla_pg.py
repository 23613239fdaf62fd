"""Vanilla policy gradient (Ahmadian et al. 2024, Back to Basics section 3; spec section 4)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import (
    CriticAlgorithm,
    Rollout,
    RolloutCorrection,
    check_critic,
    check_online,
)
from align_lab.checks import check
from align_lab.rl import (
    aggregate_loss,
    gae,
    kl_penalty,
    masked_mean,
    shape_token_rewards,
)


@dataclass
class VanillaPG(RolloutCorrection, CriticAlgorithm):
    """Token-level REINFORCE: return-to-go of KL-shaped rewards minus a learned baseline b_phi(s_t).

    PPO with lam = 1 and neither ratio nor clip: loss -sum_t m_t stopgrad(G_t - b(s_t)) l_t, plus the
    baseline's regression 1/2 (b(s_t) - G_t)^2 (a token mean: every state weighs the same).
    """

    lr: float = 1e-3
    critic_lr: float = 3e-3
    epochs: int = 1
    group_size: int = 1
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    kl_clamp: float | None = None  # every KL estimate bounded to [-kl_clamp, kl_clamp]; None = unbounded
    gamma: float = 1.0
    loss_aggregation: str = "seq_mean_token_sum"
    critic_init: str = "sft"

    def __post_init__(self) -> None:
        check_online(self, ratio=False)
        check_critic(self)
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")

    def advantages(self, rollout: Rollout) -> tuple[Tensor, Tensor]:
        kl = kl_penalty(rollout.logprobs, rollout.ref_logprobs, self.kl_estimator, clamp=self.kl_clamp)
        rewards = shape_token_rewards(rollout.scores, kl, rollout.mask, self.kl_coef)  # (B, T)
        # GAE with lam = 1 telescopes to the Monte-Carlo return minus the baseline: (G - b, G)
        return gae(rewards, rollout.values, rollout.mask, self.gamma, 1.0)

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        corrected = self.correct(batch, -batch.advantages * logprobs, logprobs)
        policy_loss = aggregate_loss(
            corrected.per_token, corrected.mask, self.loss_aggregation, rows=corrected.rows
        )
        value_loss = masked_mean((values - batch.returns).square() / 2, batch.mask)
        stats = {"train/clip_frac": 0.0, "train/value_loss": value_loss.item(), **corrected.stats}
        return policy_loss + value_loss, stats
