"""Preference-pair math beyond the DPO loss: pair ordering, route sampling, SAIL's extra terms (N pairs).

SAIL (Ding et al. 2024, arXiv 2406.15567; spec.md 16): with f = log sigmoid(beta h) the DPO
log-likelihood of a pair, SAIL adds a *label term* on pairs labelled by the policy itself and a
*response term* on pairs whose responses the policy sampled. Sequence log-probs are sums.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

SAIL_EXTRA_GRAD_MODES = ("reference_code", "score_function")
SF_BASELINES = ("none", "batch_mean")


def first_is_chosen(scores: Tensor) -> Tensor:
    """Online DPO ordering (TRL OnlineDPOTrainer): scores (N, 2) of two samples -> (N,) bool.

    True where the first sample is the chosen one: first >= second, so a tie goes to the first.
    """
    return scores[:, 0] >= scores[:, 1]


def sample_routes(probs: list[float], n: int, generator: torch.Generator | None = None) -> Tensor:
    """Independent categorical draws for n pairs (SAIL's per-pair Multinomial): (N,) long.

    Category i < len(probs) has probability probs[i]; category len(probs) takes the remainder
    1 - sum(probs) (plain offline DPO in SAIL's order DDP, DPP, DPR, DPO).
    """
    rest = 1.0 - sum(probs)
    if min(probs, default=0.0) < 0 or rest < -1e-9:
        raise ValueError(f"probs={probs}: must be >= 0 and sum to <= 1")
    weights = torch.tensor([*probs, max(rest, 0.0)], dtype=torch.float64)  # (K+1,)
    return torch.multinomial(weights, n, replacement=True, generator=generator)  # (N,)


def policy_swap_probability(margin: Tensor, beta: float) -> Tensor:
    """P(swap) = 1 - sigmoid(beta h) = sigmoid(-beta h): relabelling a pair by the policy's own
    Bradley-Terry preference (SAIL DDP/DPP, spec.md 16.2 steps 2-3): (N,), no gradient."""
    return torch.sigmoid(-beta * margin.detach())


def sail_label_term(log_p: Tensor, coef: Tensor | float) -> Tensor:
    """SAIL label term -1/2 c f^2 per pair, f = log sigmoid(beta h) (with gradient): (N,).

    Added to the DPO loss -f, it scales the DPO gradient by (1 - c |f|) (spec.md 16.2 step 4).
    """
    return -0.5 * coef * log_p.square()


def sail_response_term(
    log_p: Tensor,
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    coef: Tensor | float,
    mode: str = "reference_code",
    baseline: str = "none",
) -> Tensor:
    """SAIL response term as a zero-valued surrogate whose gradient is the extra gradient: scalar.

    Per pair, for y in (y_w, y_l) with lp = log pi(y|x) (summed, with gradient), f = log_p detached:
    reference_code (official backward hook, 16.2 step 5): dL/dlp += -c f / lp, summed over pairs
      (not divided by N although the DPO loss is a batch mean).
    score_function (16.1, the gradient of -E_{y~pi}[f]): dL/dlp += -c (f - b), a batch mean like the
      DPO loss; b = 0 (baseline="none") or the mean f of the pairs with c > 0 ("batch_mean").
    Surrogate = g * (lp - stopgrad(lp)): its value is 0, so the logged loss stays SAIL's loss.
    """
    f = log_p.detach()  # (N,)
    coef = torch.as_tensor(coef, dtype=f.dtype)
    if mode == "reference_code":
        total = torch.zeros((), dtype=f.dtype)
        for lp in (chosen_logps, rejected_logps):
            grad = -coef * f / lp.detach().clamp(max=-1e-8)  # (N,) clamp: a certain response has lp = 0
            total = total + (grad * (lp - lp.detach())).sum()
        return total
    if mode == "score_function":
        if baseline not in SF_BASELINES:
            raise ValueError(f"baseline={baseline!r}; allowed: {', '.join(SF_BASELINES)}")
        used = (coef * torch.ones_like(f)) > 0  # (N,) pairs that get the term
        b = f[used].mean() if baseline == "batch_mean" and used.any() else 0.0
        grad = -coef * (f - b)  # (N,)
        both = (chosen_logps - chosen_logps.detach()) + (rejected_logps - rejected_logps.detach())
        return (grad * both).mean()
    raise ValueError(f"mode={mode!r}; allowed: {', '.join(SAIL_EXTRA_GRAD_MODES)}")


def dpo_log_likelihood(margin: Tensor, beta: float) -> Tensor:
    """f = log sigmoid(beta h), the Bradley-Terry log-likelihood of the pair's label (DPO): (N,)."""
    return F.logsigmoid(beta * margin)


def simpo_loss(
    chosen_logps: Tensor, rejected_logps: Tensor, beta: float = 2.0, gamma_beta_ratio: float = 0.5
) -> Tensor:
    """SimPO (Meng et al. 2024, arXiv 2405.14734, eq. 6): (N,) losses, no reference model.

    -log sigmoid(beta (avg log pi(y_w) - avg log pi(y_l)) - gamma), gamma = gamma_beta_ratio * beta;
    the inputs are per-token averaged log-probs (the length normalisation is the method).
    """
    return -F.logsigmoid(beta * (chosen_logps - rejected_logps) - gamma_beta_ratio * beta)


def orpo_odds_ratio(chosen_logps: Tensor, rejected_logps: Tensor) -> Tensor:
    """ORPO (Hong et al. 2024, arXiv 2403.07691, eq. 6-7): (N,) log sigmoid(log odds(y_w) - log odds(y_l)),
    odds(y) = P / (1 - P), P = exp(per-token averaged log-prob); the loss subtracts lambda times it."""
    log_odds = (chosen_logps - rejected_logps) - (
        torch.log1p(-torch.exp(chosen_logps)) - torch.log1p(-torch.exp(rejected_logps))
    )  # (N,)
    return F.logsigmoid(log_odds)


def kto_loss(
    chosen_logratios: Tensor,
    rejected_logratios: Tensor,
    kl: Tensor,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> Tensor:
    """KTO (Ethayarajh et al. 2024, arXiv 2402.01306, eq. 8): (N_d + N_u,) losses, desirable first.

    The log-ratios log pi - log pi_ref are of desirable (N_d,) and undesirable (N_u,) samples; kl the
    detached reference point z_0 >= 0. Desirable: lambda_D (1 - sigmoid(beta (r - z_0))); undesirable:
    lambda_U (1 - sigmoid(beta (z_0 - r))) (TRL KTOTrainer's kto_loss, loss_type kto).
    """
    desirable = desirable_weight * (1 - torch.sigmoid(beta * (chosen_logratios - kl)))  # (N_d,)
    undesirable = undesirable_weight * (1 - torch.sigmoid(beta * (kl - rejected_logratios)))  # (N_u,)
    return torch.cat([desirable, undesirable])
