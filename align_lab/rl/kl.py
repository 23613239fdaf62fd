"""KL estimators and the adaptive KL coefficient (B rollouts, T response tokens)."""

import torch
from torch import Tensor

from .stats import masked_mean, masked_sum

KL_ESTIMATORS = ("k1", "k2", "k3")
KL_CONTROLLER_INPUTS = ("sum", "token_mean")


def kl_penalty(
    logprobs: Tensor,
    ref_logprobs: Tensor,
    estimator: str = "k1",
    *,
    clamp: float | None = None,
) -> Tensor:
    """Schulman's k1/k2/k3 per-token KL(pi || pi_ref) estimate (OpenRLHF compute_approx_kl): (B, T).

    With u = logprobs - ref_logprobs on tokens sampled from pi: k1 = u (unbiased, can be
    negative), k2 = u^2 / 2 (>= 0; its gradient is the reverse-KL policy-gradient integrand),
    k3 = exp(-u) - 1 + u (>= 0, unbiased; GRPO). Reward side: pass the old policy's log-probs (no
    grad); loss side: the current ones. No masking: reduce with masked_mean / masked_sum. clamp
    bounds the result to [-clamp, clamp] (OpenRLHF uses 10); None leaves it unbounded.
    """
    u = logprobs - ref_logprobs  # (B, T)
    if estimator == "k1":
        kl = u
    elif estimator == "k2":
        kl = u.square() / 2
    elif estimator == "k3":
        kl = torch.expm1(-u) + u  # expm1: exp(-u) - 1 cancels to below -u for tiny u, giving k3 < 0
    else:
        raise ValueError(f"estimator={estimator!r}; allowed: {', '.join(KL_ESTIMATORS)}")
    if clamp is not None:
        kl = kl.clamp(-clamp, clamp)
    return kl


def adaptive_kl_coef(kl_coef: float, observed_kl: float, target: float, n_steps: int, horizon: int) -> float:
    """Ziegler et al. 2019 adaptive KL controller (OpenRLHF AdaptiveKLController): the next kl_coef.

    e = clip(observed_kl / target - 1, -0.2, 0.2); kl_coef * (1 + e * n_steps / horizon), where
    n_steps is the number of samples seen since the last update.
    """
    if target <= 0 or horizon <= 0:
        raise ValueError(f"target={target}, horizon={horizon}; both must be > 0")
    error = min(max(float(observed_kl) / target - 1.0, -0.2), 0.2)
    return kl_coef * (1.0 + error * n_steps / horizon)


def observed_kl(kl: Tensor, mask: Tensor, reduction: str = "sum") -> float:
    """The adaptive controller's KL_obs: each response's KL, averaged over the batch (B, T) -> float.

    reduction "sum": sum_t m_t KL_t, the sequence KL (Ziegler et al. 2019, TRL's legacy PPOTrainer);
    "token_mean": its mean over the response's tokens (OpenRLHF, verl), so kl_target is per token.
    A response with an empty mask counts as 0 in both.
    """
    if reduction == "sum":
        per_response = masked_sum(kl, mask, dim=-1)  # (B,)
    elif reduction == "token_mean":
        per_response = masked_mean(kl, mask, dim=-1)  # (B,)
    else:
        raise ValueError(f"reduction={reduction!r}; allowed: {', '.join(KL_CONTROLLER_INPUTS)}")
    return per_response.mean().item()
