"""Token log-probs, sequence log-probs and entropy from logits (B rollouts, T tokens, V vocab).

The selective forms take raw (B, T, V) logits in the model's dtype and work through them a few rows at
a time, so no fp32 (B, T, V) copy of the whole batch (log_softmax output, temperature-scaled or
upcast logits, softmax) is ever made; for a 49k vocabulary one such copy of 64 x 64 positions is 0.8 GB.
"""

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


CHUNK_ELEMENTS = 1 << 24  # logits handled at once by the selective forms: their fp32 copies stay <= 64 MB


def _row_chunks(logits: Tensor) -> int:
    """Rows per chunk: as many (T, V) rows as fit CHUNK_ELEMENTS (all of a small model's at once)."""
    per_row = max(1, logits[0].numel()) if len(logits) else 1
    return max(1, CHUNK_ELEMENTS // per_row)


def _scaled(logits: Tensor, temperature: float) -> Tensor:
    logits = logits.float()  # no copy for fp32 logits
    return logits if temperature == 1.0 else logits / temperature


def selective_logprobs(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> Tensor:
    """log_softmax(logits / temperature) at labels without a (B, T, V) fp32 copy: (B, T, V) -> (B, T).

    Equals logprobs_from_logits(logits.float() / temperature, labels) up to float rounding; z_y -
    logsumexp(z) keeps only the logits themselves for the backward pass (TRL's selective_log_softmax).
    """
    out, n = [], _row_chunks(logits)
    for rows, ids in zip(logits.split(n), labels.split(n), strict=True):
        z = _scaled(rows, temperature)  # (r, T, V)
        out.append(z.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, dim=-1))  # (r, T)
    return torch.cat(out)  # (B, T)


def selective_entropy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """entropy_from_logits(logits / temperature) a few rows at a time: (B, T, V) -> (B, T).

    Run it under torch.no_grad() unless the entropy is a loss term: with a graph, every row's softmax
    is kept for the backward pass.
    """
    chunks = logits.split(_row_chunks(logits))
    return torch.cat([entropy_from_logits(_scaled(rows, temperature)) for rows in chunks])
