"""Token log-probs, sequence log-probs and entropy from logits (B rollouts, T tokens, V vocab)."""

import torch
from torch import Tensor

from .stats import masked_mean, masked_sum


def logprobs_from_logits(logits: Tensor, labels: Tensor) -> Tensor:
    """LM token log-likelihood, log_softmax(logits) at labels: (B, T, V), (B, T) -> (B, T).

    logits[:, t] must already be the prediction for labels[:, t] (shift before calling).
    """
    logps = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    return logps.gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # (B, T)


def sequence_logprobs(logprobs: Tensor, mask: Tensor, average: bool = False) -> Tensor:
    """Sequence log-prob log pi(y|x) = sum_t m_t l_t (DPO convention), or the per-token mean: (B,).

    average=True gives the length-normalised log-prob (TRL IPO, SimPO-style); an empty mask gives 0.
    """
    if average:
        return masked_mean(logprobs, mask, dim=-1)
    return masked_sum(logprobs, mask, dim=-1)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Softmax entropy logsumexp(z) - sum_v p_v z_v per position (TRL form): (..., V) -> (...).

    -inf logits (masked vocabulary) are allowed: they contribute 0 instead of 0 * inf = nan.
    """
    logits = logits.clamp(min=torch.finfo(logits.dtype).min)  # (..., V) finite, so p * z is 0 not nan
    probs = torch.softmax(logits, dim=-1)  # (..., V)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)  # (...)
