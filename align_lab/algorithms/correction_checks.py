"""The checks of the rollout-correction keys (parts.RolloutCorrection runs them when it is built), each a
one-line error naming the key, the value and what is allowed (docs/off_policy.md)."""

from __future__ import annotations

from align_lab.rl.correction import (
    CORRECTION_LEVELS,
    CORRECTIONS,
    DIVERGENCES,
    REJECT_SCOPES,
    SEQUENCE_RATIOS,
    parse_rule,
)
from align_lab.value_checks import check

CORRECTION_RATIOS = ("old", "current")
PPO_ANCHORS = ("old", "rollout")
MASKS = ("mis", "token_mask", "seq_mask")  # the modes that reject tokens by the bounds


def check_correction(algo) -> None:
    """The checks of the correction node's keys (algo.correction.<key>; an algorithm without a policy ratio
    also needs correction.ppo_anchor=old: base.check_online)."""
    mode, level = algo.mode, algo.level
    check(mode in CORRECTIONS, "correction.mode", mode, f"one of {CORRECTIONS}")
    check(level in CORRECTION_LEVELS, "correction.level", level, f"one of {CORRECTION_LEVELS}")
    check(
        level == "token" or mode in ("none", "tis", "mis"),
        "correction.level",
        level,
        f"token with correction.mode={mode} (token_mask masks tokens, seq_mask sequences)",
    )
    check(
        algo.sequence_ratio in SEQUENCE_RATIOS,
        "correction.sequence_ratio",
        algo.sequence_ratio,
        f"one of {SEQUENCE_RATIOS}",
    )
    _check_bounds(algo)
    check(
        not algo.mask_is_weight or mode in ("token_mask", "seq_mask"),
        "correction.mask_is_weight",
        algo.mask_is_weight,
        f"false with correction.mode={mode} (it weighs the tokens token_mask / seq_mask keep)",
    )
    check(
        algo.ratio in CORRECTION_RATIOS,
        "correction.ratio",
        algo.ratio,
        f"one of {CORRECTION_RATIOS}",
    )
    check(algo.ppo_anchor in PPO_ANCHORS, "correction.ppo_anchor", algo.ppo_anchor, f"one of {PPO_ANCHORS}")
    check(
        not algo.normalize_weights or mode in ("tis", "mis"),
        "correction.normalize_weights",
        algo.normalize_weights,
        f"false with correction.mode={mode} (it rescales the importance weights of tis / mis)",
    )
    _check_rules(algo)
    steps = algo.max_rejected_steps
    check(steps >= 0, "correction.max_rejected_steps", steps, ">= 0 (0: never stop)")


def _check_bounds(algo) -> None:
    """correction.low / high: ordered, and holding a ratio of 1 (an on-policy token's): a mask's strictly,
    since an on-policy ratio is 1 only up to float noise (a bound of exactly 1 rejects about half the
    on-policy tokens); tis's as well, since a band off 1 weighs every on-policy token by the bound (a
    rescaled learning rate, nothing trained as the bound nears 0)."""
    mode, low, high = algo.mode, algo.low, algo.high
    check(low is None or low >= 0, "correction.low", low, ">= 0 or null")
    check(high is None or high > 0, "correction.high", high, "> 0 or null")
    check(low is None or high is None or low <= high, "correction.low", low, f"<= correction.high={high}")
    if mode in MASKS:
        holds = (
            f"with correction.mode={mode} (the bounds must hold a ratio of 1 with room for float "
            "noise, or on-policy tokens are rejected)"
        )
        check(low is None or low < 1, "correction.low", low, f"< 1 or null {holds}")
        check(high is None or high > 1, "correction.high", high, f"> 1 or null {holds}")
    elif mode == "tis":
        holds = "with correction.mode=tis (a band off 1 weighs every on-policy token by the bound)"
        check(low is None or low <= 1, "correction.low", low, f"<= 1 or null {holds}")
        check(high is None or high >= 1, "correction.high", high, f">= 1 or null {holds}")


def _check_rules(algo) -> None:
    """reject, reject_low / high (one bound per rule, or none: []), reject_ratio, reject_negative_only."""
    rules, n = list(algo.reject), len(algo.reject)
    for rule in rules:
        allowed = f"<scope>_<statistic>, scope one of {REJECT_SCOPES}, statistic one of {DIVERGENCES}"
        check(parse_rule(rule) is not None, "correction.reject", rules, allowed)
    for name in ("reject_low", "reject_high"):
        bounds = list(getattr(algo, name))
        check(
            len(bounds) in (0, n),
            f"correction.{name}",
            bounds,
            f"[] or one bound (or null) per rule of correction.reject={rules}",
        )
    holds = (
        "(every statistic is 0 where the two policies agree, up to float noise: a rule must keep that token, "
        "and a bound of exactly 0 rejects about half of them)"
    )
    for low in algo.reject_low:
        check(
            low is None or low < 0,
            "correction.reject_low",
            list(algo.reject_low),
            f"< 0 or null each {holds}",
        )
    for high in algo.reject_high:
        check(
            high is None or high > 0,
            "correction.reject_high",
            list(algo.reject_high),
            f"> 0 or null each {holds}",
        )
    allowed_ratios = (None, *CORRECTION_RATIOS)
    check(
        algo.reject_ratio in allowed_ratios,
        "correction.reject_ratio",
        algo.reject_ratio,
        f"one of {allowed_ratios}",
    )
    check(
        not algo.reject_negative_only or n > 0,
        "correction.reject_negative_only",
        algo.reject_negative_only,
        "false without a rule in reject (it limits the rules to tokens of negative advantage)",
    )
