"""The online loop's contract (OnlineAlgorithm, CriticAlgorithm), the rollout batch it passes around, and
the checks the algorithms share."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Protocol, runtime_checkable

from torch import Tensor

from align_lab.algorithms.parts import Corrected, RolloutCorrection  # noqa: F401 (re-exported)
from align_lab.rl import AGGREGATIONS
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
    # reward=combined: each source's own (unweighted) score (B, K), its names and weights; else None, ()
    source_scores: Tensor | None = None
    source_names: tuple[str, ...] = ()
    source_weights: tuple[float, ...] = ()
    teacher_logprobs: Tensor | None = None  # (B, T) under the teacher (distillation); None: no teacher
    # (B,) 1 where the teacher saw what the student did not (SDPO: a successful sibling), 0 where it saw
    # the student's own prompt and so teaches nothing; None: every row is taught (a teacher of its own)
    teacher_informed: Tensor | None = None
    # (B, T) the loss's per-token divergence to the teacher over the vocabulary, with the policy's graph
    # (algo.vocabulary_divergence, GKD), set on a minibatch by the loop; None otherwise
    teacher_divergence: Tensor | None = None

    def rows(self, index: Tensor) -> Rollout:
        """The minibatch of rows `index` (group statistics are already folded into advantages)."""
        picked = {
            f.name: getattr(self, f.name)[index]
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **picked)


@dataclass(frozen=True)
class LoopNeeds:
    """What an online algorithm asks of the loop beyond rollout -> advantages -> loss: every loop switch in
    one object, each off by default, read by the loop (train/), the run's admission (run/) and nothing
    else. An algorithm declares it once (OnlineBase.needs): a switch that is a property of the algorithm
    (ReMax's greedy baseline) is written there; one users type (PPO's entropy_coef, DAPO's
    dynamic_sampling) stays the algorithm's field and `needs` passes it on, so the key keeps working."""

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
    # True: the loop also samples one greedy response per prompt; its score, repeated over the prompt's
    # group, is rollout.baseline_scores (ReMax)
    greedy_baseline: bool = False
    # True: the advantages read each reward source's score (rollout.source_scores), so the run needs
    # reward=combined with two sources or more (GDPO; run/reward_sources.py check_sources)
    per_source_rewards: bool = False
    # True: step 1 samples from the teacher, not the policy (off-policy distillation: algorithms/distill.py)
    samples_from_teacher: bool = False
    # True: some steps' rows are the task's demonstrations of the step's prompts, nothing sampled (GKD's
    # seq_kd=false: TRL's dataset completions; rollout/demonstrated.py)
    samples_from_data: bool = False
    # The policy teaches itself under other prompts (SDPO: algorithms/self_distill.py), step 3 scoring
    # every row under algo.teacher_prompts': "ema" (a copy of the starting policy that follows it at
    # teacher_follow_rate after each optimiser step), "base" (that copy, frozen), "live" (the policy);
    # None: no self-teacher
    self_teacher: str | None = None
    teacher_follow_rate: float = 0.0
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
    # None, or (student_logits, teacher_logits) -> (b, T): the loss's per-token divergence (GKD)
    vocabulary_divergence: object

    @property
    def uses_critic(self) -> bool:
        """True: the loop builds and trains a critic (see CriticAlgorithm) and fills rollout.values."""
        ...

    @property
    def uses_reference(self) -> bool:
        """False: no KL term can be non-zero, so the loop skips the reference forward (every KL is 0)."""
        ...

    @property
    def uses_teacher(self) -> bool:
        """True: the run builds the teacher stage, the loop scores every row with it (teacher_logprobs)."""
        ...

    def draws_from_teacher(self, seed: int, step: int) -> bool:
        """Whether step `step`'s rollout is the teacher's samples (run `seed`; a pure function of both)."""
        ...

    def draws_from_data(self, seed: int, step: int) -> bool:
        """Whether step `step`'s rows are the task's demonstrations, not samples (a pure function)."""
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
    loss_aggregation, and (`ratio` False: the algorithm has no policy ratio to anchor) ppo_anchor=old.
    `group_size_allowed` says why more than one is needed. The parts check their own keys."""
    check_lr("lr", algo.lr)
    check(algo.epochs >= 1, "epochs", algo.epochs, ">= 1")
    check(algo.group_size >= min_group_size, "group_size", algo.group_size, group_size_allowed)
    check(algo.kl_coef >= 0, "kl_coef", algo.kl_coef, ">= 0")
    check(
        algo.loss_aggregation in AGGREGATIONS,
        "loss_aggregation",
        algo.loss_aggregation,
        f"one of {AGGREGATIONS}",
    )
    anchor = algo.ppo_anchor
    check(ratio or anchor == "old", "ppo_anchor", anchor, "old for an algorithm without a policy ratio")


def clip_bounds(algo) -> tuple[float, float | None, float | None, float | None]:
    """(clip_low, clip_high, dual_clip, log_ratio_clamp) of a ratio-clipped algorithm (its RatioClip)."""
    return algo.clipping.bounds()
