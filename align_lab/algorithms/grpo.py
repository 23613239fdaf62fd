"""GRPO (Shao et al. 2024, DeepSeekMath; spec section 9.1) and, as a preset, Dr. GRPO (Liu et al. 2025)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import Rollout, check, check_online
from align_lab.rl import (
    aggregate_loss,
    broadcast_to_tokens,
    clipped_surrogate,
    discounted_returns,
    group_normalize,
    kl_penalty,
    masked_mean,
    shape_token_rewards,
)


@dataclass
class GRPO:
    """Group-normalised outcome advantage (r - mean) / (std + eps), token PPO-clip, KL in the loss.

    The KL is kl_coef * k3(pi_theta, pi_ref) per token, added to the clipped surrogate, and the
    loss is the mean over sequences of per-sequence token means. Dr. GRPO (conf/algo/dr_grpo.yaml):
    scale_by_std=false, kl_coef=0, loss_aggregation=constant. use_kl_loss=false instead shapes the
    normalised score with per-token KL in the reward and takes the return-to-go (OpenRLHF group_norm).
    """

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 8
    kl_coef: float = 0.04
    kl_estimator: str = "k3"
    use_kl_loss: bool = True
    scale_by_std: bool = True
    std_unbiased: bool = True
    eps: float = 1e-4
    clip: float = 0.2
    loss_aggregation: str = "seq_mean_token_mean"
    max_len: int | None = None  # L_max of loss_aggregation=constant; None = the rollout's padded T

    def __post_init__(self) -> None:
        check_online(self, ">= 2 (a group of one has no baseline)", min_group_size=2)
        check(self.eps >= 0, "eps", self.eps, ">= 0")
        check(0 < self.clip < 1, "clip", self.clip, "in (0, 1)")
        check(self.max_len is None or self.max_len >= 1, "max_len", self.max_len, ">= 1 or null")

    @property
    def uses_critic(self) -> bool:
        return False

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        normalized = group_normalize(
            rollout.scores, self.group_size, self.scale_by_std, self.std_unbiased, self.eps
        )  # (B,)
        if self.use_kl_loss:
            return broadcast_to_tokens(normalized, rollout.mask), None
        kl = kl_penalty(rollout.logprobs, rollout.ref_logprobs, self.kl_estimator)  # (B, T)
        rewards = shape_token_rewards(normalized, kl, rollout.mask, self.kl_coef)  # (B, T)
        return discounted_returns(rewards, rollout.mask, 1.0), None

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        per_token, clipped = clipped_surrogate(logprobs, batch.logprobs, batch.advantages, self.clip)
        stats = {"train/clip_frac": masked_mean(clipped.float(), batch.mask).item()}
        if self.use_kl_loss and self.kl_coef > 0:
            kl = kl_penalty(logprobs, batch.ref_logprobs, self.kl_estimator)  # (B, T) on pi_theta
            per_token = per_token + self.kl_coef * kl
            stats["train/kl_loss"] = masked_mean(kl.detach(), batch.mask).item()
        return aggregate_loss(per_token, batch.mask, self.loss_aggregation, self.max_len), stats
