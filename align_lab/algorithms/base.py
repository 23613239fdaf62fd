"""The online loop's contract (OnlineAlgorithm), the rollout batch it passes around, and check()."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Protocol, runtime_checkable

from torch import Tensor

from align_lab.rl import AGGREGATIONS, KL_ESTIMATORS


@dataclass
class Rollout:
    """One step's experience. B = prompts x group_size rows; a prompt's G samples are contiguous."""

    prompt_ids: Tensor  # (B, P)
    prompt_attn: Tensor  # (B, P)
    response_ids: Tensor  # (B, T)
    mask: Tensor  # (B, T)
    logprobs: Tensor  # (B, T) under the policy that sampled (pi_old)
    ref_logprobs: Tensor  # (B, T) under the frozen reference (SFT)
    scores: Tensor  # (B,) reward of each response
    group_size: int
    values: Tensor | None = None  # (B, T) critic values, if any
    advantages: Tensor | None = None  # (B, T)
    returns: Tensor | None = None  # (B, T) value targets, if any
    baseline_scores: Tensor | None = None  # (B,) score of a greedy response to the row's prompt (ReMax)

    def rows(self, index: Tensor) -> Rollout:
        """The minibatch of rows `index` (group statistics are already folded into advantages)."""
        picked = {
            f.name: getattr(self, f.name)[index]
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **picked)


@runtime_checkable
class OnlineAlgorithm(Protocol):
    """Rollout -> advantages -> clipped/plain policy-gradient loss (PPO, REINFORCE++, RLOO, GRPO...)."""

    lr: float
    epochs: int  # passes over each rollout
    group_size: int  # samples per prompt

    @property
    def uses_critic(self) -> bool: ...

    def advantages(self, rollout: Rollout) -> tuple[Tensor, Tensor | None]:
        """(advantages (B, T), returns (B, T) or None); zero on padding."""
        ...

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        """Scalar loss of a minibatch and detached stats ({"train/clip_frac": ...})."""
        ...


def check_online(algo, group_size_allowed: str = ">= 1", min_group_size: int = 1) -> None:
    """The checks of the hyperparameters every online algorithm shares: lr, epochs, group_size, kl_coef,
    kl_estimator, kl_clamp, loss_aggregation (`group_size_allowed` says why more than one is needed)."""
    check(algo.lr > 0, "lr", algo.lr, "> 0")
    check(algo.epochs >= 1, "epochs", algo.epochs, ">= 1")
    check(algo.group_size >= min_group_size, "group_size", algo.group_size, group_size_allowed)
    check(algo.kl_coef >= 0, "kl_coef", algo.kl_coef, ">= 0")
    check(algo.kl_estimator in KL_ESTIMATORS, "kl_estimator", algo.kl_estimator, f"one of {KL_ESTIMATORS}")
    check(algo.kl_clamp is None or algo.kl_clamp > 0, "kl_clamp", algo.kl_clamp, "> 0 or null")
    check(
        algo.loss_aggregation in AGGREGATIONS,
        "loss_aggregation",
        algo.loss_aggregation,
        f"one of {AGGREGATIONS}",
    )


def check_clip(algo) -> None:
    """The checks of a ratio-clipped algorithm's clip, clip_high and dual_clip."""
    check(0 < algo.clip < 1, "clip", algo.clip, "in (0, 1)")
    check(algo.clip_high is None or algo.clip_high > 0, "clip_high", algo.clip_high, "> 0 or null")
    check(algo.dual_clip is None or algo.dual_clip > 1, "dual_clip", algo.dual_clip, "> 1 or null")


def clip_bounds(algo) -> tuple[float, float | None, float | None]:
    """(clip_low, clip_high, dual_clip) of rl.clipped_surrogate for a ratio-clipped algorithm."""
    return algo.clip, algo.clip_high, algo.dual_clip


def check(ok: bool, name: str, value, allowed: str) -> None:
    """Raises the one-line error every config check uses: `name=value: must be allowed`."""
    if not ok:
        raise ValueError(f"{name}={value}: must be {allowed}")
