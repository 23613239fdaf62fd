"""GMPO (Zhao et al. 2025, arXiv 2507.20673): the geometric mean of token-clipped ratios per sequence."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.grpo import GRPO
from align_lab.rl.policy_losses import geometric_mean_loss
from align_lab.value_checks import check


@dataclass
class GMPO(GRPO):
    """GRPO's advantages; each sequence's loss is -A exp(mean_t clip(log rho_t)), the token log-ratios
    clipped to [-clip, clip_high] (log space: the paper's (e^-0.4, e^0.4)), rl.geometric_mean_loss.
    The sequence loss is spread over its tokens, so seq_mean_token_mean (the default) averages it
    over the sequences as verl's geo_mean; token_mean would weigh sequences by length."""

    clip: float = 0.4
    clip_high: float | None = 0.4
    loss_aggregation: str = "seq_mean_token_mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.dual_clip is None, "dual_clip", self.dual_clip, "null for GMPO")

    def policy_term(self, batch: Rollout, logprobs: Tensor, old: Tensor) -> tuple[Tensor, Tensor]:
        high = self.clip if self.clip_high is None else self.clip_high
        loss, clipped = geometric_mean_loss(logprobs, old, batch.advantages, batch.mask, self.clip, high)
        return loss[:, None].expand_as(logprobs), clipped  # (B, T): every token holds its sequence's loss
