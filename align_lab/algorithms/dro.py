"""DRO (Direct Reward Optimisation, Richemond et al. 2024, arXiv 2405.19107) in its on-policy quadratic
form, verl's and Tinker's `dro` policy loss: GRPO's advantages with the QuadraticPenalty policy term."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip, RolloutCorrection
from align_lab.rl.policy_losses import dro_surrogate
from align_lab.value_checks import check


@dataclass(frozen=True)
class QuadraticPenalty:
    """Loss -(A log pi - dro_beta / 2 (log pi - log pi_old)^2) per token (rl.dro_surrogate): no clip and
    no ratio, so clip_high and dual_clip must stay null; nothing is clipped (clip_frac 0)."""

    clip: RatioClip
    dro_beta: float = 0.1

    def __post_init__(self) -> None:
        check(self.dro_beta > 0, "dro_beta", self.dro_beta, "> 0 (the quadratic penalty's weight)")
        self.clip.require_null(("high", "dual"), "for DRO (the penalty replaces the clip)")

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        loss = dro_surrogate(logprobs, old, batch.advantages, self.dro_beta)  # (B, T)
        return loss, torch.zeros_like(loss, dtype=torch.bool)


@dataclass
class DRO(GRPO):
    """GRPO's keys and advantages with the QuadraticPenalty term; token mean."""

    dro_beta: float = 0.1
    loss_aggregation: str = "token_mean"

    def policy_term(self, clip: RatioClip) -> QuadraticPenalty:
        return QuadraticPenalty(clip, self.dro_beta)
