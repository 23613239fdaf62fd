"""CISPO (MiniMax-M1, arXiv 2506.13585): clipped, detached importance weights times log pi (the
CISPOWeight policy term on GRPO's advantages)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip, RolloutCorrection
from align_lab.rl.policy_losses import cispo_surrogate
from align_lab.value_checks import check


@dataclass(frozen=True)
class CISPOWeight:
    """Loss -sg(clip(rho, 1 - clip, 1 + clip_high)) A log pi per token (rl.cispo_surrogate). No token loses
    its gradient: the weight is bounded, not the update. lower_clip=false (the paper): no lower bound on
    the weight; true: 1 - clip (verl's cispo)."""

    clipping: RatioClip
    lower_clip: bool = False

    def __post_init__(self) -> None:
        high = self.clipping.clip_high
        check(high is not None, "clip_high", high, "> 0 for CISPO (the weight's cap)")
        self.clipping.require_null(("dual_clip",), "for CISPO (the weight is detached)")

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        c = self.clipping
        low = c.clip if self.lower_clip else None
        return cispo_surrogate(logprobs, old, batch.advantages, low, c.clip_high, c.log_ratio_clamp)


@dataclass
class CISPO(GRPO):
    """GRPO's keys and advantages with the CISPOWeight term; token mean, no KL (the paper)."""

    clip_high: float | None = 4.0
    lower_clip: bool = False
    loss_aggregation: str = "token_mean"
    kl_coef: float = 0.0

    def policy_term(self, clipping: RatioClip) -> CISPOWeight:
        return CISPOWeight(clipping, self.lower_clip)
