"""Signals: what a loss (or advantages()) reads beside the policy's own log-probs, each under one name in
`rollout.signals`. An algorithm declares the signals it reads (`signals`, a tuple of the objects below);
the loop and the Learner fill them for every algorithm alike, and the run builds what they need (the
reference, the teacher stage, a self-teacher's copy) from the declaration alone (run/build.py). A new
family reads the signals that exist; a new signal is one class here and its producer in train/signals.py.

Where each is made: step 3, by the Learner's forward of frozen models (Reference, TeacherLogprobs,
SelfTeacher); per minibatch, inside the update's forward (VocabularyDivergence); steps 1-2
(GreedyBaseline, RewardSources). Shapes: B rows, T response tokens, K reward sources."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

REFERENCE = "reference"  # (B, T) log-probs of the responses under the frozen reference (SFT)
TEACHER = "teacher"  # (B, T) log-probs of the responses under the teacher (a stage, or the policy's own)
TEACHER_INFORMED = "teacher_informed"  # (B,) 1 where the self-teacher saw what the student did not
VOCABULARY_DIVERGENCE = "vocabulary_divergence"  # (B, T) with the policy's graph, set per minibatch
GREEDY_BASELINE = "greedy_baseline"  # (B,) the greedy response's return, repeated over its group
REWARD_SOURCES = "reward_sources"  # SourceScores: each reward source's own score


@dataclass(frozen=True)
class Reference:
    """The KL terms' reference: signals["reference"]. Without it (no KL term can be non-zero) the loop
    skips the reference forward and every KL reads the policy's own log-probs (so is 0)."""

    names: ClassVar[tuple[str, ...]] = (REFERENCE,)


@dataclass(frozen=True)
class TeacherLogprobs:
    """A distillation's teacher (the teacher stage, run/teacher.py) scoring every token:
    signals["teacher"]."""

    names: ClassVar[tuple[str, ...]] = (TEACHER,)


@dataclass(frozen=True)
class SelfTeacher:
    """The policy teaching itself under other prompts (SDPO: algorithms/self_distill.py): signals["teacher"]
    under each row's teacher prompt (the algorithm's `teacher_prompts`) and signals["teacher_informed"].
    `kind`: "ema" (a copy of the starting policy that follows it at `follow_rate` after each optimiser
    step), "base" (that copy, frozen), "live" (the policy)."""

    kind: str
    follow_rate: float = 0.0
    names: ClassVar[tuple[str, ...]] = (TEACHER, TEACHER_INFORMED)


@dataclass(frozen=True)
class VocabularyDivergence:
    """`divergence(student_logits, teacher_logits)` -> (b, T), the loss's per-token divergence to the
    teacher over the whole vocabulary (GKD), computed inside the update's forward micro-batch by
    micro-batch: signals["vocabulary_divergence"]. `row_copies`: the fp32 (T, V) tensors it adds to an
    update row (the memory plan's figure, train/memory/)."""

    divergence: Callable[[Tensor, Tensor], Tensor]
    row_copies: float
    names: ClassVar[tuple[str, ...]] = (VOCABULARY_DIVERGENCE,)


@dataclass(frozen=True)
class GreedyBaseline:
    """One greedy response per prompt, sampled and scored beside the group (ReMax):
    signals["greedy_baseline"]."""

    names: ClassVar[tuple[str, ...]] = (GREEDY_BASELINE,)


@dataclass(frozen=True)
class RewardSources:
    """Each reward source's own score (GDPO): signals["reward_sources"]. The run needs reward=combined with
    two sources or more (run/reward_sources.py); the loop fills it for any algorithm whose reward has
    sources, for the train/reward_<name> metrics."""

    names: ClassVar[tuple[str, ...]] = (REWARD_SOURCES,)


@dataclass(frozen=True)
class SourceScores:
    """reward=combined's scores by source: (B, K) unweighted, the sources' names and weights."""

    scores: Tensor
    names: tuple[str, ...]
    weights: tuple[float, ...]

    def __getitem__(self, index) -> SourceScores:
        """The rows `index` (a minibatch)."""
        return SourceScores(self.scores[index], self.names, self.weights)


def reads(algo, kind: type):
    """The signal of type `kind` that `algo` declares, or None (an algorithm without `signals`: none)."""
    return next((s for s in getattr(algo, "signals", ()) if isinstance(s, kind)), None)
