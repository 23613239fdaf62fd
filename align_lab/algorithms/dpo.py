"""DPO (Rafailov et al. 2023; spec section 12) on offline preference pairs, with its IPO/hinge forms."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import check
from align_lab.rl import DPO_LOSS_TYPES, dpo_loss


@dataclass
class DPO:
    """-log sigmoid(beta * h), h = policy-minus-reference log-ratio margin of summed log-probs."""

    lr: float = 1e-3
    beta: float = 0.1
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0
    length_normalize: bool = False  # average instead of summed log-probs (TRL's IPO)

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.beta > 0, "beta", self.beta, "> 0")
        check(
            self.loss_type in DPO_LOSS_TYPES,
            "loss_type",
            self.loss_type,
            f"one of {DPO_LOSS_TYPES}",
        )
        check(0 <= self.label_smoothing < 0.5, "label_smoothing", self.label_smoothing, "in [0, 0.5)")

    def pair_loss(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps):
        losses, chosen_rewards, rejected_rewards = dpo_loss(
            chosen_logps,
            rejected_logps,
            ref_chosen_logps,
            ref_rejected_logps,
            self.beta,
            self.loss_type,
            self.label_smoothing,
        )
        margin: Tensor = (chosen_rewards - rejected_rewards).detach()
        return losses.mean(), {
            "train/reward_margin": margin.mean().item(),
            "train/pair_accuracy": (margin > 0).float().mean().item(),
        }
