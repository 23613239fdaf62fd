"""Reward sources. Each is a dataclass whose `scorer(world)` returns a function of texts -> (B,) tensor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from align_lab.models.sequences import score_texts

Scorer = Callable[[list[str], list[str], list[bool]], Tensor]


@dataclass
class GoldReward:
    """reward=gold: the task's hidden gold reward used directly (an oracle, no reward model)."""

    def scorer(self, world) -> Scorer:
        task = world.policy_task  # the prompts it is handed are the policy's (chat-templated) ones
        return lambda p, r, f: torch.tensor(task.gold_reward(p, r, f), dtype=torch.float32)


@dataclass
class Verifier:
    """reward=verifier: the exact answer checker of a verifiable task (1 correct, 0 otherwise)."""

    def scorer(self, world) -> Scorer:
        if not world.task.verifiable:
            raise ValueError(
                "reward=verifier: the task has no verifiable answers; use task=toy_arith or task=arith_word"
            )
        return GoldReward().scorer(world)


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
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr}: must be > 0")
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

    def scorer(self, world) -> Scorer:
        rm = world.reward_model(self)
        task, tok = world.policy_task, world.tokenizer  # the policy's prompts and token limits

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
