"""ORPO (Hong et al. 2024, arXiv 2403.07691): SFT on the chosen response plus an odds-ratio term, no
reference model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from align_lab.algorithms.dpo import margin_stats
from align_lab.algorithms.preference import PairwiseAlgorithm, Route
from align_lab.rl.preference import orpo_odds_ratio
from align_lab.value_checks import check, check_lr


@dataclass
class ORPO(PairwiseAlgorithm):
    """-avg log pi(y_w) - lambda log sigmoid(log odds(y_w) - log odds(y_l)), averaged over the pairs
    (rl.orpo_odds_ratio; TRL ORPOTrainer with beta = lambda). The NLL is the mean over the pairs of
    each chosen response's per-token mean; TRL's is one token mean over the batch's chosen prompts
    and responses (docs/conventions.md). No reference model."""

    lr: float = 1e-3
    lam: float = 0.1

    uses_dataset_pairs: ClassVar[bool] = True
    sync_every: ClassVar[int] = 1  # nothing is sampled
    length_normalize: ClassVar[bool] = True  # odds of the per-token averaged probability

    def __post_init__(self) -> None:
        check_lr("lr", self.lr)
        check(self.lam >= 0, "lam", self.lam, ">= 0")

    @property
    def uses_reference(self) -> bool:
        return False

    def routes(self, n: int) -> Tensor:
        return torch.full((n,), int(Route.DPO))  # (N,)

    def pair_loss(self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, routes):
        log_odds_ratio = orpo_odds_ratio(chosen_logps, rejected_logps)  # (N,)
        nll = -chosen_logps.mean()
        stats = margin_stats(self.lam * chosen_logps, self.lam * rejected_logps)
        stats |= {"train/nll_loss": nll.item(), "train/log_odds_ratio": log_odds_ratio.mean().item()}
        return nll - self.lam * log_odds_ratio.mean(), stats
