"""GMPO (Zhao et al. 2025, arXiv 2507.20673): the geometric mean of token-clipped ratios per sequence (the
GeometricMean policy term on GRPO's advantages)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip, RolloutCorrection
from align_lab.rl.policy_losses import geometric_mean_loss


@dataclass(frozen=True)
class GeometricMean:
    """Each sequence's loss is -A exp(mean_t clip(log rho_t)), the token log-ratios clipped to
    [-clip.low, clip.high] (log space: the paper's (e^-0.4, e^0.4)), rl.geometric_mean_loss. The sequence
    loss is spread over its tokens, so seq_mean_token_mean averages it over the sequences as verl's
    geo_mean; token_mean would weigh sequences by length."""

    clip: RatioClip

    def __post_init__(self) -> None:
        self.clip.require_null(("dual",), "for GMPO")

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        low = self.clip.low
        high = low if self.clip.high is None else self.clip.high
        loss, clipped = geometric_mean_loss(logprobs, old, batch.advantages, batch.mask, low, high)
        return loss[:, None].expand_as(logprobs), clipped  # (B, T): every token holds its sequence's loss


@dataclass
class GMPO(GRPO):
    """GRPO's keys and advantages with the GeometricMean term."""

    clip: RatioClip = field(default_factory=lambda: RatioClip(low=0.4, high=0.4))
    loss_aggregation: str = "seq_mean_token_mean"

    def policy_term(self, clip: RatioClip) -> GeometricMean:
        return GeometricMean(clip)
