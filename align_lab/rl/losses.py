"""Policy, value and preference losses (B rollouts, T response tokens, N preference pairs)."""

import torch
import torch.nn.functional as F
from torch import Tensor

from .stats import masked_mean, masked_sum

AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "constant")
DPO_LOSS_TYPES = ("sigmoid", "ipo", "hinge")


def aggregate_loss(
    loss: Tensor,
    mask: Tensor,
    mode: str = "token_mean",
    max_len: int | None = None,
    rows: Tensor | None = None,
) -> Tensor:
    """Per-token loss (B, T) -> scalar, by one of the aggregation conventions of spec.md 1.3.

    token_mean: sum m L / sum m (DAPO, OpenRLHF; longer sequences weigh more).
    seq_mean_token_mean: mean over sequences of per-sequence token means (original GRPO).
    seq_mean_token_sum: mean over sequences of per-sequence token sums (Back-to-Basics sequence
    level). constant: sum m L / (B * max_len), max_len defaulting to T (Dr. GRPO); max_len is
    ignored by the other modes. A sequence with an empty mask adds 0 but still counts in B, unless
    `rows` ((B,) bool) leaves it out of the two sequence means (verl's agg_loss drops a sequence its
    rejection sampling emptied); token_mean and constant ignore `rows`.
    """
    if mode == "token_mean":
        return masked_mean(loss, mask)
    if mode in ("seq_mean_token_mean", "seq_mean_token_sum"):
        reduce = masked_mean if mode == "seq_mean_token_mean" else masked_sum
        per_sequence = reduce(loss, mask, dim=-1)  # (B,)
        return per_sequence.mean() if rows is None else masked_mean(per_sequence, rows)
    if mode == "constant":
        batch, length = loss.shape
        return masked_sum(loss, mask) / (batch * (length if max_len is None else max_len))
    raise ValueError(f"mode={mode!r}; allowed: {', '.join(AGGREGATIONS)}")


LOG_RATIO_CLAMP = 20.0  # OpenRLHF's and verl's bound on log(pi / pi_old) before exp


def importance_ratio(
    logprobs: Tensor, old_logprobs: Tensor, log_ratio_clamp: float | None = LOG_RATIO_CLAMP
) -> Tensor:
    """rho = exp(logprobs - old_logprobs), the log-ratio first clamped to [-c, c]: logprobs' shape.

    c = 20 is OpenRLHF's (PolicyLoss) and verl's (compute_policy_loss); None exponentiates the
    unclamped log-ratio, as TRL does (GRPO, RLOO, PPO). Outside [-c, c] the clamp also stops the
    gradient: rho is the constant e^{+-c} there.
    """
    log_ratio = logprobs - old_logprobs  # logprobs' shape
    if log_ratio_clamp is not None:
        log_ratio = log_ratio.clamp(-log_ratio_clamp, log_ratio_clamp)
    return torch.exp(log_ratio)


def clipped_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    dual_clip: float | None = None,
    log_ratio_clamp: float | None = LOG_RATIO_CLAMP,
) -> tuple[Tensor, Tensor]:
    """PPO clipped surrogate (Schulman et al. 2017) per token: (loss (B, T), clipped (B, T) bool).

    loss = -min(rho A, clip(rho, 1 - clip_low, 1 + clip_high) A), rho = importance_ratio(logprobs,
    old_logprobs, log_ratio_clamp) (+-20 as OpenRLHF and verl; None: unclamped, as TRL). clip_high
    defaults to clip_low (raise it for DAPO's clip-higher). dual_clip = c > 1 (Ye et al. 2020; verl
    clip_ratio_c, OpenRLHF dual_clip): for A < 0 the objective is max(min(...), c A), i.e. loss =
    min(loss, -c A). clipped is True where a clip bound is active, so the token gives no gradient;
    its masked mean is the clip fraction. advantages may be (B, 1).
    """
    clip_high = clip_low if clip_high is None else clip_high
    ratio = importance_ratio(logprobs, old_logprobs, log_ratio_clamp)  # (B, T)
    unclipped = ratio * advantages  # (B, T)
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * advantages  # (B, T)
    loss = -torch.min(unclipped, clipped)  # (B, T)
    is_clipped = clipped < unclipped  # (B, T)
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip={dual_clip}; must be > 1")
        cap = -dual_clip * advantages  # (B, T) or (B, 1)
        is_dual = (advantages < 0) & (loss > cap)  # (B, T)
        loss = torch.where(is_dual, cap, loss)
        is_clipped = is_clipped | is_dual
    return loss, is_clipped


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, clip: float | None) -> Tensor:
    """PPO clipped value loss (OpenRLHF ValueLoss, TRL PPO) per token: (B, T).

    1/2 max((V - R)^2, (V_clip - R)^2), V_clip = V_old + clip(V - V_old, -clip, clip);
    clip=None gives the unclipped 1/2 (V - R)^2.
    """
    loss = (values - returns).square() / 2  # (B, T)
    if clip is None:
        return loss
    values_clipped = old_values + (values - old_values).clamp(-clip, clip)  # (B, T)
    return torch.max(loss, (values_clipped - returns).square() / 2)


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """DPO (Rafailov 2023), cDPO, IPO (Azar 2023), SLiC hinge: (losses, chosen_r, rejected_r), (N,).

    Inputs: (N,) sequence log-probs, sums by default (sequence_logprobs); pass per-token averages
    for TRL's length-normalised IPO. h = (pi_c - ref_c) - (pi_r - ref_r).
    sigmoid: -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h), eps = label_smoothing
    (cDPO). ipo: (h - 1 / (2 beta))^2, beta playing tau. hinge: relu(1 - beta h).
    chosen_r / rejected_r are the implicit rewards beta (policy - ref), detached.
    """
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"loss_type={loss_type!r}; allowed: {', '.join(DPO_LOSS_TYPES)}")
    if label_smoothing and loss_type != "sigmoid":
        raise ValueError(f"label_smoothing={label_smoothing} is only defined for loss_type='sigmoid'")
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (N,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (N,)
    margin = chosen_logratios - rejected_logratios  # (N,) h
    if loss_type == "sigmoid":
        log_p_chosen = F.logsigmoid(beta * margin)  # (N,) log P(chosen > rejected)
        log_p_rejected = F.logsigmoid(-beta * margin)  # (N,)
        losses = -(1 - label_smoothing) * log_p_chosen - label_smoothing * log_p_rejected
    elif loss_type == "ipo":
        losses = (margin - 1 / (2 * beta)).square()  # (N,)
    else:
        losses = F.relu(1 - beta * margin)  # (N,)
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()
