"""The pairwise loop's contract: preference pairs -> a loss on sequence log-probs."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class PairwiseAlgorithm(Protocol):
    """Preference pairs -> a loss on sequence log-probs (DPO, IPO, SLiC...)."""

    lr: float

    def pair_loss(
        self,
        chosen_logps: Tensor,
        rejected_logps: Tensor,
        ref_chosen_logps: Tensor,
        ref_rejected_logps: Tensor,
    ) -> tuple[Tensor, dict]: ...
