"""Clip-Cov and KL-Cov (Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs", arXiv
2505.22617): GRPO whose few highest-covariance tokens lose their gradient or pay a KL (the CovClip and
CovKL policy terms). One file for the paper's two methods: they share the covariance and every other key."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip, RolloutCorrection
from align_lab.rl.policy_losses import clip_cov_surrogate, kl_cov_surrogate
from align_lab.value_checks import check


@dataclass(frozen=True)
class CovClip:
    """PPO-clip, plus a random cov_ratio share of the tokens with covariance in (cov_low, cov_high)
    detached (rl.clip_cov_surrogate; verl policy_loss.loss_mode=clip_cov)."""

    clip: RatioClip
    cov_ratio: float = 2e-4
    cov_low: float = 1.0
    cov_high: float = 5.0

    def __post_init__(self) -> None:
        check(0 < self.cov_ratio <= 1, "cov_ratio", self.cov_ratio, "in (0, 1]")
        check(self.cov_low < self.cov_high, "cov_low", self.cov_low, f"< cov_high={self.cov_high}")
        self.clip.require_null(("dual",), "for Clip-Cov (verl has none)")

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        c, bounds = self.clip, (self.cov_low, self.cov_high)
        return clip_cov_surrogate(
            logprobs, old, batch.advantages, batch.mask, c.low, c.high, self.cov_ratio, bounds,
            c.log_ratio_clamp,
        )  # fmt: skip


@dataclass(frozen=True)
class CovKL:
    """No clip: -A rho on every token, plus cov_kl_coef |log rho| on the cov_ratio share of tokens of
    largest covariance (rl.kl_cov_surrogate; verl loss_mode=kl_cov). GRPO's clip.low has no effect; clip.high
    and clip.dual must stay null."""

    clip: RatioClip
    cov_ratio: float = 2e-4
    cov_kl_coef: float = 1.0

    def __post_init__(self) -> None:
        check(0 < self.cov_ratio <= 1, "cov_ratio", self.cov_ratio, "in (0, 1]")
        check(self.cov_kl_coef >= 0, "cov_kl_coef", self.cov_kl_coef, ">= 0")
        self.clip.require_null(("high", "dual"), "for KL-Cov (it does not clip)")

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        return kl_cov_surrogate(
            logprobs,
            old,
            batch.advantages,
            batch.mask,
            self.cov_ratio,
            self.cov_kl_coef,
            self.clip.log_ratio_clamp,
        )


@dataclass
class ClipCov(GRPO):
    """GRPO's keys and advantages with the CovClip term; token mean."""

    cov_ratio: float = 2e-4
    cov_low: float = 1.0
    cov_high: float = 5.0
    loss_aggregation: str = "token_mean"

    def policy_term(self, clip: RatioClip) -> CovClip:
        return CovClip(clip, self.cov_ratio, self.cov_low, self.cov_high)


@dataclass
class KLCov(GRPO):
    """GRPO's keys and advantages with the CovKL term; token mean."""

    cov_ratio: float = 2e-4
    cov_kl_coef: float = 1.0
    loss_aggregation: str = "token_mean"

    def policy_term(self, clip: RatioClip) -> CovKL:
        return CovKL(clip, self.cov_ratio, self.cov_kl_coef)
