"""Rollout-trainer mismatch: how far the distribution that sampled the tokens is from the one the trainer
scores them with (B rollouts, T response tokens)."""

import torch
from torch import Tensor

from .kl import kl_penalty
from .stats import masked_mean


def rollout_mismatch(
    logprobs: Tensor, rollout_logprobs: Tensor, mask: Tensor, low: float = 0.5, high: float = 2.0
) -> tuple[Tensor, Tensor, Tensor]:
    """(mismatch KL, fraction of tokens whose ratio is outside [low, high], max ratio), scalars
    (Yao et al. 2025 "Your efficient RL framework secretly brings you off-policy RL training"; the
    diagnostics of verl's rollout correction and TRL's vllm_importance_sampling).

    r = logprobs - rollout_logprobs per token (trainer minus rollout), ratio = exp(r) =
    pi_trainer / pi_rollout. The KL is the masked mean of k3 = exp(r) - 1 - r, which estimates
    KL(pi_rollout || pi_trainer) from tokens sampled by the rollout (>= 0, unbiased: E_rollout[exp(r)]
    = 1); it is kl_penalty(rollout_logprobs, logprobs, "k3"). Float64, so the ~1e-13 KL between two
    float32 computations of one distribution is resolved rather than rounded. Padding never counts;
    the max ratio of an all-padding batch is 0.

    Args:
        logprobs: (B, T) the trainer's log-probs of the sampled tokens.
        rollout_logprobs: (B, T) the log-probs the engine sampled them with.
    """
    logprobs, rollout_logprobs = logprobs.double(), rollout_logprobs.double()
    keep = mask.bool()  # (B, T)
    kl = masked_mean(kl_penalty(rollout_logprobs, logprobs, "k3"), keep)  # ()
    ratio = torch.exp(logprobs - rollout_logprobs)  # (B, T)
    outside = masked_mean(((ratio < low) | (ratio > high)).double(), keep)  # ()
    largest = torch.where(keep, ratio, 0.0).max() if ratio.numel() else ratio.new_zeros(())  # ()
    return kl, outside, largest
