"""DAPO's reward-side pieces (Yu et al. 2025, arXiv 2503.14476): the dynamic-sampling group filter and
the soft overlong punishment (B rollouts, G per prompt, contiguous)."""

import torch
from torch import Tensor


def informative_groups(scores: Tensor, group_size: int) -> Tensor:
    """DAPO dynamic sampling (section 3.2, eq. 11's 0 < |{correct}| < G): (B/G,) bool, True for the
    groups whose G rewards are not all equal. An all-equal group has zero group-normalised advantage
    everywhere, so it trains nothing (verl's filter_groups keeps a group where its std > 0)."""
    groups = scores.view(-1, group_size)  # (B/G, G)
    return (groups != groups[:, :1]).any(-1)


def overlong_penalty(lengths: Tensor, max_len: int, buffer: int, factor: float = 1.0) -> Tensor:
    """DAPO soft overlong punishment (section 3.4, eq. 13): (B,) reward added to each response's.

    0 up to max_len - buffer tokens, then falling linearly to -factor at max_len:
    min(0, -(|y| - (max_len - buffer)) / buffer * factor) (verl's DAPO reward manager).
    """
    exceed = lengths.to(torch.get_default_dtype()) - (max_len - buffer)  # (B,)
    return (-exceed / buffer * factor).clamp(max=0.0)
