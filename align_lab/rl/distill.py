"""Distillation to a teacher: the sampled per-token reverse KL as an advantage (on-policy distillation,
Thinking Machines 2025; Agarwal et al. 2024 with beta = 1), GKD's generalized Jensen-Shannon divergence
over the vocabulary (Agarwal et al. 2024, Eq. 1) and its lmbda draw of whose samples a step trains on.
Shapes: B rows, T response tokens, V vocabulary."""

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


# fp32 (T, V) tensors generalized_jsd adds to an update row beyond the policy's own logits: the teacher's
# logits and the divergence's saved and transient tensors, measured 9.3 + 1 copies for 0 < beta < 1 (the
# mixture's stack and logsumexp), 2.2 + 1 at beta 0 or 1 (scripts/divergence_copies.py: 8 rows x 33
# tokens x 49,152, peak RSS of the backward); the memory plan reads them (train/memory/footprint.py)
MIXTURE_COPIES, LIMIT_COPIES = 10.3, 3.2


def jsd_row_copies(beta: float) -> float:
    """fp32 (T, V) copies an update row holds for generalized_jsd at `beta` (MIXTURE/LIMIT_COPIES)."""
    return LIMIT_COPIES if beta in (0, 1) else MIXTURE_COPIES


def generalized_jsd(
    student_logits: Tensor, teacher_logits: Tensor, beta: float, temperature: float = 1.0
) -> Tensor:
    """(B, T) GKD's generalized JSD per token, summed over the vocabulary (Agarwal et al. 2024, Eq. 1):
    beta * KL(T || M) + (1 - beta) * KL(S || M) with M = beta T + (1 - beta) S; beta = 0 the forward
    KL(T || S), beta = 1 the reverse KL(S || T) (the limits, as TRL's generalized_jsd_loss takes them).

    Args:
        student_logits, teacher_logits: (B, T, V), divided by `temperature` before the softmax."""
    wide = torch.promote_types(student_logits.dtype, torch.float32)  # bf16 logits: the softmax in fp32
    s = torch.log_softmax(student_logits.to(wide) / temperature, dim=-1)  # (B, T, V)
    t = torch.log_softmax(teacher_logits.to(wide) / temperature, dim=-1)  # (B, T, V)
    if beta == 0:
        return (t.exp() * (t - s)).sum(-1)
    if beta == 1:
        return (s.exp() * (s - t)).sum(-1)
    m = torch.logsumexp(torch.stack([s + math.log(1 - beta), t + math.log(beta)]), dim=0)  # (B, T, V)
    return beta * (t.exp() * (t - m)).sum(-1) + (1 - beta) * (s.exp() * (s - m)).sum(-1)


def on_policy_step(lmbda: float, seed: int, step: int) -> bool:
    """GKD's mixture (Agarwal et al. 2024, Algorithm 1): True with probability `lmbda`, the step trains on
    the student's own samples, else on the teacher's. TRL draws random.random() <= lmbda each step; here
    u ~ U[0, 1) is drawn from (seed, step) alone, so a resumed or re-run step draws the same."""
    u = torch.rand((), generator=torch.Generator().manual_seed(seed * 1_000_003 + step), device="cpu").item()
    return u < lmbda


def self_distillation_loss(
    logprobs: Tensor, teacher_logprobs: Tensor, old_logprobs: Tensor, is_clip: float | None
) -> Tensor:
    """(B, T) SDPO's per-token self-distillation loss on the sampled tokens (Hübotter et al. 2026; TRL's
    sampled_token mode): (log pi(y_t) - log pi_teacher(y_t)), detached, times log pi(y_t), so its gradient
    is the one-sample policy gradient of the reverse KL(pi || pi_teacher) with that term as the (negated)
    advantage; times the truncated importance weight min(pi / pi_old, is_clip), detached, its log-ratio
    clamped to [-20, 20] (is_clip None: no weight)."""
    loss = (logprobs - teacher_logprobs).detach() * logprobs
    if is_clip is None:
        return loss
    log_ratio = (logprobs - old_logprobs).detach().clamp(-20.0, 20.0)
    return loss * log_ratio.exp().clamp(max=is_clip)


@torch.no_grad()
def follow(teacher: torch.nn.Module, policy: torch.nn.Module, rate: float) -> None:
    """The exponential moving average of the policy's weights (SDPO's EMA teacher; TRL's teacher sync):
    each teacher parameter <- (1 - rate) * itself + rate * the policy's, in place."""
    for kept, moved in zip(teacher.parameters(), policy.parameters(), strict=True):
        kept.lerp_(moved.detach().to(kept.dtype), rate)
