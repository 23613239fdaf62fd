"""Multi-turn credit assignment shared by the online algorithms: the episode return, where a turn's
env reward sits, and how returns cross an observation token (docs/conventions.md#multi-turn).

Every helper returns the single-turn value unchanged when the rollout has no turn rewards or
attend mask, so single-turn numbers stay bit-identical.
"""

from __future__ import annotations

from torch import Tensor

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.reward_clip import RewardClip
from align_lab.value_checks import check


def total_return(scores: Tensor, turn_rewards: Tensor | None) -> Tensor:
    """(B,) each episode's total reward: the outcome score (B,) plus its turns' rewards (B, T) summed
    (None: the scores themselves, bit for bit)."""
    return scores if turn_rewards is None else scores + turn_rewards.sum(-1)


def episode_return(rollout: Rollout) -> Tensor:
    """(B,) each episode's total reward: the outcome score plus its turns' rewards (single turn: the
    scores themselves). What the sequence-level algorithms baseline, rank and broadcast."""
    return total_return(rollout.scores, rollout.turn_rewards)


def clip_episode(outcome: Tensor, turns: Tensor | None, clipping: RewardClip) -> Tensor:
    """(B,) the outcome reward after the reward clip of the episode's total (outcome + turn rewards):
    the turns keep their rewards and the outcome takes up what the clip cuts, so turn_rewards_at=turn
    and last see the same clipped total (OpenRLHF clamps its one sequence reward, an agent's summed
    step rewards). Without turn rewards: the clip of the outcome."""
    if turns is None:
        return clipping(outcome)
    total = total_return(outcome, turns)  # (B,)
    return outcome + (clipping(total) - total)


OBSERVATION_STEPS = ("skip", "step")
TURN_REWARDS_AT = ("turn", "last")


def placed_rewards(rollout: Rollout, turn_rewards_at: str) -> tuple[Tensor, Tensor | None]:
    """(reward at the last policy token (B,), per-turn rewards (B, T) or None) of a token-level
    algorithm: turn_rewards_at=turn keeps each turn's reward at its turn's last token; last adds them
    to the outcome score at the episode's last policy token (verl, OpenRLHF)."""
    if rollout.turn_rewards is None or turn_rewards_at == "turn":
        return rollout.scores, rollout.turn_rewards
    return episode_return(rollout), None


def observation_steps(rollout: Rollout, across_observations: str) -> Tensor | None:
    """rl.gae's `steps`: None skips an observation token (verl); the attended tokens make each one a
    step of reward 0 and value 0 (across_observations=step: OpenRLHF)."""
    return rollout.attend if across_observations == "step" else None


def check_credit(algo, turn_rewards: bool = True) -> None:
    """The checks of the multi-turn credit keys: across_observations and (`turn_rewards`)
    turn_rewards_at."""
    steps = algo.across_observations
    check(steps in OBSERVATION_STEPS, "across_observations", steps, f"one of {OBSERVATION_STEPS}")
    if turn_rewards:
        at = algo.turn_rewards_at
        check(at in TURN_REWARDS_AT, "turn_rewards_at", at, f"one of {TURN_REWARDS_AT}")
