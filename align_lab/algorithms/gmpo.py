"""GMPO (Zhao et al. 2025, arXiv 2507.20673): the geometric mean of token-clipped ratios per sequence (the
GeometricMean policy term on GRPO's advantages)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip, RolloutCorrection
from align_lab.rl.policy_losses import geometric_mean_loss


@dataclass(frozen=True)
class GeometricMean:
    """Each sequence's loss is -A exp(mean_t clip(log rho_t)), the token log-ratios clipped to
    [-clip, clip_high] (log space: the paper's (e^-0.4, e^0.4)), rl.geometric_mean_loss. The sequence
    loss is spread over its tokens, so seq_mean_token_mean averages it over the sequences as verl's
    geo_mean; token_mean would weigh sequences by length."""

    clipping: RatioClip

    def __post_init__(self) -> None:
        self.clipping.require_null(("dual_clip",), "for GMPO")

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        low = self.clipping.clip
        high = low if self.clipping.clip_high is None else self.clipping.clip_high
        loss, clipped = geometric_mean_loss(logprobs, old, batch.advantages, batch.mask, low, high)
        return loss[:, None].expand_as(logprobs), clipped  # (B, T): every token holds its sequence's loss


@dataclass
class GMPO(GRPO):
    """GRPO's keys and advantages with the GeometricMean term."""

    clip: float = 0.4
    clip_high: float | None = 0.4
    loss_aggregation: str = "seq_mean_token_mean"

    def policy_term(self, clipping: RatioClip) -> GeometricMean:
        return GeometricMean(clipping)
