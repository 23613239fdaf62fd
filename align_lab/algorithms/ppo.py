"""RLHF PPO (Ziegler et al. 2019; Ouyang et al. 2022; spec section 2): KL-shaped rewards, GAE, critic."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import Rollout, check
from align_lab.rl import (
    AGGREGATIONS,
    KL_ESTIMATORS,
    adaptive_kl_coef,
    aggregate_loss,
    clipped_surrogate,
    clipped_value_loss,
    gae,
    kl_penalty,
    masked_mean,
    masked_sum,
    masked_whiten,
    shape_token_rewards,
)


@dataclass
class PPO:
    """Token-level k1 KL in the reward, GAE over a learned critic, clipped surrogate and value loss."""

    lr: float = 1e-3
    critic_lr: float = 3e-3
    epochs: int = 2
    group_size: int = 1
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    kl_target: float | None = None  # set -> adaptive KL controller (Ziegler et al.)
    kl_horizon: int = 10000
    gamma: float = 1.0
    lam: float = 0.95
    clip: float = 0.2
    value_clip: float | None = 0.2
    vf_coef: float = 1.0
    reward_clip: float = 10.0
    whiten_unbiased: bool = True
    loss_aggregation: str = "token_mean"
    critic_init: str = "sft"

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.critic_lr > 0, "critic_lr", self.critic_lr, "> 0")
        check(self.epochs >= 1, "epochs", self.epochs, ">= 1")
        check(self.group_size >= 1, "group_size", self.group_size, ">= 1")
        check(self.kl_coef >= 0, "kl_coef", self.kl_coef, ">= 0")
        check(
            self.kl_estimator in KL_ESTIMATORS,
            "kl_estimator",
            self.kl_estimator,
            f"one of {KL_ESTIMATORS}",
        )
        check(self.kl_target is None or self.kl_target > 0, "kl_target", self.kl_target, "> 0 or null")
        check(self.kl_horizon >= 1, "kl_horizon", self.kl_horizon, ">= 1")
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        check(0 <= self.lam <= 1, "lam", self.lam, "in [0, 1]")
        check(0 < self.clip < 1, "clip", self.clip, "in (0, 1)")
        check(
            self.value_clip is None or self.value_clip > 0,
            "value_clip",
            self.value_clip,
            "> 0 or null",
        )
        check(self.vf_coef > 0, "vf_coef", self.vf_coef, "> 0")
        check(self.reward_clip > 0, "reward_clip", self.reward_clip, "> 0")
        check(
            self.loss_aggregation in AGGREGATIONS,
            "loss_aggregation",
            self.loss_aggregation,
            f"one of {AGGREGATIONS}",
        )
        check(
            self.critic_init in ("sft", "reward_model"),
            "critic_init",
            self.critic_init,
            "one of ('sft', 'reward_model')",
        )

    @property
    def uses_critic(self) -> bool:
        return True

    def advantages(self, rollout: Rollout) -> tuple[Tensor, Tensor]:
        kl = kl_penalty(rollout.logprobs, rollout.ref_logprobs, self.kl_estimator)  # (B, T)
        scores = rollout.scores.clamp(-self.reward_clip, self.reward_clip)  # (B,)
        rewards = shape_token_rewards(scores, kl, rollout.mask, self.kl_coef)  # (B, T)
        advantages, returns = gae(rewards, rollout.values, rollout.mask, self.gamma, self.lam)
        if self.kl_target is not None:  # state of the controller, saved with the checkpoint
            observed = masked_sum(kl, rollout.mask, dim=1).mean().item()
            n = len(rollout.scores)
            self.kl_coef = adaptive_kl_coef(self.kl_coef, observed, self.kl_target, n, self.kl_horizon)
        return masked_whiten(advantages, rollout.mask, unbiased=self.whiten_unbiased), returns

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        per_token, clipped = clipped_surrogate(logprobs, batch.logprobs, batch.advantages, self.clip)
        policy_loss = aggregate_loss(per_token, batch.mask, self.loss_aggregation)
        value_loss = aggregate_loss(
            clipped_value_loss(values, batch.values, batch.returns, self.value_clip),
            batch.mask,
            self.loss_aggregation,
        )
        stats = {
            "train/clip_frac": masked_mean(clipped.float(), batch.mask).item(),
            "train/value_loss": value_loss.item(),
            "train/kl_coef": self.kl_coef,
        }
        return policy_loss + self.vf_coef * value_loss, stats
