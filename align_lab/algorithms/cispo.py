"""CISPO (MiniMax-M1, arXiv 2506.13585): clipped, detached importance weights times log pi."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.grpo import GRPO
from align_lab.rl.policy_losses import cispo_surrogate
from align_lab.value_checks import check


@dataclass
class CISPO(GRPO):
    """GRPO's advantages; loss -sg(clip(rho, 1 - clip, 1 + clip_high)) A log pi per token, token mean
    (rl.cispo_surrogate). No token loses its gradient: the weight is bounded, not the update.
    lower_clip=false (the paper): no lower bound on the weight; true: 1 - clip (verl's cispo)."""

    clip_high: float | None = 4.0
    lower_clip: bool = False
    loss_aggregation: str = "token_mean"
    kl_coef: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.clip_high is not None, "clip_high", self.clip_high, "> 0 for CISPO (the weight's cap)")
        check(self.dual_clip is None, "dual_clip", self.dual_clip, "null for CISPO (the weight is detached)")

    def policy_term(self, batch: Rollout, logprobs: Tensor, old: Tensor) -> tuple[Tensor, Tensor]:
        low = self.clip if self.lower_clip else None
        return cispo_surrogate(logprobs, old, batch.advantages, low, self.clip_high, self.log_ratio_clamp)
