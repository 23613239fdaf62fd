"""Judges of evaluation win rates. A judge says how likely response a beats response b for a prompt;
a reward model judges by its scores, and an LLM judge can implement the same Protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from align_lab.rewards.hf_rm import HFRewardModel


class Judge(Protocol):
    def prefers(self, prompts: list[str], a: list[str], b: list[str]) -> list[float]:
        """P(a is better than b) per prompt: 1 win, 0.5 tie, 0 loss for a hard judge."""
        ...


@dataclass
class ScoreJudge:
    """A reward model (any scorer) as a judge: a wins when it scores higher, ties count half."""

    scorer: object  # (prompts, responses, finished) -> (B,) tensor

    def score(self, prompts: list[str], responses: list[str], finished: list[bool]) -> torch.Tensor:
        return self.scorer(prompts, responses, finished)  # (B,)

    def prefers(self, prompts: list[str], a: list[str], b: list[str]) -> list[float]:
        done = [True] * len(prompts)
        sa, sb = self.scorer(prompts, a, done), self.scorer(prompts, b, done)  # (B,), (B,)
        return ((sa > sb).float() + 0.5 * (sa == sb).float()).tolist()


@dataclass
class RunRewardJudge:
    """judge=reward: the run's own reward judges (cheap; biased toward what the policy optimised)."""

    def judge(self, stages, run_scorer) -> ScoreJudge:
        return ScoreJudge(run_scorer)


@dataclass
class RewardModelJudge(HFRewardModel):
    """judge=hf_rm: a separate trained reward model judges (eval/rm_score and the win rates)."""

    def judge(self, stages, run_scorer) -> ScoreJudge:
        return ScoreJudge(self.scorer(stages))
