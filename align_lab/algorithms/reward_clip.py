"""The reward's clip (PPO, RLOO, GRPO, REINFORCE++: `algo.reward_clip`, `algo.reward_clip_low`), and what a
step says when it flattens most of a reward's scores (twenty-seventh hunt, case 17: a 0-100 judge score under
the default reward_clip=10 trained on nothing for 10 steps, reward ~30 on the progress line, rc 0)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torch import Tensor

from align_lab.rl import clip_reward
from align_lab.value_checks import check


@dataclass(frozen=True)
class RewardClip:
    """Scores clamped to [-reward_clip_low, reward_clip] (reward_clip None: off; reward_clip_low None:
    -reward_clip, symmetric). Where in the advantage it applies is the algorithm's (its docstring).

    The lower bound may be positive (OpenRLHF's --reward.clip_range 1 10 is reward_clip_low=-1
    reward_clip=10); the range must hold more than one value."""

    reward_clip: float | None = None
    reward_clip_low: float | None = None

    def __post_init__(self) -> None:
        high, low = self.reward_clip, self.reward_clip_low
        if low is None:
            allowed = "> 0 or null (the range is [-reward_clip, reward_clip])"
            check(high is None or high > 0, "reward_clip", high, allowed)
        elif high is not None:
            allowed = f"> -reward_clip = {-high} (the range is [-reward_clip_low, reward_clip])"
            check(-low < high, "reward_clip_low", low, allowed)
        object.__setattr__(self, "said", [])  # the run's algorithm's own: once a run, not once a process

    def __call__(self, scores: Tensor) -> Tensor:
        clipped = clip_reward(scores, self.reward_clip, self.reward_clip_low)
        said_clamped(scores, clipped, self.reward_clip, self.said)
        return clipped


def said_clamped(scores: Tensor, clipped: Tensor, high: float | None, said: list[float]) -> None:
    """One warning a run (its algorithm's clip: `said`) where the clip changed most of a step's scores; once
    a process, a one-process sweep's later runs trained on as little and said nothing (twenty-eighth hunt,
    case 10)."""
    share = float((clipped != scores).float().mean())
    if share <= 0.5 or said:
        return
    said.append(share)
    low, top = float(scores.min()), float(scores.max())
    logging.getLogger("align_lab").warning(
        f"warning: algo.reward_clip={high} clamps {share:.0%} of a step's scores (they lie in [{low:.3g}, "
        f"{top:.3g}]): their differences no longer reach the policy; scale the reward into the clip's range, "
        "or set algo.reward_clip=null"
    )
