"""The online loop's contract (OnlineAlgorithm, CriticAlgorithm), the rollout batch it passes around, and
the checks the algorithms share."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Protocol, runtime_checkable

from torch import Tensor

from align_lab.algorithms.parts import Corrected, RolloutCorrection  # noqa: F401 (re-exported)
from align_lab.algorithms.signals import REFERENCE
from align_lab.algorithms.sources import Source
from align_lab.rl import AGGREGATIONS
from align_lab.value_checks import check, check_coef, check_lr


@dataclass
class Rollout:
    """One step's experience. B = prompts x group_size rows; a prompt's G samples are contiguous."""

    prompt_ids: Tensor  # (B, P)
    prompt_attn: Tensor  # (B, P)
    response_ids: Tensor  # (B, T)
    mask: Tensor  # (B, T)
    logprobs: Tensor  # (B, T) the trainer's, at the weights that sampled (pi_old, the proximal policy)
    scores: Tensor  # (B,) reward of each response
    values: Tensor | None = None  # (B, T) critic values, if any
    advantages: Tensor | None = None  # (B, T)
    returns: Tensor | None = None  # (B, T) value targets, if any
    # (B, T) the engine's own log-probs of its draws (the behaviour policy, docs/rollout.md)
    rollout_logprobs: Tensor | None = None
    # multi-turn (docs/conventions.md#multi-turn); `mask` stays the policy-token mask
    attend: Tensor | None = None  # (B, T) policy and observation tokens; None: equal to mask
    turn_rewards: Tensor | None = None  # (B, T) each turn's env reward at its last token; None: none
    sampled_by: str = "policy"  # the step's source (algorithms/sources.py): policy, teacher or data
    # what the loss reads beside the policy's log-probs, by name (algorithms/signals.py): the signals the
    # algorithm declares, filled by the loop and the Learner
    signals: dict = field(default_factory=dict)

    @property
    def ref_logprobs(self) -> Tensor:
        """(B, T) the reference signal; the rollout's own log-probs where the algorithm reads none (no KL
        term can be non-zero: every KL is then 0, the reference forward skipped)."""
        return self.signals.get(REFERENCE, self.logprobs)

    def rows(self, index: Tensor) -> Rollout:
        """The minibatch of rows `index` (group statistics are already folded into advantages)."""
        picked = {
            f.name: getattr(self, f.name)[index]
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **picked, signals={k: v[index] for k, v in self.signals.items()})


@dataclass(frozen=True)
class LoopNeeds:
    """What an online algorithm asks of the loop beyond rollout -> advantages -> loss: every loop switch in
    one object, each off by default, read by the loop (train/), the run's admission (run/) and nothing
    else. An algorithm declares it once (OnlineBase.needs): a switch that is a property of the algorithm
    (ReMax's compares_samples) is written there; one users type (PPO's entropy_coef, DAPO's
    dynamic_sampling) stays the algorithm's field and `needs` passes it on, so the key keeps working.
    What a loss reads is not a switch but a signal (algorithms/signals.py), declared in `signals`; where a
    step's rows come from is its declared `source` (algorithms/sources.py)."""

    # the adaptive KL controller's target (PPO); kl_coef may then move off 0, so the reference is kept
    kl_target: float | None = None
    # > 0: the loop adds -entropy_coef * mean token entropy (of the minibatch) to the loss
    entropy_coef: float = 0.0
    # > 0: the loop adds ptx_coef * NLL of a minibatch of the task's demonstrations (PPO-ptx)
    ptx_coef: float = 0.0
    # warm-up: for the first critic_pretrain_steps steps only the critic is updated, the policy rests
    critic_pretrain_steps: int = 0
    # True: the loop drops the step's groups whose rewards are all equal and samples more prompts, at most
    # max_resample_rounds more rounds, until the step is full (DAPO; train/dynamic_sampling.py)
    dynamic_sampling: bool = False
    max_resample_rounds: int = 0
    # What its learning signal compares among one prompt's responses (each reward with its group's mean,
    # with the greedy response's); None: nothing across them. Such an algorithm needs responses that can
    # differ (not rollout.top_k=1: the same k responses train nothing), checked at admission (run/fit.py).
    compares_samples: str | None = None


@runtime_checkable
class OnlineAlgorithm(Protocol):
    """Rollout -> advantages -> clipped/plain policy-gradient loss (PPO, REINFORCE++, RLOO, GRPO...).

    The online loop (train/online.py) reads every member below from every algorithm, nothing else. It is a
    contract, satisfied by shape: an algorithm does not subclass it (Protocols over inheritance). Every
    online algorithm's one base, online.OnlineBase, gives the default methods and `needs` (every loop
    switch off); an algorithm declares the keys it takes as dataclass fields of the same names.
    """

    lr: float
    epochs: int  # passes over each rollout
    group_size: int  # samples per prompt
    kl_coef: float  # weight of the KL to the reference (in the reward or the loss)
    needs: LoopNeeds  # the loop switches it turns on (LoopNeeds below), every one in one object
    # what its loss and advantages read beside the policy's log-probs (algorithms/signals.py), in the
    # order step 3 computes them: rollout.signals holds each by name
    signals: tuple
    # where each step's rows come from (the policy's samples, the teacher's, the task's demonstrations),
    # asked once a step by the loop: source.at(seed, step)
    source: Source

    @property
    def uses_critic(self) -> bool:
        """True: the loop builds and trains a critic (see CriticAlgorithm) and fills rollout.values."""
        ...

    def advantages(self, rollout: Rollout) -> tuple[Tensor, Tensor | None]:
        """(advantages (B, T), returns (B, T) or None); zero on padding."""
        ...

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        """Scalar loss of a minibatch and detached stats ({"train/clip_frac": ...})."""
        ...

    def rejected_streak(self, stats: dict, streak: int, step: int) -> int:
        """The steps in a row whose every minibatch rejected all its tokens (the rollout correction)."""
        ...

    def state_dict(self) -> dict:
        """What training changes in the algorithm (an adaptive kl_coef, running reward moments)."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restores state_dict()'s values."""
        ...


CRITIC_INITS = ("sft", "reward_model")


@runtime_checkable
class CriticAlgorithm(OnlineAlgorithm, Protocol):
    """An online algorithm with a learned critic (PPO, vanilla PG): uses_critic is True, the loop trains
    the critic with critic_lr and passes its values to loss(); the run builds it from critic_init."""

    critic_lr: float
    critic_init: str  # one of CRITIC_INITS: the critic's body starts as the SFT policy or the reward model


def check_critic(algo: CriticAlgorithm) -> None:
    """The checks of a critic's hyperparameters: critic_lr and critic_init."""
    check_lr("critic_lr", algo.critic_lr)
    check(algo.critic_init in CRITIC_INITS, "critic_init", algo.critic_init, f"one of {CRITIC_INITS}")


def check_online(algo, group_size_allowed: str = ">= 1", min_group_size: int = 1, ratio: bool = True) -> None:
    """The checks of the keys every online algorithm declares itself: lr, epochs, group_size, kl_coef,
    loss_aggregation, and (`ratio` False: the algorithm has no policy ratio to anchor)
    correction.ppo_anchor=old.
    `group_size_allowed` says why more than one is needed. The parts check their own keys."""
    check_lr("lr", algo.lr)
    check(algo.epochs >= 1, "epochs", algo.epochs, ">= 1")
    check(algo.group_size >= min_group_size, "group_size", algo.group_size, group_size_allowed)
    check(algo.kl_coef >= 0, "kl_coef", algo.kl_coef, ">= 0")
    check_coef("kl_coef", algo.kl_coef)
    check(
        algo.loss_aggregation in AGGREGATIONS,
        "loss_aggregation",
        algo.loss_aggregation,
        f"one of {AGGREGATIONS}",
    )
    anchor = algo.correction.ppo_anchor
    check(
        ratio or anchor == "old",
        "correction.ppo_anchor",
        anchor,
        "old for an algorithm without a policy ratio",
    )


def clip_bounds(algo) -> tuple[float, float | None, float | None, float | None]:
    """(clip.low, clip.high, clip.dual, clip.log_ratio_clamp) of a ratio-clipped algorithm (its RatioClip)."""
    return algo.clip.bounds()
