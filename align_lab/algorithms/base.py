"""The online loop's contract (OnlineAlgorithm), the rollout batch it passes around, and check()."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Protocol, runtime_checkable

from torch import Tensor


@dataclass
class Rollout:
    """One step's experience. B = prompts x group_size rows; a prompt's G samples are contiguous."""

    prompt_ids: Tensor  # (B, P)
    prompt_attn: Tensor  # (B, P)
    response_ids: Tensor  # (B, T)
    mask: Tensor  # (B, T)
    logprobs: Tensor  # (B, T) under the policy that sampled (pi_old)
    ref_logprobs: Tensor  # (B, T) under the frozen reference (SFT)
    scores: Tensor  # (B,) reward of each response
    group_size: int
    values: Tensor | None = None  # (B, T) critic values, if any
    advantages: Tensor | None = None  # (B, T)
    returns: Tensor | None = None  # (B, T) value targets, if any
    baseline_scores: Tensor | None = None  # (B,) score of a greedy response to the row's prompt (ReMax)

    def rows(self, index: Tensor) -> Rollout:
        """The minibatch of rows `index` (group statistics are already folded into advantages)."""
        picked = {
            f.name: getattr(self, f.name)[index]
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **picked)


@runtime_checkable
class OnlineAlgorithm(Protocol):
    """Rollout -> advantages -> clipped/plain policy-gradient loss (PPO, REINFORCE++, RLOO, GRPO...)."""

    lr: float
    epochs: int  # passes over each rollout
    group_size: int  # samples per prompt

    @property
    def uses_critic(self) -> bool: ...

    def advantages(self, rollout: Rollout) -> tuple[Tensor, Tensor | None]:
        """(advantages (B, T), returns (B, T) or None); zero on padding."""
        ...

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        """Scalar loss of a minibatch and detached stats ({"train/clip_frac": ...})."""
        ...


def check(ok: bool, name: str, value, allowed: str) -> None:
    """Raises the one-line error every config check uses: `name=value: must be allowed`."""
    if not ok:
        raise ValueError(f"{name}={value}: must be {allowed}")
