"""ORPO (Hong et al. 2024, arXiv 2403.07691): SFT on the chosen response plus an odds-ratio term, no
reference model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from align_lab.algorithms.preference import Pairs, PairwiseBase, margin_stats
from align_lab.rl.preference import orpo_odds_ratio
from align_lab.value_checks import check, check_lr


@dataclass
class ORPO(PairwiseBase):
    """-avg log pi(y_w) - lambda log sigmoid(log odds(y_w) - log odds(y_l)), averaged over the pairs
    (rl.orpo_odds_ratio; TRL ORPOTrainer with beta = lambda). The NLL is the mean over the pairs of
    each chosen response's per-token mean; TRL's is one token mean over the batch's chosen prompts
    and responses (docs/conventions.md). No reference model."""

    lr: float = 1e-3
    lam: float = 0.1

    length_normalize: ClassVar[bool] = True  # odds of the per-token averaged probability
    uses_reference: ClassVar[bool] = False  # no reference model

    def __post_init__(self) -> None:
        check_lr("lr", self.lr)
        check(self.lam >= 0, "lam", self.lam, ">= 0")

    def loss(self, pairs: Pairs) -> tuple[Tensor, dict]:
        chosen_logps, rejected_logps = pairs.chosen_logps, pairs.rejected_logps  # (N,) each
        log_odds_ratio = orpo_odds_ratio(chosen_logps, rejected_logps)  # (N,)
        nll = -chosen_logps.mean()
        stats = margin_stats(self.lam * chosen_logps, self.lam * rejected_logps)
        stats |= {"train/nll_loss": nll.item(), "train/log_odds_ratio": log_odds_ratio.mean().item()}
        return nll - self.lam * log_odds_ratio.mean(), stats
