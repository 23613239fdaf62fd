"""Off-policy (rollout) correction: importance weights and rejection masks from the log-ratio of the
policy the loss trains against to the policy that sampled (B rollouts, T response tokens).

Yao et al. 2025 ("Your efficient RL framework secretly brings you off-policy RL training": TIS), Liu,
Li et al. 2025 ("When speed kills stability": MIS, rejection sampling), IcePop (Ling team 2025). The
peers' conventions (verl, OpenRLHF, TRL, slime, AReaL) are the arguments; docs/off_policy.md maps
each peer to its values.
"""

import torch
from torch import Tensor

CORRECTIONS = ("none", "tis", "mis", "token_mask", "seq_mask")
CORRECTION_LEVELS = ("token", "sequence")
SEQUENCE_RATIOS = ("product", "geometric_mean")
# verl's SAFETY_BOUND: every log-ratio is clamped to +-20 before exp, so no weight is inf (inf * 0 = NaN)
SAFETY_LOG_RATIO = 20.0


def sequence_log_ratio(log_ratio: Tensor, mask: Tensor, how: str = "product") -> Tensor:
    """log of one ratio per sequence, (B, 1): the masked sum of token log-ratios (`product`: verl
    sequence IS, TRL sequence_*) or their masked mean (`geometric_mean`: OpenRLHF seq-mask-tis,
    AReaL, GSPO; an empty row's is 0)."""
    total = (log_ratio * mask).sum(-1, keepdim=True)  # (B, 1)
    if how == "product":
        return total
    if how == "geometric_mean":
        return total / mask.sum(-1, keepdim=True).clamp(min=1)
    raise ValueError(f"sequence_ratio={how!r}; allowed: {', '.join(SEQUENCE_RATIOS)}")


def inside(ratio: Tensor, low: float | None, high: float | None) -> Tensor:
    """low <= ratio <= high, a None bound absent: bool, ratio's shape."""
    ok = torch.ones_like(ratio, dtype=torch.bool)
    if low is not None:
        ok = ok & (ratio >= low)
    if high is not None:
        ok = ok & (ratio <= high)
    return ok


def truncate(ratio: Tensor, low: float | None, high: float | None) -> Tensor:
    """ratio clamped to [low, high], a None bound absent (TIS)."""
    return ratio if low is None and high is None else ratio.clamp(low, high)


def correction_weights(
    log_ratio: Tensor,
    mask: Tensor,
    mode: str = "none",
    level: str = "token",
    sequence_ratio: str = "product",
    low: float | None = None,
    high: float | None = 2.0,
    mask_is_weight: bool = False,
) -> tuple[Tensor, Tensor]:
    """(weights (B, T), rejected (B, T) bool): the importance weight of each response token and the
    tokens a mask rejects. Weights are detached, 0 on padding and on rejected tokens.

    log_ratio = log pi_target - log pi_rollout per token (pi_target the proximal/old policy, or the
    current one in verl's bypass mode); rho_t = its exp, rho_seq = exp(sequence_log_ratio), both
    after clamping the log to +-SAFETY_LOG_RATIO; rho = rho_t or rho_seq by `level`.
      none:       w = 1.
      tis:        w = clamp(rho, low, high)                          (truncated IS)
      mis:        w = rho, rejected where rho leaves [low, high]     (masked IS, IcePop)
      token_mask: w = 1, rejected where rho_t leaves [low, high]     (rejection sampling)
      seq_mask:   w = 1, the whole sequence rejected where rho_seq leaves [low, high]
    mask_is_weight: token_mask / seq_mask weigh a kept token by rho_t instead of 1 (OpenRLHF
    seq-mask-tis). A None bound is absent.
    """
    keep = mask.bool()  # (B, T)
    log_ratio = torch.where(keep, log_ratio.detach(), 0.0)  # (B, T) padding may hold anything
    token = log_ratio.clamp(-SAFETY_LOG_RATIO, SAFETY_LOG_RATIO).exp()  # (B, T)
    seq = sequence_log_ratio(log_ratio, keep, sequence_ratio)  # (B, 1)
    seq = seq.clamp(-SAFETY_LOG_RATIO, SAFETY_LOG_RATIO).exp().expand_as(token)  # (B, T)
    rho = token if level == "token" else seq  # (B, T)
    masked = token if mask_is_weight else torch.ones_like(token)  # (B, T)
    no = torch.zeros_like(keep)
    rules = {
        "none": lambda: (torch.ones_like(token), no),
        "tis": lambda: (truncate(rho, low, high), no),
        "mis": lambda: (rho, ~inside(rho, low, high)),
        "token_mask": lambda: (masked, ~inside(token, low, high)),
        "seq_mask": lambda: (masked, ~inside(seq, low, high)),
    }
    if mode not in rules:
        raise ValueError(f"rollout_correction={mode!r}; allowed: {', '.join(CORRECTIONS)}")
    if level not in CORRECTION_LEVELS:
        raise ValueError(f"correction_level={level!r}; allowed: {', '.join(CORRECTION_LEVELS)}")
    weights, rejected = rules[mode]()
    rejected = rejected & keep  # (B, T)
    return torch.where(keep & ~rejected, weights, 0.0), rejected
