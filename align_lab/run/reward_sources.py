"""Whether an algorithm that reads each reward source (GDPO: the RewardSources signal) has them:
reward=combined with two sources or more, checked at admission (run/cross_checks.py) before compute."""

from __future__ import annotations

from align_lab.algorithms.signals import RewardSources, reads
from align_lab.config import ConfigError
from align_lab.rewards.function import Combined


def check_sources(spec) -> None:
    """An algorithm that normalises each reward source (GDPO) needs reward=combined with two or more."""
    if reads(spec.algo, RewardSources) is None:
        return
    algo, reward = spec.names.get("algo", type(spec.algo).__name__), spec.names.get("reward", "?")
    if not isinstance(spec.reward, Combined):
        raise ConfigError(
            f"algo={algo} normalises each reward source on its own: needs reward=combined (several "
            f"weighted sources), not reward={reward}; with one reward use algo=grpo"
        )
    names = list(spec.reward.components)
    if len(names) < 2:
        raise ConfigError(
            f"reward.components: algo={algo} with one source ({', '.join(names)}) is GRPO with a batch "
            "whitening; add a source or use algo=grpo"
        )
