"""Reward shaping, returns and advantage baselines (B rollouts, G per prompt, T response tokens)."""

import torch
from torch import Tensor


def shape_token_rewards(
    scores: Tensor, kl: Tensor, mask: Tensor, kl_coef: float, turn_rewards: Tensor | None = None
) -> Tensor:
    """Ziegler 2019 per-token reward -kl_coef * KL_t * m_t + score on the last kept token: (B, T).

    scores: (B,) sequence scores; kl: (B, T) reward-side per-token KL (kl_penalty on old vs ref
    log-probs). The score goes where mask was last 1 (OpenRLHF compute_reward); a row with an empty
    mask gets no score. Zero on padding. turn_rewards: (B, T) a multi-turn episode's per-turn rewards,
    each at its turn's last policy token, added where mask is 1 (None: single turn, nothing added).
    """
    keep = mask.bool()  # (B, T)
    positions = torch.arange(keep.shape[-1], device=keep.device)  # (T,)
    last = torch.where(keep, positions, -1).amax(dim=-1)  # (B,) last kept index, -1 if none
    at_last = positions == last.unsqueeze(-1)  # (B, T)
    penalty = torch.where(keep, -kl_coef * kl, 0)  # (B, T)
    rewards = penalty + torch.where(at_last, scores.unsqueeze(-1), 0)  # (B, T)
    if turn_rewards is not None:
        rewards = rewards + torch.where(keep, turn_rewards, 0)
    return rewards


def shape_sequence_rewards(scores: Tensor, kl: Tensor, mask: Tensor, kl_coef: float) -> Tensor:
    """Back-to-Basics sequence reward R = r - kl_coef * sum_t m_t KL_t (Ahmadian et al. 2024): (B,).

    The whole response is one action (REINFORCE, RLOO, RAFT); kl: (B, T) reward-side per-token KL.
    """
    return scores - kl_coef * torch.where(mask.bool(), kl, 0).sum(-1)


def broadcast_to_tokens(advantages: Tensor, mask: Tensor) -> Tensor:
    """A sequence-level advantage (B,) on every kept token of its response, 0 on padding: (B, T)."""
    return torch.where(mask.bool(), advantages.unsqueeze(-1), 0)


def gae(
    rewards: Tensor,
    values: Tensor,
    mask: Tensor,
    gamma: float,
    lam: float,
    steps: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016): (advantages, returns), each (B, T).

    delta_t = R_t + gamma V_{t+1} - V_t, A_t = delta_t + gamma lam A_{t+1}, returns = A + V (the
    value targets). Padding is skipped: rewards and values there are ignored, V after the last kept
    token is 0, and both outputs are 0 on padding. For trailing padding the recursion is exactly
    OpenRLHF's, TRL's and MOSS-RLHF's. Where the score sits is the caller's: align_lab (PPO) adds it
    to the last response token, as OpenRLHF and MOSS-RLHF do; TRL's PPO adds it one position after
    the last response token (the first padding position, which TRL keeps), so its values train one
    position further and its advantages differ. Inputs are used as given: detach them first.

    Multi-turn: a masked token inside the response (an observation) is skipped the same way, carrying
    V and A across it (verl compute_gae_advantage_return). `steps` (B, T), where it is 1 and `mask` 0,
    makes such a token a time step of reward 0 and value 0 instead (OpenRLHF: it discounts by gamma
    and gamma lam); None: the steps are the kept tokens.
    """
    keep = mask.bool()  # (B, T)
    step = keep if steps is None else keep | steps.bool()  # (B, T) the tokens that are time steps
    rewards = torch.where(keep, rewards, 0)  # (B, T)
    values = torch.where(keep, values, 0)  # (B, T)
    next_value = torch.zeros_like(values[:, 0])  # (B,) V of the next step
    next_adv = torch.zeros_like(values[:, 0])  # (B,) A of the next step
    reversed_adv = []
    for t in reversed(range(values.shape[-1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        adv = delta + gamma * lam * next_adv  # (B,)
        # A skipped token carries the next step's value and advantage through unchanged.
        next_adv = torch.where(step[:, t], adv, next_adv)
        next_value = torch.where(step[:, t], values[:, t], next_value)
        reversed_adv.append(torch.where(keep[:, t], adv, 0))
    advantages = torch.stack(reversed_adv[::-1], dim=-1)  # (B, T)
    return advantages, advantages + values


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float, steps: Tensor | None = None) -> Tensor:
    """Return-to-go G_t = sum_{k>=t} gamma^(k-t) R_k over kept tokens (REINFORCE++ Eq. 4): (B, T).

    Equal to gae with V = 0 and lam = 1, so padding (and, multi-turn, an observation token) is
    skipped the same way, or with `steps` counted as a step of reward 0; 0 on padding.
    REINFORCE++ uses gamma = 1.
    """
    advantages, _ = gae(rewards, torch.zeros_like(rewards), mask, gamma, 1.0, steps)
    return advantages


STD_SCOPES = ("group", "batch")


def _centred_groups(scores: Tensor, group_size: int) -> Tensor:
    """(B/G, G) scores minus their group mean, for contiguous groups of G samples per prompt."""
    if group_size < 2:
        raise ValueError(f"group_size={group_size}; must be >= 2 (a group of one has no baseline)")
    if scores.numel() % group_size:
        raise ValueError(f"group_size={group_size} does not divide the {scores.numel()} scores")
    groups = scores.reshape(-1, group_size)  # (B/G, G)
    # Shift by a member first: an all-equal group is then exactly 0, not rounding noise that a
    # division by its (equally tiny) std would turn into advantages of order 1.
    shifted = groups - groups[:, :1]  # (B/G, G)
    return shifted - shifted.mean(dim=-1, keepdim=True)  # (B/G, G)


def leave_one_out(scores: Tensor, group_size: int) -> Tensor:
    """RLOO advantage r_i - mean_{j != i} r_j (Kool et al. 2019; Ahmadian et al. 2024): (B,).

    scores: (B,), the G = group_size samples of a prompt contiguous. Computed as
    G / (G - 1) * (r_i - mean_j r_j), the same quantity.
    """
    centred = _centred_groups(scores, group_size)  # (B/G, G)
    return (centred * (group_size / (group_size - 1))).reshape(scores.shape)


def group_normalize(
    scores: Tensor,
    group_size: int,
    scale_by_std: bool = True,
    unbiased: bool = True,
    eps: float = 1e-4,
    std_scope: str = "group",
) -> Tensor:
    """GRPO group advantage (r - group mean) / (group std + eps) (Shao et al. 2024): (B,).

    scores: (B,), the G = group_size samples of a prompt contiguous. Defaults match TRL (unbiased
    std, eps 1e-4); OpenRLHF group_norm is eps=1e-9. scale_by_std=False is mean subtraction only
    (Dr. GRPO; REINFORCE++-baseline step 1). A group with no spread gives exactly 0, even at eps=0.
    std_scope="batch" divides by one std of all B scores instead (TRL scale_rewards="batch").
    """
    if std_scope not in STD_SCOPES:
        raise ValueError(f"std_scope={std_scope!r}; allowed: {', '.join(STD_SCOPES)}")
    centred = _centred_groups(scores, group_size)  # (B/G, G)
    if scale_by_std:
        if std_scope == "batch":
            std = scores.std(correction=1 if unbiased else 0)  # () over the whole batch
        else:
            dof = group_size - 1 if unbiased else group_size
            std = (centred.square().sum(dim=-1, keepdim=True) / dof).sqrt()  # (B/G, 1)
        denom = std + eps  # (B/G, 1) or ()
        centred = centred / torch.where(denom > 0, denom, 1)  # zero spread: 0 / 1, not 0 / 0
    return centred.reshape(scores.shape)


def decoupled_group_normalize(
    source_scores: Tensor,
    weights: tuple[float, ...],
    group_size: int,
    scale_by_std: bool = True,
    unbiased: bool = True,
    eps: float = 1e-4,
) -> Tensor:
    """GDPO's first two steps (Liu et al. 2026, NVIDIA, arXiv 2601.05242): sum_k w_k A_k, (B,), where
    A_k = group_normalize(r_k) normalises each reward source k within its group on its own.

    source_scores: (B, K), one column per source. Normalising the weighted sum instead (GRPO) lets the
    source with the widest spread set every advantage; per source, each keeps its own resolution.
    """
    total = torch.zeros_like(source_scores[:, 0])  # (B,)
    for k, w in enumerate(weights):
        total = total + w * group_normalize(source_scores[:, k], group_size, scale_by_std, unbiased, eps)
    return total


def best_of_group(scores: Tensor, group_size: int) -> Tensor:
    """RAFT selection (Dong et al. 2023): 1.0 on the top-scoring sample of each group, else 0: (B,).

    scores: (B,), the G = group_size samples of a prompt contiguous; ties go to the first sample.
    """
    groups = scores.reshape(-1, group_size)  # (B/G, G)
    best = torch.nn.functional.one_hot(groups.argmax(dim=-1), group_size)  # (B/G, G)
    return best.to(scores.dtype).reshape(scores.shape)


def standardize(x: Tensor, eps: float = 1e-4) -> Tensor:
    """(x - mean) / (std + eps) over all of x, std with ddof=1 (TRL RLOO normalize_advantages): x's shape."""
    return (x - x.mean()) / (x.std() + eps)


def clip_reward(x: Tensor, bound: float | None, low: float | None = None) -> Tensor:
    """x clamped to [-low, bound] (OpenRLHF --reward.clip_range LOW HIGH, default -10 10): x's shape.

    low=None is bound (symmetric); a bound that is None is not applied, so (None, None) returns x.
    """
    low = bound if low is None else low
    if bound is None and low is None:
        return x
    return x.clamp(min=None if low is None else -low, max=bound)
