"""The typed parts of an online algorithm's loss, each a frozen dataclass that checks its own keys (named as
the user types them): the ratio clip, the KL term, the reward clip, the aggregation, the rollout correction
(its checks: correction_checks.py), the policy terms PPOClip and Reinforce; and the policy-gradient family's
loss written once as a function of them (ClipLoss: GRPO and its presets DAPO / Dr. GRPO, the policy terms
of GSPO, CISPO, SAPO, GMPO, Clip-Cov, KL-Cov, REINFORCE++, PPO's policy part, RLOO; with the Reinforce term
ReMax, REINFORCE-MA, vanilla PG). So an algorithm's loss reads its own file and this one. `batch` is a
minibatch's algorithms.base.Rollout (not imported: base imports this module)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from align_lab.algorithms.correction_checks import check_correction
from align_lab.rl import (
    AGGREGATIONS,
    KL_ESTIMATORS,
    aggregate_loss,
    clipped_surrogate,
    importance_ratio,
    kl_penalty,
    masked_mean,
)
from align_lab.rl.correction import correction_weights, normalize_weights, rule_rejections
from align_lab.value_checks import TrainsNothing, check


@dataclass(frozen=True)
class RatioClip:
    """PPO's clip of the policy ratio to [1 - low, 1 + high] (high None: low), dual-clip c = dual > 1 for
    A < 0 (None: off), and the log-ratio clamped to +-log_ratio_clamp before exp (None: TRL). Its fields
    are the config node `algo.clip` (algo.clip.low, ...): an algorithm's field `clip` is this part, built
    from that node (RatioClip(**algo.clip)); the old flat keys (algo.clip=0.3, clip_high, dual_clip,
    log_ratio_clamp) are aliases for one release (align_lab/aliases.py)."""

    low: float = 0.2
    high: float | None = None
    dual: float | None = None
    log_ratio_clamp: float | None = 20.0

    def __post_init__(self) -> None:
        check(0 < self.low < 1, "clip.low", self.low, "in (0, 1)")
        check(self.high is None or self.high > 0, "clip.high", self.high, "> 0 or null")
        check(self.dual is None or self.dual > 1, "clip.dual", self.dual, "> 1 or null")
        check(
            self.log_ratio_clamp is None or self.log_ratio_clamp > 0,
            "clip.log_ratio_clamp",
            self.log_ratio_clamp,
            "> 0 or null (null: unclamped, as TRL)",
        )

    def bounds(self) -> tuple[float, float | None, float | None, float | None]:
        """(low, high, dual, log_ratio_clamp) of rl.clipped_surrogate."""
        return self.low, self.high, self.dual, self.log_ratio_clamp

    def require_null(self, keys: tuple[str, ...], why: str) -> None:
        """A policy term that has no use for `keys` (high, dual) refuses a value for them."""
        for key in keys:
            check(getattr(self, key) is None, f"clip.{key}", getattr(self, key), f"null {why}")


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


@dataclass
class Corrected:
    """A minibatch's per-token policy loss after the rollout correction, and what aggregates it."""

    per_token: Tensor  # (B, T) the loss times the importance weights
    mask: Tensor  # (B, T) the tokens the aggregation counts
    rows: Tensor | None  # (B,) the sequences the sequence means count; None: every one
    stats: dict


@dataclass(frozen=True)
class RolloutCorrection:
    """The off-policy correction of every online algorithm (docs/off_policy.md): its fields are the config
    node `algo.correction` (algo.correction.mode, ...), built as RolloutCorrection(**algo.correction) into
    OnlineBase's field `correction`; the old flat keys (rollout_correction, correction_high, reject, ...)
    are aliases for one release (align_lab/aliases.py). The defaults (none, no rules, ppo_anchor=old)
    leave every loss as it was.

    The weights and masks are rl.correction_weights of log pi_target - log pi_rollout, pi_rollout the
    engine's distribution (rollout.rollout_logprobs) and pi_target pi_old (ratio=old: decoupled, every
    peer's default) or the current policy, detached (current: verl's bypass mode);
    the rejection rules `reject` (rl.rule_rejections) add the tokens they reject.
    The weight multiplies the policy term only (not a KL-in-loss term); a rejected token gets weight 0
    and still counts in the aggregation (masked_in_denominator=true) or leaves it (false: verl).
    """

    mode: str = "none"
    level: str = "token"
    sequence_ratio: str = "product"
    low: float | None = None
    high: float | None = 2.0
    masked_in_denominator: bool = True
    mask_is_weight: bool = False
    ratio: str = "old"
    ppo_anchor: str = "old"
    normalize_weights: bool = False
    reject: list[str] = field(default_factory=list)
    reject_low: list[float | None] = field(default_factory=list)
    reject_high: list[float | None] = field(default_factory=list)
    reject_ratio: str | None = None
    reject_negative_only: bool = False
    max_rejected_steps: int = 3

    def __post_init__(self) -> None:
        check_correction(self)

    def anchor(self, batch) -> Tensor:
        """(B, T) the log-probs a ratio divides by: pi_old's, or the engine's with ppo_anchor=rollout."""
        return batch.logprobs if self.ppo_anchor == "old" else _behaviour(batch)

    def weights(self, batch, logprobs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(weights (B, T), rejected (B, T) bool) of a minibatch: the mode's weights, normalised to mean 1
        (normalize_weights), then 0 on the tokens the mode or a rule rejects."""
        behaviour = _behaviour(batch)
        current = logprobs.detach()  # (B, T)
        target = batch.logprobs if self.ratio == "old" else current  # (B, T)
        weights, rejected = correction_weights(
            target - behaviour,
            mask,
            self.mode,
            self.level,
            self.sequence_ratio,
            self.low,
            self.high,
            self.mask_is_weight,
        )  # (B, T) each
        if self.normalize_weights:
            weights = normalize_weights(weights, mask, self.level)
        if not self.reject:
            return weights, rejected
        ratio = self.reject_ratio or self.ratio
        rule_target = batch.logprobs if ratio == "old" else current  # (B, T)
        n = len(self.reject)
        lows, highs = list(self.reject_low) or [None] * n, list(self.reject_high) or [None] * n
        by_rules = rule_rejections(rule_target, behaviour, mask, list(self.reject), lows, highs)  # (B, T)
        if self.reject_negative_only:
            by_rules = by_rules & (batch.advantages < 0)
        rejected = rejected | by_rules
        return torch.where(rejected, 0.0, weights), rejected

    def correct(self, batch, per_token: Tensor, logprobs: Tensor, mask: Tensor | None = None):
        """The policy term `per_token` (B, T) of a minibatch, corrected: a Corrected. `logprobs` (B, T)
        are the current policy's; `mask` (B, T) the tokens the loss covers (default the response)."""
        mask = batch.mask if mask is None else mask
        if self.mode == "none" and not self.reject:
            return Corrected(per_token, mask, None, {})
        weights, rejected = self.weights(batch, logprobs, mask)  # (B, T) each
        stats = {
            "train/is_weight_mean": masked_mean(weights, mask.bool() & ~rejected).item(),
            "train/is_weight_max": weights.max().item() if weights.numel() else 0.0,
            "train/is_masked_frac": masked_mean(rejected.to(weights.dtype), mask).item(),
        }
        if self.masked_in_denominator:
            return Corrected(per_token * weights, mask, None, stats)
        kept = mask * ~rejected  # (B, T) mask's dtype
        rows = kept.bool().any(-1) | ~mask.bool().any(-1)  # (B,) all but the sequences it emptied
        return Corrected(per_token * weights, kept, rows, stats)

    def rejected_streak(self, stats: dict, streak: int, step: int) -> int:
        """The steps in a row, step `step` (1-based) the last, whose every minibatch rejected all its
        response tokens (train/is_masked_frac 1); raises TrainsNothing at max_rejected_steps (0: never)."""
        fractions = stats.get("train/is_masked_frac") or [0.0]
        streak = streak + 1 if min(fractions) >= 1.0 else 0
        if self.max_rejected_steps and streak >= self.max_rejected_steps:
            raise TrainsNothing(
                f"steps {step - streak + 1}-{step} rejected every response token (train/is_masked_frac 1): "
                "the correction trains nothing; widen algo.correction.low/high or "
                "algo.correction.reject_low/high, or set algo.correction.max_rejected_steps=0 "
                f"(now {self.max_rejected_steps}) to go on"
            )
        return streak


def _behaviour(batch) -> Tensor:
    if batch.rollout_logprobs is None:
        raise ValueError("a rollout correction needs rollout.rollout_logprobs (the engine's log-probs)")
    return batch.rollout_logprobs


class PolicyTerm(Protocol):
    """The one method a policy term has: (per-token policy loss (B, T), clipped (B, T) bool) of a
    minibatch against the log-probs `old`. `clip` is the ratio clip it reads (log_ratio_clamp at
    least; ClipLoss's bias-corrected KL reads it too)."""

    clip: RatioClip

    def __call__(
        self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection
    ) -> tuple[Tensor, Tensor]: ...


@dataclass(frozen=True)
class PPOClip:
    """PPO's clipped surrogate per token (rl.clipped_surrogate): GRPO, DAPO, Dr. GRPO, REINFORCE++."""

    clip: RatioClip

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        return clipped_surrogate(logprobs, old, batch.advantages, *self.clip.bounds())


@dataclass(frozen=True)
class Reinforce:
    """The plain policy-gradient term -A log pi per token, no ratio, nothing clipped (Williams 1992): RLOO's
    ratio=none, ReMax, REINFORCE-MA, vanilla PG."""

    clip: RatioClip = RatioClip()  # unread here: no ratio (a PolicyTerm has one)

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
            weight = importance_ratio(logprobs, old, self.term.clip.log_ratio_clamp)  # (B, T)
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
