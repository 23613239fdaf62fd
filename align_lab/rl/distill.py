"""Distillation to a teacher: the sampled per-token reverse KL as an advantage (on-policy distillation,
Thinking Machines 2025; Agarwal et al. 2024 with beta = 1) and GKD's generalized Jensen-Shannon divergence
over the vocabulary (Agarwal et al. 2024, Eq. 1). Shapes: B rows, T response tokens, V vocabulary."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def reverse_kl_advantages(
    logprobs: Tensor, teacher_logprobs: Tensor, mask: Tensor, coef: float = 1.0
) -> Tensor:
    """(B, T) A_t = -coef * (log pi(y_t) - log pi_teacher(y_t)) on the student's own token y_t, 0 on padding.

    log pi - log pi_teacher at a token the student drew is the one-sample estimate of the per-token reverse
    KL(pi || pi_teacher) (its expectation under pi is the KL), so minus it is a dense reward with no reward
    model: the policy gradient with this advantage descends the reverse KL (Thinking Machines' "on-policy
    distillation"; no return-to-go: each token is credited with its own term only)."""
    return -coef * (logprobs - teacher_logprobs) * mask


def generalized_jsd(
    student_logits: Tensor, teacher_logits: Tensor, beta: float, temperature: float = 1.0
) -> Tensor:
    """(B, T) GKD's generalized JSD per token, summed over the vocabulary (Agarwal et al. 2024, Eq. 1):
    beta * KL(T || M) + (1 - beta) * KL(S || M) with M = beta T + (1 - beta) S; beta = 0 the forward
    KL(T || S), beta = 1 the reverse KL(S || T) (the limits, as TRL's generalized_jsd_loss takes them).

    Args:
        student_logits, teacher_logits: (B, T, V), divided by `temperature` before the softmax."""
    s = torch.log_softmax(student_logits / temperature, dim=-1)  # (B, T, V)
    t = torch.log_softmax(teacher_logits / temperature, dim=-1)  # (B, T, V)
    if beta == 0:
        return (t.exp() * (t - s)).sum(-1)
    if beta == 1:
        return (s.exp() * (s - t)).sum(-1)
    m = torch.logsumexp(torch.stack([s + math.log(1 - beta), t + math.log(beta)]), dim=0)  # (B, T, V)
    return beta * (t.exp() * (t - m)).sum(-1) + (1 - beta) * (s.exp() * (s - m)).sum(-1)
