"""KTO (Ethayarajh et al. 2024, arXiv 2402.01306): prospect-theoretic loss on samples labelled desirable
or undesirable, against a reference point z_0."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from align_lab.algorithms.preference import Pairs, PairwiseBase, margin_stats
from align_lab.rl.preference import kto_loss
from align_lab.value_checks import check, check_coef, check_lr

KL_REFERENCE_POINTS = ("mismatched", "batch")
log = logging.getLogger("align_lab")


def weight_ranges(desirable: int, undesirable: int, desirable_weight: float, undesirable_weight: float):
    """TRL KTOTrainer's advice on unbalanced data (the paper's eq. 8: lambda_D n_D / (lambda_U n_U) in
    [1, 4/3]): ((low, high) of desirable_weight, (low, high) of undesirable_weight), each with the other
    weight held, rounded to 2 places as TRL does; counts below 1 count as 1."""
    n_d, n_u = max(desirable, 1), max(undesirable, 1)
    d = (round(n_u * undesirable_weight / n_d, 2), round(n_u * undesirable_weight / n_d * 1.33, 2))
    u = (round(n_d * desirable_weight / n_u / 1.33, 2), round(n_d * desirable_weight / n_u, 2))
    return d, u


@dataclass
class KTO(PairwiseBase):
    """KTO on the dataset's pairs taken apart (desirable_threshold=None: each chosen response a desirable
    sample, each rejected one an undesirable sample, the KTO paper's treatment of paired data), or on the
    preferences stage's unpaired samples (a threshold: each sampled response desirable when the run's
    reward scores it above it, run/pairs.py; TRL's (prompt, completion, label) rows;
    a step takes 2 x train.minibatch_size of them). z_0 = max(0, mean of log pi - log pi_ref), detached,
    over the step's 2N responses each under the previous row's prompt (kl_reference_point=mismatched:
    TRL KTOTrainer's KL batch, one extra forward of each model) or under their own prompts (batch: no
    extra forward; docs/conventions.md)."""

    lr: float = 1e-3
    beta: float = 0.1
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    kl_reference_point: str = "mismatched"
    desirable_threshold: float | None = None

    def __post_init__(self) -> None:
        check_lr("lr", self.lr)
        check(self.beta > 0, "beta", self.beta, "> 0")
        check_coef("beta", self.beta)
        check(self.desirable_weight > 0, "desirable_weight", self.desirable_weight, "> 0")
        check(self.undesirable_weight > 0, "undesirable_weight", self.undesirable_weight, "> 0")
        points = KL_REFERENCE_POINTS
        check(
            self.kl_reference_point in points,
            "kl_reference_point",
            self.kl_reference_point,
            f"one of {points}",
        )
        threshold = self.desirable_threshold
        check(
            threshold is None or math.isfinite(threshold),
            "desirable_threshold",
            threshold,
            "null (the pairs taken apart) or a finite reward",
        )

    @property
    def mismatched_kl(self) -> bool:
        return self.kl_reference_point == "mismatched"

    def check_data(self, items: list) -> None:
        """TRL's warning when the unpaired samples' counts and the weights are out of balance."""
        if self.desirable_threshold is None:
            return  # pairs taken apart: as many desirable as undesirable samples
        n_d = sum(s.desirable for s in items)
        weights = (self.desirable_weight, self.undesirable_weight)
        d, u = weight_ranges(n_d, len(items) - n_d, *weights)
        if n_d != len(items) - n_d and not (d[0] <= weights[0] <= d[1] or u[0] <= weights[1] <= u[1]):
            log.warning(
                f"KTO: {n_d} desirable and {len(items) - n_d} undesirable samples; set EITHER "
                f"algo.desirable_weight in [{d[0]}, {d[1]}] OR algo.undesirable_weight in [{u[0]}, {u[1]}] "
                "(lambda_D n_D / (lambda_U n_U) in [1, 4/3], TRL KTOTrainer's advice)"
            )

    def loss(self, pairs: Pairs) -> tuple[Tensor, dict]:
        """Reads pairs.kl_logratios (the mismatched responses' log pi - log pi_ref; required when
        mismatched) and pairs.desirable (the unpaired rows' labels; None: pairs, the chosen rows
        desirable)."""
        chosen = pairs.chosen_logps - pairs.ref_chosen_logps  # (N,)
        rejected = pairs.rejected_logps - pairs.ref_rejected_logps  # (N,)
        kl_logratios, desirable = pairs.kl_logratios, pairs.desirable  # (2N,) each, or None
        if self.mismatched_kl and kl_logratios is None:
            raise ValueError("kl_reference_point=mismatched: loss needs the mismatched rows' kl_logratios")
        logratios = torch.cat([chosen, rejected])  # (2N,) rows
        point = logratios if kl_logratios is None else kl_logratios  # (2N,)
        kl = point.detach().mean().clamp(min=0)  # () z_0
        paired = desirable is None
        if paired:
            desirable = torch.arange(len(logratios)) < len(chosen)  # (2N,) the chosen rows
        good, bad = logratios[desirable], logratios[~desirable]  # (N_d,), (N_u,)
        losses = kto_loss(good, bad, kl, self.beta, self.desirable_weight, self.undesirable_weight)
        if paired:
            stats = margin_stats(self.beta * chosen, self.beta * rejected)
            return losses.mean(), stats | {"train/kto_kl": kl.item()}
        stats = {"train/kto_kl": kl.item(), "train/kto_desirable_share": desirable.float().mean().item()}
        for key, part in (("train/chosen_reward", good), ("train/rejected_reward", bad)):
            if len(part):  # a step may draw samples of one label only
                stats[key] = (self.beta * part).detach().mean().item()
        return losses.mean(), stats
