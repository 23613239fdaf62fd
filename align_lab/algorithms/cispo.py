"""CISPO (MiniMax-M1, arXiv 2506.13585): clipped, detached importance weights times log pi (the
CISPOWeight policy term on GRPO's advantages)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip, RolloutCorrection
from align_lab.rl.policy_losses import cispo_surrogate
from align_lab.value_checks import check


@dataclass(frozen=True)
class CISPOWeight:
    """Loss -sg(clip(rho, 1 - clip.low, 1 + clip.high)) A log pi per token (rl.cispo_surrogate). No token
    loses its gradient: the weight is bounded, not the update. lower_clip=false (the paper): no lower bound on
    the weight; true: 1 - clip.low (verl's cispo)."""

    clip: RatioClip
    lower_clip: bool = False

    def __post_init__(self) -> None:
        high = self.clip.high
        check(high is not None, "clip.high", high, "> 0 for CISPO (the weight's cap)")
        self.clip.require_null(("dual",), "for CISPO (the weight is detached)")

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        c = self.clip
        low = c.low if self.lower_clip else None
        return cispo_surrogate(logprobs, old, batch.advantages, low, c.high, c.log_ratio_clamp)


@dataclass
class CISPO(GRPO):
    """GRPO's keys and advantages with the CISPOWeight term; token mean, no KL (the paper)."""

    clip: RatioClip = field(default_factory=lambda: RatioClip(high=4.0))
    lower_clip: bool = False
    loss_aggregation: str = "token_mean"
    kl_coef: float = 0.0

    def policy_term(self, clip: RatioClip) -> CISPOWeight:
        return CISPOWeight(clip, self.lower_clip)
