"""SAIL (Ding et al. 2024, arXiv 2406.15567; spec 16): DPO whose pairs are, per pair, drawn from the
dataset or the policy and labelled by the dataset, the reward or the policy, with SAIL's extra terms.

The official code's mixing (16.2): each pair draws a route from Multinomial(r, p, g, 1 - r - p - g):
DDP (dataset pair relabelled by the policy), DPP (two policy samples labelled by the policy), DPR
(two policy samples labelled by the reward), else plain offline DPO. SAIL-DP/PP/PR are presets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from align_lab.algorithms.preference import Pairs, PairwiseBase, Route, margin_stats
from align_lab.rl import (
    SAIL_EXTRA_GRAD_MODES,
    SF_BASELINES,
    dpo_log_likelihood,
    policy_swap_probability,
    sail_label_term,
    sail_response_term,
    sample_routes,
)
from align_lab.value_checks import check, check_coef, check_lr


@dataclass
class SAIL(PairwiseBase):
    """L = mean_i[-f_i - 1/2 c_i f_i^2] + response term, f = log sigmoid(beta h) (16.2 step 4-5).

    Label coefficient c: rho on DDP pairs, pi on DPP pairs. Response coefficient: pi on DPP, gamma
    on DPR pairs, applied as extra_grad_mode (rl.sail_response_term).
    """

    lr: float = 1e-3
    beta: float = 0.1
    r: float = 0.0  # DDP route probability
    rho: float = 0.0  # DDP label-term coefficient
    p: float = 0.0  # DPP route probability
    pi: float = 0.0  # DPP label- and response-term coefficient
    g: float = 0.0  # DPR route probability
    gamma: float = 0.0  # DPR response-term coefficient
    extra_grad_mode: str = "score_function"
    sf_baseline: str = "none"
    # PairwiseBase's uses_dataset_pairs (DPP/DPR pairs sample for the dataset pair's prompt) and
    # sync_every 1 (SAIL samples from the current policy)

    def __post_init__(self) -> None:
        check_lr("lr", self.lr)
        check(self.beta > 0, "beta", self.beta, "> 0")
        check_coef("beta", self.beta)
        for name in ("r", "p", "g"):
            check(0 <= getattr(self, name) <= 1, name, getattr(self, name), "in [0, 1]")
        total = self.r + self.p + self.g
        check(total <= 1 + 1e-9, "r+p+g", round(total, 6), "<= 1 (route probabilities)")
        for name in ("rho", "pi", "gamma"):
            check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        check(
            self.extra_grad_mode in SAIL_EXTRA_GRAD_MODES,
            "extra_grad_mode",
            self.extra_grad_mode,
            f"one of {', '.join(SAIL_EXTRA_GRAD_MODES)}",
        )
        check(
            self.sf_baseline in SF_BASELINES,
            "sf_baseline",
            self.sf_baseline,
            f"one of {', '.join(SF_BASELINES)}",
        )
        check(
            self.sf_baseline == "none" or self.extra_grad_mode == "score_function",
            "sf_baseline",
            self.sf_baseline,
            "none unless extra_grad_mode=score_function",
        )

    def routes(self, n: int) -> Tensor:
        return sample_routes([self.r, self.p, self.g], n)  # (N,) Route codes

    def loss(self, pairs: Pairs) -> tuple[Tensor, dict]:
        chosen_logps, rejected_logps, routes = pairs.chosen_logps, pairs.rejected_logps, pairs.routes
        chosen_ratio = chosen_logps - pairs.ref_chosen_logps  # (N,)
        rejected_ratio = rejected_logps - pairs.ref_rejected_logps  # (N,)
        margin = chosen_ratio - rejected_ratio  # (N,) h
        # the policy labels DDP/DPP pairs: swap with probability 1 - sigmoid(beta h)
        by_policy = (routes == Route.DDP) | (routes == Route.DPP)  # (N,)
        swap = by_policy & (torch.rand(margin.shape) < policy_swap_probability(margin, self.beta))
        log_p = dpo_log_likelihood(torch.where(swap, -margin, margin), self.beta)  # (N,) f
        # coefficients by route code (DDP, DPP, DPR, DPO)
        label_coef = torch.tensor([self.rho, self.pi, 0.0, 0.0], dtype=margin.dtype)[routes]  # (N,)
        response_coef = torch.tensor([0.0, self.pi, self.gamma, 0.0], dtype=margin.dtype)[routes]  # (N,)
        loss = (-log_p + sail_label_term(log_p, label_coef)).mean() + sail_response_term(
            log_p, chosen_logps, rejected_logps, response_coef, self.extra_grad_mode, self.sf_baseline
        )
        stats = {f"train/route_{r.name.lower()}": (routes == r).float().mean().item() for r in Route}
        labelled = routes != Route.DPP  # (N,) pairs with a dataset or reward label, before relabelling
        if labelled.any():
            stats |= margin_stats(self.beta * chosen_ratio[labelled], self.beta * rejected_ratio[labelled])
        if by_policy.any():
            stats["train/relabel_rate"] = swap[by_policy].float().mean().item()
        return loss, stats
