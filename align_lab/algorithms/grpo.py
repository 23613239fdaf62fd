"""GRPO (Shao et al. 2024, DeepSeekMath; spec section 9.1) and, as a preset, Dr. GRPO (Liu et al. 2025)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import OnlineAlgorithm, Rollout, RolloutCorrection, check_online
from align_lab.algorithms.credit import episode_return
from align_lab.algorithms.shared import (
    KLClamp,
    RatioClip,
    RewardClip,
    check_clip,
    check_reward_clip,
    clip_bounds,
    policy_loss,
)
from align_lab.rl import (
    STD_SCOPES,
    broadcast_to_tokens,
    clipped_surrogate,
    discounted_returns,
    group_normalize,
    importance_ratio,
    shape_token_rewards,
)
from align_lab.value_checks import check


@dataclass
class GRPO(RolloutCorrection, KLClamp, RatioClip, RewardClip, OnlineAlgorithm):
    """Group-normalised outcome advantage (r - mean) / (std + eps), token PPO-clip, KL in the loss.

    The KL is kl_coef * k3(pi_theta, pi_ref) per token, added to the clipped surrogate, and the
    loss is the mean over sequences of per-sequence token means. Dr. GRPO (conf/algo/dr_grpo.yaml):
    scale_by_std=false, kl_coef=0, loss_aggregation=constant. use_kl_loss=false instead shapes the
    normalised score with per-token KL in the reward and takes the return-to-go (OpenRLHF group_norm).
    reward_clip (OpenRLHF 10) clamps the normalised score.
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
    std_scope: str = "group"  # group: each prompt's std (paper); batch: the step's (TRL scale_rewards=batch)
    use_bias_correction_kl: bool = False  # k3 times the ratio pi / pi_old (TRL 1.16 default true)
    loss_aggregation: str = "seq_mean_token_mean"
    max_len: int | None = None  # L_max of loss_aggregation=constant (Dr. GRPO: generation limit); None: T

    def __post_init__(self) -> None:
        check_online(self, ">= 2 (a group of one has no baseline)", min_group_size=2)
        check(self.eps >= 0, "eps", self.eps, ">= 0")
        check_clip(self)
        check(self.std_scope in STD_SCOPES, "std_scope", self.std_scope, f"one of {STD_SCOPES}")
        check_reward_clip(self)
        check(self.max_len is None or self.max_len >= 1, "max_len", self.max_len, ">= 1 or null")

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        normalized = group_normalize(
            episode_return(rollout),
            self.group_size,
            self.scale_by_std,
            self.std_unbiased,
            self.eps,
            self.std_scope,
        )  # (B,)
        normalized = self.clip_reward(normalized)  # (B,)
        if self.use_kl_loss:
            return broadcast_to_tokens(normalized, rollout.mask), None
        kl = self.kl(rollout.logprobs, rollout.ref_logprobs)  # (B, T)
        rewards = shape_token_rewards(normalized, kl, rollout.mask, self.kl_coef)  # (B, T)
        return discounted_returns(rewards, rollout.mask, 1.0), None

    def policy_term(self, batch: Rollout, logprobs: Tensor, old: Tensor) -> tuple[Tensor, Tensor]:
        """(per-token policy loss (B, T), clipped (B, T) bool) against the log-probs `old`: PPO-clip. The
        2025 variants (GSPO, CISPO, SAPO, GMPO, Clip-Cov, KL-Cov) override only this."""
        return clipped_surrogate(logprobs, old, batch.advantages, *clip_bounds(self))

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        old = self.anchor(batch)  # (B, T)
        per_token, clipped = self.policy_term(batch, logprobs, old)
        kl_in_loss = self.use_kl_loss and self.kl_coef > 0  # on pi_theta
        weight = None
        if kl_in_loss and self.use_bias_correction_kl:  # TRL: times the (differentiable, unclipped) ratio
            weight = importance_ratio(logprobs, old, self.log_ratio_clamp)  # (B, T)
        return policy_loss(self, batch, logprobs, per_token, clipped, kl_in_loss, weight, self.max_len)
