"""Reward sources. Each is a dataclass whose `scorer(stages)` returns a function of texts -> (B,) tensor.

`stages` is the run's built stages (run/stages.py's frozen Stages), read through the RunStages Protocol:
a reward reads what was built, it never builds. A source that needs a stage says so in
`reward_models()`, which the run reads before it builds its stages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from align_lab.models.scores import score_texts
from align_lab.value_checks import check_lr

Scorer = Callable[[list[str], list[str], list[bool]], Tensor]


class RunStages(Protocol):
    """What a reward source reads of a run's built stages (run/stages.py's Stages)."""

    @property
    def task(self): ...  # the task as configured

    @property
    def policy_task(self): ...  # the task as the policy sees it (chat template, token limits)

    @property
    def tokenizer(self): ...

    def raw_prompt(self, prompt: str) -> str: ...

    def load_reward_model(self, config: LearnedRM) -> torch.nn.Module: ...


def reward_models(source) -> tuple[LearnedRM, ...]:
    """The learned reward models (reward=learned_rm configs) whose stages `source` scores with."""
    return tuple(source.reward_models()) if hasattr(source, "reward_models") else ()


@dataclass
class GoldReward:
    """reward=gold: the task's hidden gold reward used directly (an oracle, no reward model)."""

    def scorer(self, stages: RunStages) -> Scorer:
        task = stages.policy_task  # the prompts it is handed are the policy's (chat-templated) ones
        return lambda p, r, f: torch.tensor(task.gold_reward(p, r, f), dtype=torch.float32)


@dataclass
class Verifier:
    """reward=verifier: the exact answer checker of a verifiable task (1 correct, 0 otherwise)."""

    def scorer(self, stages: RunStages) -> Scorer:
        if not stages.task.verifiable:
            raise ValueError(
                "reward=verifier: the task has no verifiable answers; "
                "use task=toy_arith, task=arith_word or task=verifiable_data"
            )
        return GoldReward().scorer(stages)


@dataclass
class LearnedRM:
    """reward=learned_rm: a Bradley-Terry reward model trained on the task's preference pairs
    (train/reward_model.py), then scoring the policy's responses."""

    epochs: int = 4
    lr: float = 5e-4
    batch_size: int = 64
    heldout_fraction: float = 0.1
    seed: int = 0
    holds_model = True  # a run keeps the reward model in memory (resources.py)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs}: must be >= 1")
        check_lr("lr", self.lr)
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction={self.heldout_fraction}: must be in (0, 1)")

    def split_sizes(self, n_pairs: int) -> tuple[int, int]:
        """(held-out, training) pairs of n_pairs: at least one held out; ValueError when none is left
        to train on (the run would score with an untrained reward model)."""
        heldout = max(1, int(n_pairs * self.heldout_fraction))
        if n_pairs - heldout < 1:
            raise ValueError(
                f"reward=learned_rm: {n_pairs} preference pair(s) leave none to train on after "
                f"{heldout} held out (reward.heldout_fraction={self.heldout_fraction}); "
                "needs at least 2 pairs (task.n_pairs)"
            )
        return heldout, n_pairs - heldout

    def reward_models(self) -> tuple[LearnedRM, ...]:
        return (self,)  # its stage, built before the run's seed (run/stages.py)

    def scorer(self, stages: RunStages) -> Scorer:
        rm = stages.load_reward_model(self)
        task, tok = stages.policy_task, stages.tokenizer  # the policy's prompts and token limits

        @torch.no_grad()
        def score(prompts, responses, finished):
            return score_texts(
                rm,
                tok,
                prompts,
                responses,
                finished,
                task.max_prompt_tokens,
                task.max_response_tokens,
            )

        return score
