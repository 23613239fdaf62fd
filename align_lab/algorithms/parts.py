"""The typed parts of an online algorithm's loss, each a frozen dataclass that checks its own keys (named as
the user types them), and the policy-gradient family's loss written once as a function of them (ClipLoss:
GRPO and its presets DAPO / Dr. GRPO, the policy terms of GSPO, CISPO, SAPO, GMPO, Clip-Cov, KL-Cov,
REINFORCE++, PPO's policy part, RLOO; with the Reinforce term ReMax, REINFORCE-MA, vanilla PG). `batch` is
a minibatch's algorithms.base.Rollout (not imported: base imports this module)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from align_lab.algorithms.correction import RolloutCorrection
from align_lab.rl import (
    AGGREGATIONS,
    KL_ESTIMATORS,
    aggregate_loss,
    clip_reward,
    clipped_surrogate,
    importance_ratio,
    kl_penalty,
    masked_mean,
)
from align_lab.value_checks import check


@dataclass(frozen=True)
class RatioClip:
    """PPO's clip of the policy ratio to [1 - clip, 1 + clip_high] (clip_high None: clip), dual-clip c > 1
    for A < 0 (None: off), and the log-ratio clamped to +-log_ratio_clamp before exp (None: TRL)."""

    clip: float = 0.2
    clip_high: float | None = None
    dual_clip: float | None = None
    log_ratio_clamp: float | None = 20.0

    def __post_init__(self) -> None:
        check(0 < self.clip < 1, "clip", self.clip, "in (0, 1)")
        check(self.clip_high is None or self.clip_high > 0, "clip_high", self.clip_high, "> 0 or null")
        check(self.dual_clip is None or self.dual_clip > 1, "dual_clip", self.dual_clip, "> 1 or null")
        check(
            self.log_ratio_clamp is None or self.log_ratio_clamp > 0,
            "log_ratio_clamp",
            self.log_ratio_clamp,
            "> 0 or null (null: unclamped, as TRL)",
        )

    def bounds(self) -> tuple[float, float | None, float | None, float | None]:
        """(clip_low, clip_high, dual_clip, log_ratio_clamp) of rl.clipped_surrogate."""
        return self.clip, self.clip_high, self.dual_clip, self.log_ratio_clamp

    def require_null(self, keys: tuple[str, ...], why: str) -> None:
        """A policy term that has no use for `keys` (clip_high, dual_clip) refuses a value for them."""
        for key in keys:
            check(getattr(self, key) is None, key, getattr(self, key), f"null {why}")


@dataclass(frozen=True)
class KLTerm:
    """The KL estimate of log pi - log pi_ref per token (kl_estimator: k1, k3, ...; the defaults differ by
    paper), bounded to [-kl_clamp, kl_clamp] (None: unbounded). Its weight kl_coef stays the algorithm's:
    an adaptive controller (PPO) moves it during training."""

    kl_estimator: str = "k1"
    kl_clamp: float | None = None

    def __post_init__(self) -> None:
        estimator = self.kl_estimator
        check(estimator in KL_ESTIMATORS, "kl_estimator", estimator, f"one of {KL_ESTIMATORS}")
        check(self.kl_clamp is None or self.kl_clamp > 0, "kl_clamp", self.kl_clamp, "> 0 or null")

    def __call__(self, logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
        """(B, T) the estimate, clamped."""
        return kl_penalty(logprobs, ref_logprobs, self.kl_estimator, clamp=self.kl_clamp)


@dataclass(frozen=True)
class RewardClip:
    """Scores clamped to [-reward_clip_low, reward_clip] (reward_clip None: off; reward_clip_low None:
    -reward_clip, symmetric). Where in the advantage it applies is the algorithm's (its docstring).

    The lower bound may be positive (OpenRLHF's --reward.clip_range 1 10 is reward_clip_low=-1
    reward_clip=10); the range must hold more than one value."""

    reward_clip: float | None = None
    reward_clip_low: float | None = None

    def __post_init__(self) -> None:
        high, low = self.reward_clip, self.reward_clip_low
        if low is None:
            allowed = "> 0 or null (the range is [-reward_clip, reward_clip])"
            check(high is None or high > 0, "reward_clip", high, allowed)
        elif high is not None:
            allowed = f"> -reward_clip = {-high} (the range is [-reward_clip_low, reward_clip])"
            check(-low < high, "reward_clip_low", low, allowed)

    def __call__(self, scores: Tensor) -> Tensor:
        return clip_reward(scores, self.reward_clip, self.reward_clip_low)


@dataclass(frozen=True)
class Aggregation:
    """How a (B, T) per-token loss becomes a scalar (rl.aggregate_loss); max_len: the constant
    aggregation's L_max (Dr. GRPO: the generation limit; None: the step's padded length)."""

    loss_aggregation: str = "token_mean"
    max_len: int | None = None

    def __post_init__(self) -> None:
        mode = self.loss_aggregation
        check(mode in AGGREGATIONS, "loss_aggregation", mode, f"one of {AGGREGATIONS}")
        check(self.max_len is None or self.max_len >= 1, "max_len", self.max_len, ">= 1 or null")

    def __call__(self, per_token: Tensor, mask: Tensor, rows: Tensor | None = None) -> Tensor:
        return aggregate_loss(per_token, mask, self.loss_aggregation, self.max_len, rows)


class PolicyTerm(Protocol):
    """The one method a policy term has: (per-token policy loss (B, T), clipped (B, T) bool) of a
    minibatch against the log-probs `old`. `clipping` is the ratio clip it reads (log_ratio_clamp at
    least; ClipLoss's bias-corrected KL reads it too)."""

    clipping: RatioClip

    def __call__(
        self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection
    ) -> tuple[Tensor, Tensor]: ...


@dataclass(frozen=True)
class PPOClip:
    """PPO's clipped surrogate per token (rl.clipped_surrogate): GRPO, DAPO, Dr. GRPO, REINFORCE++."""

    clipping: RatioClip

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        return clipped_surrogate(logprobs, old, batch.advantages, *self.clipping.bounds())


@dataclass(frozen=True)
class Reinforce:
    """The plain policy-gradient term -A log pi per token, no ratio, nothing clipped (Williams 1992): RLOO's
    ratio=none, ReMax, REINFORCE-MA, vanilla PG."""

    clipping: RatioClip = RatioClip()  # unread here: no ratio (a PolicyTerm has one)

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        return -batch.advantages * logprobs, torch.zeros_like(batch.mask, dtype=torch.bool)


@dataclass(frozen=True)
class ClipLoss:
    """The policy-gradient family's loss, written once. Steps: 1. the policy term against the anchor (pi_old,
    or the engine's log-probs with ppo_anchor=rollout); 2. the rollout correction's weights; 3. with
    kl_in_loss + kl_coef * KL(pi_theta, pi_ref) per token (bias_corrected_kl: times the unclipped ratio
    pi / pi_old, TRL's k3); 4. the aggregation over the tokens the correction kept.
    Stats: clip_frac, kl_loss, the correction's."""

    term: PolicyTerm
    kl: KLTerm
    correction: RolloutCorrection
    aggregation: Aggregation
    kl_in_loss: bool  # the KL term on pi_theta in the loss (else in the reward, or none)
    bias_corrected_kl: bool = False

    def __call__(self, batch, logprobs: Tensor, kl_coef: float) -> tuple[Tensor, dict]:
        old = self.correction.anchor(batch)  # (B, T)
        per_token, clipped = self.term(batch, logprobs, old, self.correction)  # (B, T) each
        weight = None
        if self.kl_in_loss and self.bias_corrected_kl:  # TRL: times the (differentiable, unclipped) ratio
            weight = importance_ratio(logprobs, old, self.term.clipping.log_ratio_clamp)  # (B, T)
        corrected = self.correction.correct(batch, per_token, logprobs)
        per_token = corrected.per_token  # (B, T)
        stats = {"train/clip_frac": masked_mean(clipped.float(), batch.mask).item(), **corrected.stats}
        if self.kl_in_loss:
            kl = self.kl(logprobs, batch.ref_logprobs)  # (B, T) differentiable
            if weight is not None:
                kl = kl * weight
            per_token = per_token + kl_coef * kl
            stats["train/kl_loss"] = masked_mean(kl.detach(), batch.mask).item()
        return self.aggregation(per_token, corrected.mask, corrected.rows), stats
