"""SAPO (Gao et al. 2025, Qwen, arXiv 2511.20347): a soft sigmoid gate instead of PPO's hard clip (the
SoftGate policy term on GRPO's advantages)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip, RolloutCorrection
from align_lab.rl.policy_losses import soft_gated_surrogate
from align_lab.value_checks import check


@dataclass(frozen=True)
class SoftGate:
    """Loss -sigmoid(tau (rho - 1)) 4 / tau A per token, tau = tau_pos where A > 0 else tau_neg
    (rl.soft_gated_surrogate). GRPO's clip.low has no effect here; clip.high and clip.dual must stay null."""

    clip: RatioClip
    tau_pos: float = 1.0
    tau_neg: float = 1.05

    def __post_init__(self) -> None:
        check(self.tau_pos > 0, "tau_pos", self.tau_pos, "> 0")
        check(self.tau_neg > 0, "tau_neg", self.tau_neg, "> 0")
        self.clip.require_null(("high", "dual"), "for SAPO (the gate replaces the clip)")

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        clamp = self.clip.log_ratio_clamp
        return soft_gated_surrogate(logprobs, old, batch.advantages, self.tau_pos, self.tau_neg, clamp)


@dataclass
class SAPO(GRPO):
    """GRPO's keys and advantages with the SoftGate term; seq_mean_token_mean as verl and TRL."""

    tau_pos: float = 1.0
    tau_neg: float = 1.05
    loss_aggregation: str = "seq_mean_token_mean"

    def policy_term(self, clip: RatioClip) -> SoftGate:
        return SoftGate(clip, self.tau_pos, self.tau_neg)
