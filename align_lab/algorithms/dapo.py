"""DAPO (Yu et al. 2025, arXiv 2503.14476): GRPO with clip-higher, token-mean loss, no KL, soft overlong
punishment and dynamic sampling."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import Tensor

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.grpo import GRPO
from align_lab.rl.dapo import overlong_penalty
from align_lab.value_checks import check


@dataclass
class DAPO(GRPO):
    """GRPO with DAPO's four techniques, each its own key: clip_high (clip-higher, 0.28), token_mean
    aggregation, dynamic_sampling (the online loop drops groups whose rewards are all equal and samples
    more prompts, at most max_resample_rounds more rounds: train/dynamic_sampling.py) and the soft
    overlong punishment (overlong_buffer tokens before max_len, down to -overlong_penalty, added to
    the score before the group normalisation; the dynamic-sampling filter sees the task's score).
    Multi-turn: the length is every token after the prompt, observations included, and max_len the
    conversation's budget (env.max_conversation_tokens), as verl's DAPO reward manager reads the
    response's attention mask (docs/conventions.md#multi-turn)."""

    clip_high: float | None = 0.28
    kl_coef: float = 0.0
    loss_aggregation: str = "token_mean"
    dynamic_sampling: bool = True
    max_resample_rounds: int = 10
    overlong_buffer: int | None = None
    overlong_penalty: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.max_resample_rounds >= 0, "max_resample_rounds", self.max_resample_rounds, ">= 0")
        check(self.overlong_penalty >= 0, "overlong_penalty", self.overlong_penalty, ">= 0")
        if self.overlong_buffer is not None:
            check(
                self.max_len is not None and 0 < self.overlong_buffer <= self.max_len,
                "overlong_buffer",
                self.overlong_buffer,
                f"in [1, max_len={self.max_len}] (max_len: the generation limit; multi-turn: "
                "env.max_conversation_tokens) or null",
            )

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        if self.overlong_buffer is None:
            return super().advantages(rollout)
        lengths = (rollout.mask if rollout.attend is None else rollout.attend).sum(-1)  # (B,)
        penalty = overlong_penalty(lengths, self.max_len, self.overlong_buffer, self.overlong_penalty)
        return super().advantages(replace(rollout, scores=rollout.scores + penalty.to(rollout.scores.dtype)))
