"""Clip-Cov and KL-Cov (Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs", arXiv
2505.22617): GRPO whose few highest-covariance tokens lose their gradient or pay a KL. One file for the
paper's two methods: they share the covariance and every other key."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.grpo import GRPO
from align_lab.rl.policy_losses import clip_cov_surrogate, kl_cov_surrogate
from align_lab.value_checks import check


@dataclass
class ClipCov(GRPO):
    """PPO-clip, plus a random cov_ratio share of the tokens with covariance in (cov_low, cov_high)
    detached (rl.clip_cov_surrogate; verl policy_loss.loss_mode=clip_cov). Token mean."""

    cov_ratio: float = 2e-4
    cov_low: float = 1.0
    cov_high: float = 5.0
    loss_aggregation: str = "token_mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.cov_ratio <= 1, "cov_ratio", self.cov_ratio, "in (0, 1]")
        check(self.cov_low < self.cov_high, "cov_low", self.cov_low, f"< cov_high={self.cov_high}")
        check(self.dual_clip is None, "dual_clip", self.dual_clip, "null for Clip-Cov (verl has none)")

    def policy_term(self, batch: Rollout, logprobs: Tensor, old: Tensor) -> tuple[Tensor, Tensor]:
        bounds = (self.cov_low, self.cov_high)
        return clip_cov_surrogate(
            logprobs, old, batch.advantages, batch.mask, self.clip, self.clip_high, self.cov_ratio, bounds,
            self.log_ratio_clamp,
        )  # fmt: skip


@dataclass
class KLCov(GRPO):
    """No clip: -A rho on every token, plus cov_kl_coef |log rho| on the cov_ratio share of tokens of
    largest covariance (rl.kl_cov_surrogate; verl loss_mode=kl_cov). GRPO's clip, clip_high and
    dual_clip have no effect: the two latter must stay null. Token mean."""

    cov_ratio: float = 2e-4
    cov_kl_coef: float = 1.0
    loss_aggregation: str = "token_mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.cov_ratio <= 1, "cov_ratio", self.cov_ratio, "in (0, 1]")
        check(self.cov_kl_coef >= 0, "cov_kl_coef", self.cov_kl_coef, ">= 0")
        for key in ("clip_high", "dual_clip"):
            check(getattr(self, key) is None, key, getattr(self, key), "null for KL-Cov (it does not clip)")

    def policy_term(self, batch: Rollout, logprobs: Tensor, old: Tensor) -> tuple[Tensor, Tensor]:
        return kl_cov_surrogate(
            logprobs,
            old,
            batch.advantages,
            batch.mask,
            self.cov_ratio,
            self.cov_kl_coef,
            self.log_ratio_clamp,
        )
