"""DAPO (Yu et al. 2025, arXiv 2503.14476): a preset of GRPO (its keys and their effects are GRPO's)."""

from __future__ import annotations

from dataclasses import dataclass, field

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip


@dataclass
class DAPO(GRPO):
    """GRPO with DAPO's four techniques, each its own key: clip.high (clip-higher, 0.28), token_mean
    aggregation, dynamic_sampling and the soft overlong punishment (overlong_buffer; GRPO's docstring).
    Only the defaults differ from GRPO's."""

    clip: RatioClip = field(default_factory=lambda: RatioClip(high=0.28))
    kl_coef: float = 0.0
    loss_aggregation: str = "token_mean"
    dynamic_sampling: bool = True
    max_resample_rounds: int = 10
