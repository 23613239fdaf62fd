"""Masked reductions and whitening over the response-token mask (B rollouts, T response tokens)."""

import torch
from torch import Tensor


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of x over kept positions (OpenRLHF/TRL masked_sum); scalar if dim is None.

    x and mask share a shape, usually (B, T). Padding never leaks in, even when it holds nan or inf.
    """
    kept = torch.where(mask.bool(), x, 0)  # x's shape; where, not x * mask: 0 * nan = nan
    return kept.sum() if dim is None else kept.sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of x over kept positions (OpenRLHF/TRL masked_mean); scalar if dim is None.

    A slice with no kept position gives 0 (count clamped to 1, as TRL's GRPO loss does), not nan.
    """
    keep = mask.bool()  # x's shape
    count = keep.sum() if dim is None else keep.sum(dim)  # () or x's shape without dim
    return masked_sum(x, keep, dim) / count.clamp(min=1)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = False) -> Tensor:
    """Variance of x over all kept positions (TRL/OpenRLHF masked_var), a scalar.

    unbiased=False: population variance (OpenRLHF, MOSS-RLHF); unbiased=True: times n/(n-1) (TRL).
    """
    centred = x - masked_mean(x, mask)  # x's shape
    var = masked_mean(centred.square(), mask)  # ()
    if unbiased:
        n = mask.bool().sum()  # ()
        if n < 2:
            raise ValueError(f"unbiased masked_var needs at least 2 kept positions, got {int(n)}")
        var = var * n / (n - 1)
    return var


def masked_whiten(
    x: Tensor,
    mask: Tensor,
    unbiased: bool = False,
    shift_mean: bool = True,
    eps: float = 1e-8,
) -> Tensor:
    """Batch whitening over all kept tokens, (x - mean) * rsqrt(var + eps); 0 on padding.

    Statistics are token-weighted over the whole (B, T) batch. TRL's masked_whiten uses
    unbiased=True; OpenRLHF (PPO, REINFORCE++) and MOSS-RLHF use the population variance (OpenRLHF
    writes rsqrt(max(var, eps)), equal to within eps). shift_mean=False adds the mean back (TRL).
    """
    mean = masked_mean(x, mask)  # ()
    var = masked_var(x, mask, unbiased=unbiased)  # ()
    whitened = (x - mean) * torch.rsqrt(var + eps)  # x's shape
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, 0)


def running_moments(mean: float, var: float, count: float, x: Tensor) -> tuple[float, float, float]:
    """Running (mean, population variance, count) with the batch x merged in (MOSS-RLHF RunningMoments).

    Chan et al.'s parallel-variance merge of the batch's mean and population variance. MOSS-RLHF
    (after trlx) starts from mean 0, var 1, count 1e-24, so the first batch all but replaces them.
    """
    n = x.numel()
    batch_var, batch_mean = torch.var_mean(x.detach().double(), unbiased=False)
    delta = batch_mean.item() - mean
    total = count + n
    m2 = var * count + batch_var.item() * n + delta**2 * count * n / total  # summed squared deviations
    return mean + delta * n / total, m2 / total, total


def running_std(var: float, count: float) -> float:
    """Bessel-corrected std sqrt(var * count / (count - 1)) of running moments (MOSS-RLHF).

    1.0 (the initial std) until more than one value was seen.
    """
    return (var * count / (count - 1)) ** 0.5 if count > 1 else 1.0


def pass_ks(n: int) -> list[int]:
    """The k of the pass@k an evaluation of n samples a prompt reports: 1, every power of two below n,
    and n (prime-rl reports the powers of two; n is the most the samples can say)."""
    return sorted({1, n, *(2**i for i in range(n.bit_length()) if 2**i < n)}) if n >= 1 else []
