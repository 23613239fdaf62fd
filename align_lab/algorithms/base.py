"""The online loop's contract (OnlineAlgorithm, CriticAlgorithm), the rollout batch it passes around, and
the checks the algorithms share."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Protocol, runtime_checkable

from torch import Tensor

from align_lab.algorithms.correction import Corrected, RolloutCorrection, check_correction  # noqa: F401 (re-exported)
from align_lab.algorithms.shared import check_clip, check_reward_clip, clip_bounds  # noqa: F401 (re-exported)
from align_lab.rl import AGGREGATIONS, KL_ESTIMATORS
from align_lab.value_checks import check, check_lr


@dataclass
class Rollout:
    """One step's experience. B = prompts x group_size rows; a prompt's G samples are contiguous."""

    prompt_ids: Tensor  # (B, P)
    prompt_attn: Tensor  # (B, P)
    response_ids: Tensor  # (B, T)
    mask: Tensor  # (B, T)
    logprobs: Tensor  # (B, T) the trainer's, at the weights that sampled (pi_old, the proximal policy)
    ref_logprobs: Tensor  # (B, T) under the frozen reference (SFT)
    scores: Tensor  # (B,) reward of each response
    group_size: int
    values: Tensor | None = None  # (B, T) critic values, if any
    advantages: Tensor | None = None  # (B, T)
    returns: Tensor | None = None  # (B, T) value targets, if any
    baseline_scores: Tensor | None = None  # (B,) score of a greedy response to the row's prompt (ReMax)
    # (B, T) the engine's own log-probs of its draws (the behaviour policy, docs/rollout.md)
    rollout_logprobs: Tensor | None = None
    # multi-turn (docs/conventions.md#multi-turn); `mask` stays the policy-token mask
    attend: Tensor | None = None  # (B, T) policy and observation tokens; None: equal to mask
    turn_rewards: Tensor | None = None  # (B, T) each turn's env reward at its last token; None: none

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
    """Rollout -> advantages -> clipped/plain policy-gradient loss (PPO, REINFORCE++, RLOO, GRPO...).

    The online loop (train/online.py) reads every member below from every algorithm, nothing else.
    An algorithm subclasses this Protocol to inherit the defaults and overrides only what it uses:
    a hyperparameter as a dataclass field of the same name (PPO-max's `entropy_coef: float = 0.0`),
    a fixed choice as a ClassVar or property (ReMax's greedy_baseline).
    """

    lr: float
    epochs: int  # passes over each rollout
    group_size: int  # samples per prompt
    kl_coef: float  # weight of the KL to the reference (in the reward or the loss)

    # adaptive KL controller's target (PPO): kl_coef may then move off 0, so the reference is needed
    kl_target: float | None = None
    # > 0: the loop adds -entropy_coef * mean token entropy (of the minibatch) to the loss
    entropy_coef: float = 0.0
    # > 0: the loop adds ptx_coef * NLL of a minibatch of the task's demonstrations (PPO-ptx)
    ptx_coef: float = 0.0
    # True: the loop also samples one greedy response per prompt and puts its score, repeated over
    # the prompt's group, in rollout.baseline_scores (ReMax)
    greedy_baseline: bool = False
    # warm-up: for the first critic_pretrain_steps steps only the critic is updated, the policy rests
    critic_pretrain_steps: int = 0
    # True: the loop drops the step's groups whose rewards are all equal and samples more prompts, at
    # most max_resample_rounds more rounds, until the step is full (DAPO; train/dynamic_sampling.py)
    dynamic_sampling: bool = False
    max_resample_rounds: int = 0

    @property
    def uses_critic(self) -> bool:
        """True: the loop builds and trains a critic (see CriticAlgorithm) and fills rollout.values."""
        return False

    @property
    def uses_reference(self) -> bool:
        """False: no KL term can be non-zero, so the loop skips the reference forward (every KL is 0)."""
        return self.kl_coef != 0 or self.kl_target is not None

    def advantages(self, rollout: Rollout) -> tuple[Tensor, Tensor | None]:
        """(advantages (B, T), returns (B, T) or None); zero on padding."""
        ...

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        """Scalar loss of a minibatch and detached stats ({"train/clip_frac": ...})."""
        ...

    def state_dict(self) -> dict:
        """What training changes in the algorithm (an adaptive kl_coef, running reward moments), as
        plain values for the checkpoint; never a hyperparameter (those are the dataclass fields, which
        training never changes). Default: no state."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restores state_dict()'s values (default: each key is an attribute)."""
        for key, value in state.items():
            setattr(self, key, value)


CRITIC_INITS = ("sft", "reward_model")


@runtime_checkable
class CriticAlgorithm(OnlineAlgorithm, Protocol):
    """An online algorithm with a learned critic (PPO, vanilla PG): the loop trains it with critic_lr
    and passes its values to loss(); the run builds it from critic_init."""

    critic_lr: float
    critic_init: str  # one of CRITIC_INITS: the critic's body starts as the SFT policy or the reward model

    @property
    def uses_critic(self) -> bool:
        return True


def check_critic(algo: CriticAlgorithm) -> None:
    """The checks of a critic's hyperparameters: critic_lr and critic_init."""
    check_lr("critic_lr", algo.critic_lr)
    check(algo.critic_init in CRITIC_INITS, "critic_init", algo.critic_init, f"one of {CRITIC_INITS}")


def check_online(algo, group_size_allowed: str = ">= 1", min_group_size: int = 1, ratio: bool = True) -> None:
    """The checks of the hyperparameters every online algorithm shares: lr, epochs, group_size, kl_coef,
    kl_estimator, kl_clamp, loss_aggregation and the rollout correction (`group_size_allowed` says why
    more than one is needed; `ratio`: the algorithm has a policy ratio)."""
    check_lr("lr", algo.lr)
    check(algo.epochs >= 1, "epochs", algo.epochs, ">= 1")
    check(algo.group_size >= min_group_size, "group_size", algo.group_size, group_size_allowed)
    check(algo.kl_coef >= 0, "kl_coef", algo.kl_coef, ">= 0")
    check(algo.kl_estimator in KL_ESTIMATORS, "kl_estimator", algo.kl_estimator, f"one of {KL_ESTIMATORS}")
    check(algo.kl_clamp is None or algo.kl_clamp > 0, "kl_clamp", algo.kl_clamp, "> 0 or null")
    check(
        algo.loss_aggregation in AGGREGATIONS,
        "loss_aggregation",
        algo.loss_aggregation,
        f"one of {AGGREGATIONS}",
    )
    check_correction(algo, ratio)
