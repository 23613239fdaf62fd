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


# ---- rejection rules: a divergence statistic per token, per sequence or its max, within bounds (verl
# rollout_rs, AReaL rejection_sampling, TRL OPSM); issue 36 item 3
REJECT_SCOPES = ("token", "seq_sum", "seq_mean", "seq_max")
DIVERGENCES = ("k1", "k2", "k3", "k3_inverse", "binary_kl")
BINARY_KL_EPS = 1e-8  # AReaL's clamp of each token probability before the Bernoulli KL


def parse_rule(rule: str) -> tuple[str, str] | None:
    """'seq_mean_k3' -> ('seq_mean', 'k3'): a rule's scope and statistic; None if it is not one."""
    for scope in REJECT_SCOPES:
        if rule.startswith(scope + "_") and rule[len(scope) + 1 :] in DIVERGENCES:
            return scope, rule[len(scope) + 1 :]
    return None


def binary_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(P || Q) of the Bernoulli pair (this token, any other) with P(token) = e^log_p, each probability
    clamped to [1e-8, 1 - 1e-8] (KPop, Guo et al. 2026; AReaL compute_binary_kl_divergence)."""
    p = log_p.exp().clamp(BINARY_KL_EPS, 1 - BINARY_KL_EPS)
    q = log_q.exp().clamp(BINARY_KL_EPS, 1 - BINARY_KL_EPS)
    return p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()


def divergence(target: Tensor, rollout: Tensor, stat: str) -> Tensor:
    """(B, T) per-token statistic of pi_target against pi_rollout from their log-probs (B, T). With
    l = log pi_target - log pi_rollout clamped to +-20 (verl's SAFETY_BOUND):
      k1 = -l (verl token_k1: log pi_rollout / pi_target), k2 = l^2 / 2, k3 = e^l - 1 - l (verl),
      k3_inverse = e^-l - 1 + l (AReaL kl_k3: k3 of pi_rollout / pi_target),
      binary_kl = max(KL_B(pi_target || pi_rollout), KL_B(pi_rollout || pi_target)) (KPop, AReaL).
    Every one is 0 where the two policies agree."""
    if stat == "binary_kl":
        return torch.maximum(binary_kl(target, rollout), binary_kl(rollout, target))
    log_ratio = (target - rollout).clamp(-SAFETY_LOG_RATIO, SAFETY_LOG_RATIO)  # (B, T)
    stats = {
        "k1": lambda: -log_ratio,
        "k2": lambda: 0.5 * log_ratio**2,
        "k3": lambda: log_ratio.exp() - 1 - log_ratio,
        "k3_inverse": lambda: (-log_ratio).exp() - 1 + log_ratio,
    }
    return stats[stat]()


def scoped(values: Tensor, keep: Tensor, scope: str) -> Tensor:
    """`values` (B, T) over the response tokens `keep` (B, T) bool: per token, or each sequence's sum,
    mean or max on all its tokens (an empty sequence's is 0): (B, T)."""
    if scope == "token":
        return values
    masked = torch.where(keep, values, 0.0)  # (B, T)
    if scope == "seq_sum":
        per_sequence = masked.sum(-1, keepdim=True)  # (B, 1)
    elif scope == "seq_mean":
        per_sequence = masked.sum(-1, keepdim=True) / keep.sum(-1, keepdim=True).clamp(min=1)
    else:  # seq_max
        per_sequence = torch.where(keep, values, -torch.inf).amax(-1, keepdim=True)
        per_sequence = torch.where(keep.any(-1, keepdim=True), per_sequence, 0.0)
    return per_sequence.expand_as(values)


def rule_rejections(
    target: Tensor,
    rollout: Tensor,
    mask: Tensor,
    rules: list[str],
    lows: list[float | None],
    highs: list[float | None],
) -> Tensor:
    """(B, T) bool: the response tokens any rule rejects (verl's comma-separated rollout_rs: every rule
    must pass). Rule i keeps a token whose scoped statistic lies in [lows[i], highs[i]] (None: no bound)."""
    keep = mask.bool()  # (B, T)
    target = torch.where(keep, target.detach(), 0.0)  # (B, T) padding may hold anything
    rollout = torch.where(keep, rollout.detach(), 0.0)  # (B, T)
    rejected = torch.zeros_like(keep)
    for rule, low, high in zip(rules, lows, highs, strict=True):
        scope, stat = parse_rule(rule)
        value = scoped(divergence(target, rollout, stat), keep, scope)  # (B, T)
        rejected = rejected | ~inside(value, low, high)
    return rejected & keep


def normalize_weights(weights: Tensor, mask: Tensor, level: str) -> Tensor:
    """`weights` (B, T) divided by their batch mean, so they average 1 (verl rollout_is_batch_normalize):
    the mean over response tokens (token level) or over non-empty sequences of each one's weight
    (sequence level); left as they are when that mean is <= 1e-8."""
    keep = mask.bool()  # (B, T)
    if level == "token":
        mean = torch.where(keep, weights, 0.0).sum() / keep.sum().clamp(min=1)
    else:
        rows = keep.any(-1)  # (B,)
        per_sequence = torch.where(keep, weights, 0.0).sum(-1) / keep.sum(-1).clamp(min=1)  # (B,)
        mean = per_sequence[rows].sum() / rows.sum().clamp(min=1)
    return weights / mean if mean > 1e-8 else weights
