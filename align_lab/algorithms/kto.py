"""KTO (Ethayarajh et al. 2024, arXiv 2402.01306): prospect-theoretic loss on samples labelled desirable
or undesirable, against a reference point z_0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from align_lab.algorithms.dpo import margin_stats
from align_lab.algorithms.preference import PairwiseAlgorithm, Route
from align_lab.rl.preference import kto_loss
from align_lab.value_checks import check, check_lr

KL_REFERENCE_POINTS = ("mismatched", "batch")


@dataclass
class KTO(PairwiseAlgorithm):
    """KTO on the dataset's pairs taken apart: each chosen response a desirable sample, each rejected
    one an undesirable sample (the KTO paper's treatment of paired data). z_0 = max(0, mean of
    log pi - log pi_ref), detached, over the step's 2N responses each under the previous row's prompt
    (kl_reference_point=mismatched: TRL KTOTrainer's KL batch, one extra forward of each model) or
    under their own prompts (batch: no extra forward; docs/conventions.md)."""

    lr: float = 1e-3
    beta: float = 0.1
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    kl_reference_point: str = "mismatched"

    uses_dataset_pairs: ClassVar[bool] = True
    sync_every: ClassVar[int] = 1  # nothing is sampled

    def __post_init__(self) -> None:
        check_lr("lr", self.lr)
        check(self.beta > 0, "beta", self.beta, "> 0")
        check(self.desirable_weight > 0, "desirable_weight", self.desirable_weight, "> 0")
        check(self.undesirable_weight > 0, "undesirable_weight", self.undesirable_weight, "> 0")
        points = KL_REFERENCE_POINTS
        check(
            self.kl_reference_point in points,
            "kl_reference_point",
            self.kl_reference_point,
            f"one of {points}",
        )

    @property
    def mismatched_kl(self) -> bool:
        return self.kl_reference_point == "mismatched"

    def routes(self, n: int) -> Tensor:
        return torch.full((n,), int(Route.DPO))  # (N,)

    def pair_loss(
        self, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, routes, kl_logratios=None
    ):
        """`kl_logratios` (2N,): the mismatched responses' log pi - log pi_ref (mismatched; required)."""
        chosen, rejected = chosen_logps - ref_chosen_logps, rejected_logps - ref_rejected_logps  # (N,)
        if self.mismatched_kl and kl_logratios is None:
            raise ValueError(
                "kl_reference_point=mismatched: pair_loss needs the mismatched rows' kl_logratios"
            )
        point = torch.cat([chosen, rejected]) if kl_logratios is None else kl_logratios  # (2N,)
        kl = point.detach().mean().clamp(min=0)  # () z_0
        losses = kto_loss(chosen, rejected, kl, self.beta, self.desirable_weight, self.undesirable_weight)
        stats = margin_stats(self.beta * chosen, self.beta * rejected) | {"train/kto_kl": kl.item()}
        return losses.mean(), stats
