"""DPO (Rafailov et al. 2023; spec 12) with its cDPO/IPO/hinge forms (12-14), offline and online (15)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from align_lab.algorithms.preference import Pairs, PairwiseBase, Route, margin_stats
from align_lab.rl import DPO_LOSS_TYPES, dpo_loss
from align_lab.value_checks import check, check_coef, check_lr


@dataclass
class DPO(PairwiseBase):
    """-log sigmoid(beta * h), h = policy-minus-reference log-ratio margin, on the dataset's pairs."""

    lr: float = 1e-3
    beta: float = 0.1
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0
    length_normalize: bool = False  # average instead of summed log-probs (TRL's IPO)

    def __post_init__(self) -> None:
        check_lr("lr", self.lr)
        check(self.beta > 0, "beta", self.beta, "> 0")
        check_coef("beta", self.beta)
        check(
            self.loss_type in DPO_LOSS_TYPES,
            "loss_type",
            self.loss_type,
            f"one of {', '.join(DPO_LOSS_TYPES)}",
        )
        check(0 <= self.label_smoothing < 0.5, "label_smoothing", self.label_smoothing, "in [0, 0.5)")
        check(
            self.label_smoothing == 0 or self.loss_type == "sigmoid",
            "label_smoothing",
            self.label_smoothing,
            f"0 with loss_type={self.loss_type} (cDPO smoothing is defined for sigmoid only)",
        )

    def loss(self, pairs: Pairs) -> tuple[Tensor, dict]:
        losses, chosen_rewards, rejected_rewards = dpo_loss(
            pairs.chosen_logps,
            pairs.rejected_logps,
            pairs.ref_chosen_logps,
            pairs.ref_rejected_logps,
            self.beta,
            self.loss_type,
            self.label_smoothing,
        )  # (N,) each
        return losses.mean(), margin_stats(chosen_rewards, rejected_rewards)


@dataclass
class OnlineDPO(DPO):
    """Online / iterative DPO (spec 15; TRL OnlineDPOTrainer): each step two samples per train prompt
    from the sampling policy, the higher reward is chosen (ties: the first), then the DPO loss.

    The sampling policy is the policy copied every sync_every steps: 1 is online DPO, a large value
    iterative DPO with rounds of sync_every steps (reference fixed at SFT).
    """

    sync_every: int = 1

    uses_dataset_pairs: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.sync_every >= 1, "sync_every", self.sync_every, ">= 1")

    def routes(self, n: int) -> Tensor:
        return torch.full((n,), int(Route.DPR))  # (N,)
