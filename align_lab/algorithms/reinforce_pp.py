"""REINFORCE++ (Hu et al. 2025, arXiv 2501.03262, Eqs. 4-5; spec section 10)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import Rollout, check
from align_lab.rl import (
    AGGREGATIONS,
    KL_ESTIMATORS,
    aggregate_loss,
    clipped_surrogate,
    discounted_returns,
    kl_penalty,
    masked_mean,
    masked_whiten,
    shape_token_rewards,
)


@dataclass
class ReinforcePP:
    """Critic-free PPO-clip: token-level k1 KL in the reward, return-to-go, global batch whitening."""

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 1
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    gamma: float = 1.0
    clip: float = 0.2
    reward_clip: float = 10.0
    whiten_unbiased: bool = False
    loss_aggregation: str = "token_mean"

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.epochs >= 1, "epochs", self.epochs, ">= 1")
        check(self.group_size >= 1, "group_size", self.group_size, ">= 1")
        check(self.kl_coef >= 0, "kl_coef", self.kl_coef, ">= 0")
        check(
            self.kl_estimator in KL_ESTIMATORS,
            "kl_estimator",
            self.kl_estimator,
            f"one of {KL_ESTIMATORS}",
        )
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        check(0 < self.clip < 1, "clip", self.clip, "in (0, 1)")
        check(self.reward_clip > 0, "reward_clip", self.reward_clip, "> 0")
        check(
            self.loss_aggregation in AGGREGATIONS,
            "loss_aggregation",
            self.loss_aggregation,
            f"one of {AGGREGATIONS}",
        )

    @property
    def uses_critic(self) -> bool:
        return False

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        kl = kl_penalty(rollout.logprobs, rollout.ref_logprobs, self.kl_estimator)  # (B, T)
        scores = rollout.scores.clamp(-self.reward_clip, self.reward_clip)  # (B,)
        rewards = shape_token_rewards(scores, kl, rollout.mask, self.kl_coef)  # (B, T)
        returns = discounted_returns(rewards, rollout.mask, self.gamma)  # (B, T)
        return masked_whiten(returns, rollout.mask, unbiased=self.whiten_unbiased), None

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        per_token, clipped = clipped_surrogate(logprobs, batch.logprobs, batch.advantages, self.clip)
        loss = aggregate_loss(per_token, batch.mask, self.loss_aggregation)
        return loss, {"train/clip_frac": masked_mean(clipped.float(), batch.mask).item()}
