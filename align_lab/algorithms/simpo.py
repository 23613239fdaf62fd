"""SimPO (Meng et al. 2024, arXiv 2405.14734): a reference-free margin on length-averaged log-probs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from align_lab.algorithms.preference import Pairs, PairwiseBase, margin_stats
from align_lab.rl.preference import simpo_loss
from align_lab.value_checks import check, check_coef, check_lr


@dataclass
class SimPO(PairwiseBase):
    """-log sigmoid(beta (avg log pi(y_w) - avg log pi(y_l)) - gamma) on the dataset's pairs, gamma =
    gamma_beta_ratio * beta (the SimPO code's key; TRL CPOTrainer loss_type=simpo takes
    simpo_gamma = gamma and cpo_alpha = 0). No reference model."""

    lr: float = 1e-3
    beta: float = 2.0
    gamma_beta_ratio: float = 0.5

    length_normalize: ClassVar[bool] = True  # the method: per-token averaged log-probs
    uses_reference: ClassVar[bool] = False  # no reference model

    def __post_init__(self) -> None:
        check_lr("lr", self.lr)
        check(self.beta > 0, "beta", self.beta, "> 0")
        check_coef("beta", self.beta)
        check(self.gamma_beta_ratio >= 0, "gamma_beta_ratio", self.gamma_beta_ratio, ">= 0")

    def loss(self, pairs: Pairs) -> tuple[Tensor, dict]:
        chosen_logps, rejected_logps = pairs.chosen_logps, pairs.rejected_logps  # (N,) each
        losses = simpo_loss(chosen_logps, rejected_logps, self.beta, self.gamma_beta_ratio)  # (N,)
        return losses.mean(), margin_stats(self.beta * chosen_logps, self.beta * rejected_logps)
