"""Policy terms of the 2025-26 GRPO family: GSPO, CISPO, SAPO, GMPO, Clip-Cov, KL-Cov, DPPO, DRO (B rollouts,
T response tokens). Each returns a per-token loss (B, T) that the algorithm's loss_aggregation reduces,
and a (B, T) bool of the tokens it clipped, gated or penalised (the `train/clip_frac` numerator)."""

import torch
from torch import Tensor

from .correction import binary_kl
from .losses import LOG_RATIO_CLAMP, importance_ratio
from .stats import masked_mean


def sequence_clipped_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 3e-4,
    clip_high: float | None = 4e-4,
    log_ratio_clamp: float | None = LOG_RATIO_CLAMP,
    token_form: bool = True,
) -> tuple[Tensor, Tensor]:
    """GSPO (Zheng et al. 2025, arXiv 2507.18071, eq. 5-7): (loss, clipped), (B, T).

    s_i = exp(mean_t m (log pi - log pi_old)), the length-normalised sequence ratio. token_form: the
    token ratio s_it = sg[s_i] pi_t / sg[pi_t] has s_i's value and s_i grad log pi_t's gradient
    (GSPO-token, eq. 13; verl gspo); else every token holds s_i itself, its gradient through all the
    sequence's tokens (TRL, OpenRLHF, AReaL). The two agree unless the advantages or the weights that
    multiply the loss vary within a sequence.
    loss = -min(s A, clip(s, 1 - clip_low, 1 + clip_high) A), so a clipped sequence gives no gradient.
    With seq_mean_token_mean aggregation this is GSPO's sequence objective (verl gspo, TRL
    importance_sampling_level=sequence); (B, 1) or (B, T) advantages (GSPO-token). The mean log-ratio
    is clamped to +-log_ratio_clamp before exp (None: unclamped, TRL; verl clamps above at 10).
    """
    clip_high = clip_low if clip_high is None else clip_high
    if token_form:
        log_seq = masked_mean(logprobs.detach() - old_logprobs, mask, dim=-1)  # (B,)
        log_ratio = logprobs - logprobs.detach() + log_seq[:, None]  # (B, T) value log s_i
    else:
        log_ratio = masked_mean(logprobs - old_logprobs, mask, dim=-1)[:, None].expand_as(logprobs)
    if log_ratio_clamp is not None:  # beyond it the ratio is a constant, as importance_ratio's
        log_ratio = log_ratio.clamp(-log_ratio_clamp, log_ratio_clamp)
    ratio = torch.exp(log_ratio)  # (B, T)
    unclipped = ratio * advantages  # (B, T)
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * advantages  # (B, T)
    return -torch.min(unclipped, clipped), clipped < unclipped


def sequence_mean_advantages(advantages: Tensor, mask: Tensor) -> Tensor:
    """GSPO's sequence advantage as AReaL takes it: each sequence's mean advantage over the tokens of
    `mask` (the ones its ratio averages over), (B, 1); an empty sequence's is 0.

    The paper's A_i is one number per sequence; where advantages vary within a sequence (KL-shaped
    returns) verl, TRL and OpenRLHF keep each token's own, AReaL averages them
    (areal-project/AReaL@cbff54d areal/utils/functional/functional.py
    _compute_sequence_level_ratio_and_advantages: masked sum / count clamped at 1).
    """
    return masked_mean(advantages, mask, dim=-1)[:, None]  # (B, 1)


def cispo_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    clip_low: float | None = None,
    clip_high: float = 4.0,
    log_ratio_clamp: float | None = LOG_RATIO_CLAMP,
) -> tuple[Tensor, Tensor]:
    """CISPO (MiniMax-M1, arXiv 2506.13585, eq. 4-5) per token: (loss, clipped), (B, T).

    loss = -sg(clip(rho, 1 - clip_low, 1 + clip_high)) A log pi: the importance weight is clipped and
    detached, so every token keeps a gradient (A grad log pi, scaled). clip_low None: no lower bound
    (the paper's "large eps_low"; TRL's cispo). clipped: tokens whose weight the clip changed.
    """
    ratio = importance_ratio(logprobs.detach(), old_logprobs, log_ratio_clamp)  # (B, T)
    low = None if clip_low is None else 1.0 - clip_low
    weight = ratio.clamp(min=low, max=1.0 + clip_high)  # (B, T) detached
    return -weight * advantages * logprobs, weight != ratio


def soft_gated_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    tau_pos: float = 1.0,
    tau_neg: float = 1.05,
    log_ratio_clamp: float | None = LOG_RATIO_CLAMP,
) -> tuple[Tensor, Tensor]:
    """SAPO (Gao et al. 2025, Qwen, arXiv 2511.20347) per token: (loss, gated), (B, T).

    loss = -f(rho) A, f(r) = sigmoid(tau (r - 1)) 4 / tau, tau = tau_pos where A > 0 else tau_neg:
    a soft gate instead of the hard clip. f(1) = 2 / tau and f'(r) = 4 sigmoid (1 - sigmoid), 1 at
    r = 1 (on-policy: the plain policy gradient), decaying smoothly off-policy. gated: tokens whose
    gradient weight f'(rho) fell below 1/2 (align_lab's stand-in for a clip fraction).
    """
    ratio = importance_ratio(logprobs, old_logprobs, log_ratio_clamp)  # (B, T)
    tau = torch.full_like(advantages, tau_pos).where(advantages > 0, tau_neg)  # advantages' shape
    gate = torch.sigmoid(tau * (ratio - 1.0))  # (B, T)
    slope = 4 * gate.detach() * (1 - gate.detach())  # (B, T) f'(rho)
    return -gate * 4.0 / tau * advantages, slope < 0.5


def geometric_mean_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 0.4,
    clip_high: float = 0.4,
) -> tuple[Tensor, Tensor]:
    """GMPO (Zhao et al. 2025, arXiv 2507.20673, eq. 5): (loss per sequence (B,), clipped (B, T)).

    Each token's log-ratio is clipped to [-clip_low, clip_high] pessimistically for the sign of A
    (sgn(A) min(sgn(A) l, sgn(A) clip(l))); the sequence ratio is exp of their masked mean (the
    geometric mean of the token ratios), loss = -mean_t(A) * ratio. Defaults (e^-0.4, e^0.4): the
    paper's range. verl geo_mean averages the per-sequence losses over the batch.
    """
    log_ratio = logprobs - old_logprobs  # (B, T)
    sign = advantages.sign().expand_as(log_ratio)  # (B, T)
    bounded = log_ratio.clamp(-clip_low, clip_high)  # (B, T)
    kept = sign * torch.min(sign * log_ratio, sign * bounded)  # (B, T)
    sequence_advantage = masked_mean(advantages.expand_as(log_ratio), mask, dim=-1)  # (B,)
    loss = -sequence_advantage * torch.exp(masked_mean(kept, mask, dim=-1))  # (B,)
    return loss, log_ratio != bounded


def clip_cov_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    cov_ratio: float = 2e-4,
    cov_bounds: tuple[float, float] = (1.0, 5.0),
    log_ratio_clamp: float | None = LOG_RATIO_CLAMP,
) -> tuple[Tensor, Tensor]:
    """Clip-Cov (Cui et al. 2025, arXiv 2505.22617, section 4): (loss, dropped), (B, T).

    The PPO clipped surrogate, except that max(1, int(cov_ratio * tokens)) tokens, drawn uniformly
    (torch.randperm, the global RNG) among the unclipped response tokens whose centred covariance
    (A - mean A)(log pi - mean log pi) lies strictly inside cov_bounds, lose their gradient (loss 0).
    dropped: those tokens (verl clip_cov's pg_clipfrac counts only them).
    """
    clip_high = clip_low if clip_high is None else clip_high
    keep = mask.bool()  # (B, T)
    advantages = advantages.expand_as(logprobs)  # (B, T)
    ratio = importance_ratio(logprobs, old_logprobs, log_ratio_clamp)  # (B, T)
    unclipped, bounded = -advantages * ratio, -advantages * ratio.clamp(1 - clip_low, 1 + clip_high)
    clipped = (bounded > unclipped) & keep  # (B, T)
    lp = logprobs.detach()
    cov = (advantages - masked_mean(advantages, keep)) * (lp - masked_mean(lp, keep))  # (B, T)
    low, high = cov_bounds
    candidates = ((cov > low) & (cov < high) & keep & ~clipped).nonzero()  # (n, 2)
    dropped = torch.zeros_like(keep)  # (B, T)
    if len(candidates):
        count = max(int(cov_ratio * keep.sum().item()), 1)
        pick = candidates[torch.randperm(len(candidates))[:count]]  # (k, 2)
        dropped[pick[:, 0], pick[:, 1]] = True
    return torch.max(unclipped, bounded).masked_fill(dropped, 0.0), dropped


def kl_cov_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    cov_ratio: float = 2e-4,
    cov_kl_coef: float = 1.0,
    log_ratio_clamp: float | None = LOG_RATIO_CLAMP,
) -> tuple[Tensor, Tensor]:
    """KL-Cov (Cui et al. 2025, arXiv 2505.22617, section 4): (loss, penalised), (B, T).

    The unclipped surrogate -A rho on every token, plus cov_kl_coef * |log pi - log pi_old| on the
    max(1, int(cov_ratio * tokens)) response tokens of largest centred covariance
    (A - mean A)(log pi - mean log pi) (means over the response tokens; verl kl_cov).
    """
    keep = mask.bool()  # (B, T)
    advantages = advantages.expand_as(logprobs)  # (B, T)
    log_ratio = logprobs - old_logprobs  # (B, T)
    loss = -advantages * importance_ratio(logprobs, old_logprobs, log_ratio_clamp)  # (B, T)
    penalised = torch.zeros_like(keep)  # (B, T)
    if keep.any():
        adv, lp = advantages[keep].detach(), logprobs[keep].detach()  # (n,)
        cov = (adv - adv.mean()) * (lp - lp.mean())  # (n,)
        top = torch.topk(cov, max(1, int(len(cov) * cov_ratio))).indices  # (k,)
        rows, cols = keep.nonzero().unbind(-1)  # (n,) each
        penalised[rows[top], cols[top]] = True
    return torch.where(penalised, loss + cov_kl_coef * log_ratio.abs(), loss), penalised


DPPO_DIVERGENCES = ("tv", "binary_kl")


def dppo_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    divergence: str = "tv",
    bound_low: float = 0.2,
    bound_high: float | None = None,
    ratio_cap: float | None = 20.0,
    log_ratio_clamp: float | None = LOG_RATIO_CLAMP,
) -> tuple[Tensor, Tensor]:
    """DPPO-Binary (Rethinking the Trust Region in LLM RL, arXiv 2602.04879) per token: (loss, masked).

    A binary trust region on each token's divergence from the old policy replaces PPO's ratio clip:
    loss = -sg(min(rho, ratio_cap)) A log pi * valid, valid detached. divergence tv: with p = pi(token),
    valid = p - p_old <= bound_high where A > 0, p - p_old >= -bound_low elsewhere; binary_kl: the
    Bernoulli KL(p_old || p) <= bound_high where A > 0 (or p moved down), <= bound_low elsewhere (or p
    moved up): only a move away in the direction A pushes is masked. bound_high None: bound_low.
    ratio_cap None: the weight untruncated (verl truncates at clip_ratio_c = 20). masked: ~valid.
    """
    high = bound_low if bound_high is None else bound_high
    ratio = importance_ratio(logprobs.detach(), old_logprobs, log_ratio_clamp)  # (B, T)
    weight = ratio if ratio_cap is None else ratio.clamp(max=ratio_cap)  # (B, T) detached
    new = logprobs.detach()  # (B, T)
    if divergence == "tv":
        moved = new.exp() - old_logprobs.exp()  # (B, T) p - p_old
        valid = torch.where(advantages > 0, moved <= high, moved >= -bound_low)  # (B, T)
    else:
        kl = binary_kl(old_logprobs, new)  # (B, T) KL(p_old || p)
        up = new >= old_logprobs  # (B, T)
        valid = torch.where(advantages > 0, (kl <= high) | ~up, (kl <= bound_low) | up)
    return -weight * advantages * logprobs * valid, ~valid


def dro_surrogate(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, beta: float) -> Tensor:
    """DRO's on-policy loss per token (Richemond et al. 2024, arXiv 2405.19107, in the quadratic form of
    verl's / Tinker's `dro` policy loss): -(A log pi - beta / 2 (log pi - log pi_old)^2), (B, T).

    The square of the log-ratio replaces a clip: the policy-gradient term A log pi is pulled back
    towards pi_old in proportion to how far a token moved (gradient -A + beta (log pi - log pi_old)).
    """
    return -(advantages * logprobs - 0.5 * beta * (logprobs - old_logprobs).square())
