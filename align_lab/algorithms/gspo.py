"""GSPO (Zheng et al. 2025, Qwen, arXiv 2507.18071): GRPO with one length-normalised ratio per sequence."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.grpo import GRPO
from align_lab.checks import check
from align_lab.rl.policy_losses import sequence_clipped_surrogate


@dataclass
class GSPO(GRPO):
    """GRPO's group-normalised advantages; the policy term clips the sequence ratio
    s = (pi(y|x) / pi_old(y|x))^(1/|y|) to [1 - clip, 1 + clip_high] (rl.sequence_clipped_surrogate).
    The paper's ranges are 3e-4 / 4e-4 (two orders below a token clip: s is a geometric mean)."""

    clip: float = 3e-4
    clip_high: float | None = 4e-4
    loss_aggregation: str = "seq_mean_token_mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.dual_clip is None, "dual_clip", self.dual_clip, "null for GSPO (no dual-clip in the paper)"
        )

    def policy_term(self, batch: Rollout, logprobs: Tensor, old: Tensor) -> tuple[Tensor, Tensor]:
        return sequence_clipped_surrogate(
            logprobs, old, batch.advantages, batch.mask, self.clip, self.clip_high, self.log_ratio_clamp
        )
