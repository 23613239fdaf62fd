"""GRPO (Shao et al. 2024, DeepSeekMath; spec section 9.1) and, as a preset, Dr. GRPO (Liu et al. 2025)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import (
    OnlineAlgorithm,
    Rollout,
    RolloutCorrection,
    check_clip,
    check_online,
    check_reward_clip,
    clip_bounds,
)
from align_lab.algorithms.credit import episode_return
from align_lab.rl import (
    STD_SCOPES,
    aggregate_loss,
    broadcast_to_tokens,
    clip_reward,
    clipped_surrogate,
    discounted_returns,
    group_normalize,
    importance_ratio,
    kl_penalty,
    masked_mean,
    shape_token_rewards,
)
from align_lab.value_checks import check


@dataclass
class GRPO(RolloutCorrection, OnlineAlgorithm):
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
    kl_clamp: float | None = None  # every KL estimate bounded to [-kl_clamp, kl_clamp]; None = unbounded
    use_kl_loss: bool = True
    scale_by_std: bool = True
    std_unbiased: bool = True
    eps: float = 1e-4
    std_scope: str = "group"  # group: each prompt's std (paper); batch: the step's (TRL scale_rewards=batch)
    reward_clip: float | None = None  # normalised score clamped to [-reward_clip, reward_clip] (OpenRLHF 10)
    reward_clip_low: float | None = None  # lower bound -reward_clip_low; None = -reward_clip (symmetric)
    use_bias_correction_kl: bool = False  # k3 times the ratio pi / pi_old (TRL 1.16 default true)
    clip: float = 0.2
    clip_high: float | None = None  # upper ratio bound 1 + clip_high (DAPO clip-higher); None = clip
    dual_clip: float | None = None  # c > 1: for A < 0 the loss is at most -c A (dual-clip PPO); None = off
    log_ratio_clamp: float | None = 20.0  # log(pi / pi_old) clamped to +-this before exp; None = TRL
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
        normalized = clip_reward(normalized, self.reward_clip, self.reward_clip_low)  # (B,)
        if self.use_kl_loss:
            return broadcast_to_tokens(normalized, rollout.mask), None
        kl = kl_penalty(rollout.logprobs, rollout.ref_logprobs, self.kl_estimator, clamp=self.kl_clamp)
        rewards = shape_token_rewards(normalized, kl, rollout.mask, self.kl_coef)  # (B, T)
        return discounted_returns(rewards, rollout.mask, 1.0), None

    def policy_term(self, batch: Rollout, logprobs: Tensor, old: Tensor) -> tuple[Tensor, Tensor]:
        """(per-token policy loss (B, T), clipped (B, T) bool) against the log-probs `old`: PPO-clip. The
        2025 variants (GSPO, CISPO, SAPO, GMPO, Clip-Cov, KL-Cov) override only this."""
        return clipped_surrogate(logprobs, old, batch.advantages, *clip_bounds(self))

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        old = self.anchor(batch)  # (B, T)
        per_token, clipped = self.policy_term(batch, logprobs, old)
        corrected = self.correct(batch, per_token, logprobs)
        per_token = corrected.per_token  # (B, T)
        stats = {"train/clip_frac": masked_mean(clipped.float(), batch.mask).item(), **corrected.stats}
        if self.use_kl_loss and self.kl_coef > 0:
            kl = kl_penalty(
                logprobs, batch.ref_logprobs, self.kl_estimator, clamp=self.kl_clamp
            )  # on pi_theta
            if self.use_bias_correction_kl:  # TRL: times the (differentiable, unclipped) token ratio
                kl = kl * importance_ratio(logprobs, old, self.log_ratio_clamp)
            per_token = per_token + self.kl_coef * kl
            stats["train/kl_loss"] = masked_mean(kl.detach(), batch.mask).item()
        loss = aggregate_loss(per_token, corrected.mask, self.loss_aggregation, self.max_len, corrected.rows)
        return loss, stats
