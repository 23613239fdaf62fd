"""The rollout correction, a part every online algorithm builds from its rollout-correction keys
(RolloutCorrection, a frozen dataclass: online.OnlineBase declares the keys), its checks, and the stop
of a run whose correction trains nothing (docs/off_policy.md). `batch` is always a
minibatch's algorithms.base.Rollout (not imported: base imports this module)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from align_lab.rl.correction import (
    CORRECTION_LEVELS,
    CORRECTIONS,
    DIVERGENCES,
    REJECT_SCOPES,
    SEQUENCE_RATIOS,
    correction_weights,
    normalize_weights,
    parse_rule,
    rule_rejections,
)
from align_lab.rl.stats import masked_mean
from align_lab.value_checks import TrainsNothing, check

CORRECTION_RATIOS = ("old", "current")
PPO_ANCHORS = ("old", "rollout")
MASKS = ("mis", "token_mask", "seq_mask")  # the modes that reject tokens by the bounds


@dataclass
class Corrected:
    """A minibatch's per-token policy loss after the rollout correction, and what aggregates it."""

    per_token: Tensor  # (B, T) the loss times the importance weights
    mask: Tensor  # (B, T) the tokens the aggregation counts
    rows: Tensor | None  # (B,) the sequences the sequence means count; None: every one
    stats: dict


@dataclass(frozen=True)
class RolloutCorrection:
    """The off-policy correction of every online algorithm (a part: OnlineBase builds it from the keys of
    the same names; docs/off_policy.md). The defaults (none, no rules, ppo_anchor=old) leave every loss
    as it was.

    The weights and masks are rl.correction_weights of log pi_target - log pi_rollout, pi_rollout the
    engine's distribution (rollout.rollout_logprobs) and pi_target pi_old (correction_ratio=old:
    decoupled, every peer's default) or the current policy, detached (current: verl's bypass mode);
    the rejection rules `reject` (rl.rule_rejections) add the tokens they reject.
    The weight multiplies the policy term only (not a KL-in-loss term); a rejected token gets weight 0
    and still counts in the aggregation (masked_in_denominator=true) or leaves it (false: verl).
    """

    rollout_correction: str = "none"
    correction_level: str = "token"
    sequence_ratio: str = "product"
    correction_low: float | None = None
    correction_high: float | None = 2.0
    masked_in_denominator: bool = True
    mask_is_weight: bool = False
    correction_ratio: str = "old"
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
        target = batch.logprobs if self.correction_ratio == "old" else current  # (B, T)
        weights, rejected = correction_weights(
            target - behaviour,
            mask,
            self.rollout_correction,
            self.correction_level,
            self.sequence_ratio,
            self.correction_low,
            self.correction_high,
            self.mask_is_weight,
        )  # (B, T) each
        if self.normalize_weights:
            weights = normalize_weights(weights, mask, self.correction_level)
        if not self.reject:
            return weights, rejected
        ratio = self.reject_ratio or self.correction_ratio
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
        if self.rollout_correction == "none" and not self.reject:
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
                f"the correction trains nothing; widen algo.correction_low/high or algo.reject_low/high, "
                f"or set algo.max_rejected_steps=0 (now {self.max_rejected_steps}) to go on"
            )
        return streak


def _behaviour(batch) -> Tensor:
    if batch.rollout_logprobs is None:
        raise ValueError("a rollout correction needs rollout.rollout_logprobs (the engine's log-probs)")
    return batch.rollout_logprobs


def check_correction(algo: RolloutCorrection) -> None:
    """The checks of the correction keys (an algorithm without a policy ratio also needs ppo_anchor=old:
    base.check_online)."""
    mode, level = algo.rollout_correction, algo.correction_level
    check(mode in CORRECTIONS, "rollout_correction", mode, f"one of {CORRECTIONS}")
    check(level in CORRECTION_LEVELS, "correction_level", level, f"one of {CORRECTION_LEVELS}")
    check(
        level == "token" or mode in ("none", "tis", "mis"),
        "correction_level",
        level,
        f"token with rollout_correction={mode} (token_mask masks tokens, seq_mask sequences)",
    )
    check(
        algo.sequence_ratio in SEQUENCE_RATIOS,
        "sequence_ratio",
        algo.sequence_ratio,
        f"one of {SEQUENCE_RATIOS}",
    )
    _check_bounds(algo)
    check(
        not algo.mask_is_weight or mode in ("token_mask", "seq_mask"),
        "mask_is_weight",
        algo.mask_is_weight,
        f"false with rollout_correction={mode} (it weighs the tokens token_mask / seq_mask keep)",
    )
    check(
        algo.correction_ratio in CORRECTION_RATIOS,
        "correction_ratio",
        algo.correction_ratio,
        f"one of {CORRECTION_RATIOS}",
    )
    check(algo.ppo_anchor in PPO_ANCHORS, "ppo_anchor", algo.ppo_anchor, f"one of {PPO_ANCHORS}")
    check(
        not algo.normalize_weights or mode in ("tis", "mis"),
        "normalize_weights",
        algo.normalize_weights,
        f"false with rollout_correction={mode} (it rescales the importance weights of tis / mis)",
    )
    _check_rules(algo)
    steps = algo.max_rejected_steps
    check(steps >= 0, "max_rejected_steps", steps, ">= 0 (0: never stop)")


def _check_bounds(algo: RolloutCorrection) -> None:
    """correction_low / high: ordered, and holding a ratio of 1 (an on-policy token's): a mask's strictly,
    since an on-policy ratio is 1 only up to float noise (a bound of exactly 1 rejects about half the
    on-policy tokens); tis's as well, since a band off 1 weighs every on-policy token by the bound (a
    rescaled learning rate, nothing trained as the bound nears 0)."""
    mode, low, high = algo.rollout_correction, algo.correction_low, algo.correction_high
    check(low is None or low >= 0, "correction_low", low, ">= 0 or null")
    check(high is None or high > 0, "correction_high", high, "> 0 or null")
    check(low is None or high is None or low <= high, "correction_low", low, f"<= correction_high={high}")
    if mode in MASKS:
        holds = (
            f"with rollout_correction={mode} (the bounds must hold a ratio of 1 with room for float "
            "noise, or on-policy tokens are rejected)"
        )
        check(low is None or low < 1, "correction_low", low, f"< 1 or null {holds}")
        check(high is None or high > 1, "correction_high", high, f"> 1 or null {holds}")
    elif mode == "tis":
        holds = "with rollout_correction=tis (a band off 1 weighs every on-policy token by the bound)"
        check(low is None or low <= 1, "correction_low", low, f"<= 1 or null {holds}")
        check(high is None or high >= 1, "correction_high", high, f">= 1 or null {holds}")


def _check_rules(algo: RolloutCorrection) -> None:
    """reject, reject_low / high (one bound per rule, or none: []), reject_ratio, reject_negative_only."""
    rules, n = list(algo.reject), len(algo.reject)
    for rule in rules:
        allowed = f"<scope>_<statistic>, scope one of {REJECT_SCOPES}, statistic one of {DIVERGENCES}"
        check(parse_rule(rule) is not None, "reject", rules, allowed)
    for name in ("reject_low", "reject_high"):
        bounds = list(getattr(algo, name))
        check(len(bounds) in (0, n), name, bounds, f"[] or one bound (or null) per rule of reject={rules}")
    holds = (
        "(every statistic is 0 where the two policies agree, up to float noise: a rule must keep that token, "
        "and a bound of exactly 0 rejects about half of them)"
    )
    for low in algo.reject_low:
        check(low is None or low < 0, "reject_low", list(algo.reject_low), f"< 0 or null each {holds}")
    for high in algo.reject_high:
        check(high is None or high > 0, "reject_high", list(algo.reject_high), f"> 0 or null each {holds}")
    allowed_ratios = (None, *CORRECTION_RATIOS)
    check(algo.reject_ratio in allowed_ratios, "reject_ratio", algo.reject_ratio, f"one of {allowed_ratios}")
    check(
        not algo.reject_negative_only or n > 0,
        "reject_negative_only",
        algo.reject_negative_only,
        "false without a rule in reject (it limits the rules to tokens of negative advantage)",
    )
