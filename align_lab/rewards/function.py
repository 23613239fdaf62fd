"""reward=function: any Python callable `f(prompts, responses) -> list[float]`, named module:callable;
and reward=combined: a weighted sum of several reward sources."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch


def word_count(prompts: list[str], responses: list[str]) -> list[float]:
    """Words per response (with a negative weight in reward=combined: a length penalty)."""
    return [float(len(r.split())) for r in responses]


def load_callable(path: str):
    """`package.module:function` -> the function; a one-line error for each way it can be wrong."""
    module_name, sep, attr = (path or "").partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"path={path}: must be module:callable, e.g. align_lab.rewards.function:word_count")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"path={path}: cannot import {module_name} ({e})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"path={path}: {module_name} has no callable {attr}")
    return fn


@dataclass
class FunctionReward:
    """Scores with `f(prompts, responses)`; prompts are the task's (before any chat template)."""

    path: str | None = None

    def __post_init__(self) -> None:
        self._fn = load_callable(self.path)

    def scorer(self, world):
        raw = world.raw_prompt

        def score(prompts, responses, finished):
            scores = self._fn([raw(p) for p in prompts], list(responses))
            if len(scores) != len(prompts):
                raise RuntimeError(
                    f"reward.path={self.path}: returned {len(scores)} scores for {len(prompts)}"
                )
            return torch.tensor([float(s) for s in scores], dtype=torch.float32)  # (B,)

        return score


class Combined:
    """r = sum_i weight_i * r_i over named reward sources (each a built reward: learned_rm, hf_rm, ...)."""

    def __init__(self, components: dict) -> None:
        if not components:
            raise ValueError("components={}: must name at least one {weight, source}")
        for name, c in components.items():
            if set(c) != {"weight", "source"}:
                raise ValueError(f"components.{name}: must have exactly the keys weight and source")
            if not isinstance(c["weight"], int | float):
                raise ValueError(f"components.{name}.weight={c['weight']}: must be a number")
            if not hasattr(c["source"], "scorer"):
                raise ValueError(f"components.{name}.source: must be a reward with a _target_")
        self.components = components
        self.holds_model = any(getattr(c["source"], "holds_model", False) for c in components.values())

    def scorer(self, world):
        parts = [(c["weight"], c["source"].scorer(world)) for c in self.components.values()]

        def score(prompts, responses, finished):
            return sum(w * s(prompts, responses, finished) for w, s in parts)  # (B,)

        return score
