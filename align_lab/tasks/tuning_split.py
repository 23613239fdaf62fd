"""A tuned study's trials see a task through TuningSplit: a share of its training prompts held out as the
tuning split, policy optimisation trains on the rest and evaluates on it, so that choosing the
hyperparameters never reads the prompts the claims are evaluated on (docs/studies.md, "Tuned studies")."""

from __future__ import annotations

import random

SPLIT_SEED = 0  # every trial of every arm holds out the same prompts


def tuning_indices(n: int, share: float, seed: int = SPLIT_SEED) -> list[int]:
    """The sorted indices of round(n * share) of n training prompts (at least one, at most n - 1)."""
    k = min(n - 1, max(1, round(n * share)))
    return sorted(random.Random(seed).sample(range(n), k))


class TuningSplit:
    """Wraps a task (or its PolicyView): prompts("train") are its training prompts less the tuning
    split, prompts("eval") the tuning split; everything else (demonstrations, rewards) is the task's."""

    def __init__(self, task, share: float):
        self.task = task
        train = task.prompts("train")
        if len(train) < 2:
            raise ValueError(f"tuning_split={share}: the task has {len(train)} training prompt(s); needs 2")
        held = set(tuning_indices(len(train), share))
        self._index = {"eval": sorted(held), "train": [i for i in range(len(train)) if i not in held]}

    def __getattr__(self, name):
        if name == "task":
            raise AttributeError(name)
        return getattr(self.task, name)

    def prompts(self, split: str) -> list[str]:
        train = self.task.prompts("train")
        return [train[i] for i in self._index[split]]

    def references(self, split: str) -> list[str] | None:
        refs = self.task.references("train")
        return None if refs is None else [refs[i] for i in self._index[split]]


def with_tuning_split(task, share: float | None):
    """The task as a run's policy optimisation sees it: itself, or its TuningSplit when `share` is set."""
    return task if share is None else TuningSplit(task, share)
