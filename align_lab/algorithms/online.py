"""The one base of every online algorithm (OnlineBase): the keys they all take beyond their own (the
rollout correction's, the KL estimate's) built into typed parts, and the loop switches' default (needs).

The loop's contract is the OnlineAlgorithm Protocol (base.py), which an algorithm satisfies by shape, never
by subclassing it; OnlineBase is a plain dataclass, so an algorithm's MRO is itself, at most one preset
parent (GSPO's GRPO), OnlineBase and object. Hydra builds an algorithm from the keys of its
conf/algo/<name>.yaml: a flat key is a dataclass field, from which __post_init__ builds a part (KLTerm);
a part's node (algo.correction, algo.clip) is a field holding the part, built from the node's keys. A part
checks its own keys (errors name the key the user typed: algo.correction.high=...)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

from torch import Tensor

from align_lab.algorithms.base import LoopNeeds
from align_lab.algorithms.parts import KLTerm, RolloutCorrection
from align_lab.algorithms.signals import Reference
from align_lab.algorithms.sources import Source


def part(cls, keys):
    """The part `cls` built from the algorithm's flat keys of the same names (the keys users type)."""
    return cls(**{f.name: getattr(keys, f.name) for f in fields(cls)})


@dataclass
class OnlineBase:
    """The keys every online algorithm takes beyond its own, and the loop switches it turns on (needs).

    Parts: `correction` (RolloutCorrection, the config node algo.correction, built by Hydra from it) and
    `kl_term` (KLTerm: kl_estimator, kl_clamp; built in __post_init__, never written after). An algorithm
    declares its own keys as fields (lr, epochs, group_size, its defaults of kl_coef and kl_estimator) and
    builds its loss parts from them (the PPO-clip family: parts.ClipLoss).
    """

    kl_coef: float = 0.0  # weight of the KL to the reference (in the reward or the loss)
    kl_estimator: str = "k1"  # each algorithm's paper default
    kl_clamp: float | None = None  # every KL estimate bounded to [-kl_clamp, kl_clamp]; None: unbounded
    # the rollout correction: the node algo.correction (conf/algo_shared/rollout_correction.yaml)
    correction: RolloutCorrection = field(default_factory=RolloutCorrection)

    # The loop switches (base.LoopNeeds), all off here. An algorithm declares its own once: a fixed one as
    # this class attribute (ReMax: needs = LoopNeeds(compares_samples=...)), one users type as a field of
    # the same name that a `needs` property passes on (PPO's entropy_coef, GRPO's dynamic_sampling)
    needs: ClassVar[LoopNeeds] = LoopNeeds()
    # where a step's rows come from (algorithms/sources.py): the policy's samples, every step
    source: ClassVar[Source] = Source()

    def __post_init__(self) -> None:
        self.kl_term = part(KLTerm, self)

    @property
    def uses_critic(self) -> bool:
        """True: the loop builds and trains a critic (see CriticAlgorithm) and fills rollout.values."""
        return False

    @property
    def signals(self) -> tuple:
        """What the loss reads beside the policy's log-probs (algorithms/signals.py): the reference when a
        KL term can be non-zero (kl_coef, or the adaptive controller's target), else nothing (no reference
        forward: every KL is 0). A family adds its own after these: (*super().signals, TeacherLogprobs())."""
        return (Reference(),) if self.kl_coef != 0 or self.needs.kl_target is not None else ()

    def kl(self, logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
        """(B, T) the algorithm's KL estimate of log pi - log pi_ref per token (kl_term)."""
        return self.kl_term(logprobs, ref_logprobs)

    def rejected_streak(self, stats: dict, streak: int, step: int) -> int:
        """The correction's count of steps in a row that rejected every token (RolloutCorrection)."""
        return self.correction.rejected_streak(stats, streak, step)

    def state_dict(self) -> dict:
        """What training changes in the algorithm (an adaptive kl_coef, running reward moments), as plain
        values for the checkpoint; never a key (those are the fields, which training never changes)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restores state_dict()'s values (default: each key is an attribute)."""
        for key, value in state.items():
            setattr(self, key, value)
