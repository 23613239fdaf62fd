"""The pairwise loop's contract (PairwiseAlgorithm), the pairs it hands a loss (Pairs), and what the
pairwise algorithms share: where each pair comes from (Route), the loop switches' defaults (PairwiseBase)
and the implicit-reward statistics (margin_stats).

As on the online side (algorithms/base.py, algorithms/online.py), the Protocol is a contract satisfied by
shape, never subclassed; PairwiseBase is a plain class, so an algorithm's MRO is itself, at most one
preset parent (online DPO's DPO), PairwiseBase and object, and its loss reads its own file and this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor


class Route(IntEnum):
    """Where a pair's two responses and its label come from (SAIL's code names, spec.md 16.1).

    The order is SAIL's Multinomial(r, p, g, 1 - r - p - g), so rl.sample_routes draws these codes.
    """

    DDP = 0  # dataset responses, label from the policy's implicit preference (SAIL-DP)
    DPP = 1  # two policy samples, label from the policy's implicit preference (SAIL-PP)
    DPR = 2  # two policy samples, label from the reward (SAIL-PR, online DPO)
    DPO = 3  # dataset responses, dataset label (offline DPO)


def is_sampled(routes: Tensor) -> Tensor:
    """(N,) bool: pairs whose responses the loop samples from the sampling policy."""
    return (routes == Route.DPP) | (routes == Route.DPR)


@dataclass(frozen=True)
class Pairs:
    """A step's N pairs as a loss reads them, named as in the DPO paper (x, the chosen y_w, the rejected
    y_l): sequence log-probs under the policy and the reference, summed over the response's policy tokens
    (per-token averages with algo.length_normalize), each pair's Route, and what KTO alone reads. KTO's
    unpaired samples (algo.desirable_threshold) travel as first rows (`chosen_*`) and second rows
    (`rejected_*`), labelled by `desirable`."""

    chosen_logps: Tensor  # (N,) log pi(y_w | x)
    rejected_logps: Tensor  # (N,) log pi(y_l | x)
    ref_chosen_logps: Tensor  # (N,) log pi_ref(y_w | x); zeros when the loss reads no reference
    ref_rejected_logps: Tensor  # (N,) log pi_ref(y_l | x)
    routes: Tensor  # (N,) Route codes
    # (2N,) log pi - log pi_ref of the step's responses each under the previous row's prompt (KTO's
    # reference point, TRL's mismatched KL batch), chosen rows first; None: not computed (mismatched_kl off)
    kl_logratios: Tensor | None = None
    # (2N,) bool: the unpaired samples' labels, first rows then second rows; None: pairs (chosen desirable)
    desirable: Tensor | None = None


@runtime_checkable
class PairwiseAlgorithm(Protocol):
    """Preference pairs -> a loss on sequence log-probs (DPO, IPO, SLiC, KTO, SimPO, ORPO, online DPO, SAIL).

    The loop (train/pairwise.py) draws the step's pairs from the task's preference data
    (uses_dataset_pairs) or, when every pair is sampled, from the train prompts; replaces the responses
    of sampled routes by two samples of the sampling policy (refreshed from the policy every sync_every
    steps); orders DPR pairs by the reward; then calls loss(pairs). Labels from the policy itself are
    drawn in loss. It reads every member below from every algorithm, nothing else. It is a contract,
    satisfied by shape: an algorithm does not subclass it; PairwiseBase gives the defaults.
    """

    lr: float
    uses_dataset_pairs: bool  # False: pairs are built from train prompts (every route sampled)
    sync_every: int  # steps between copies of the policy into the sampling policy (1 = current)
    # True: the loss gets per-token averages of the log-probs instead of their sums (TRL's IPO)
    length_normalize: bool
    # True: the loop fills pairs.kl_logratios (one more forward of each model: KTO's reference point)
    mismatched_kl: bool
    # None: the step's items are pairs; a number: unpaired samples of the preferences stage, desirable
    # when the run's reward scores them above it (KTO); the loop fills pairs.desirable
    desirable_threshold: float | None
    # False: the loss reads no reference log-probs (SimPO, ORPO), so the loop skips the reference forward
    # and passes zeros; evaluation still compares with the SFT policy
    uses_reference: bool

    def routes(self, n: int) -> Tensor:
        """(N,) Route codes of the step's pairs (may use the global torch RNG: it is checkpointed)."""
        ...

    def loss(self, pairs: Pairs) -> tuple[Tensor, dict]:
        """Scalar loss of the step's N pairs and plain-float stats."""
        ...

    def check_data(self, items: list) -> None:
        """Looks at the training items once before the first step (warnings only)."""
        ...

    def state_dict(self) -> dict:
        """What training changes in the algorithm, for the checkpoint (as OnlineAlgorithm)."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restores state_dict()'s values."""
        ...


class PairwiseBase:
    """The defaults of the loop switches (PairwiseAlgorithm) and its default methods: offline dataset
    pairs, summed log-probs, a reference, no extra rows, nothing that training changes. An algorithm
    that takes a switch as a key declares it as a dataclass field of the same name (DPO's
    length_normalize, online DPO's sync_every, KTO's desirable_threshold)."""

    uses_dataset_pairs: ClassVar[bool] = True
    sync_every: ClassVar[int] = 1  # nothing is sampled
    length_normalize: ClassVar[bool] = False
    mismatched_kl: ClassVar[bool] = False
    desirable_threshold: ClassVar[float | None] = None
    uses_reference: ClassVar[bool] = True

    def routes(self, n: int) -> Tensor:
        """(N,) every pair the dataset's, with its label (offline)."""
        return torch.full((n,), int(Route.DPO))  # (N,)

    def check_data(self, items: list) -> None:
        """Nothing to warn about."""

    def state_dict(self) -> dict:
        """Nothing: training changes no algorithm value."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restores state_dict()'s values (each key is an attribute)."""
        for key, value in state.items():
            setattr(self, key, value)


def margin_stats(chosen_rewards: Tensor, rejected_rewards: Tensor) -> dict:
    """Implicit-reward margin beta*h and the share of pairs it orders like the label, as floats."""
    margin = (chosen_rewards - rejected_rewards).detach()  # (N,)
    return {
        "train/reward_margin": margin.mean().item(),
        "train/pair_accuracy": (margin > 0).float().mean().item(),
        "train/chosen_reward": chosen_rewards.detach().mean().item(),
        "train/rejected_reward": rejected_rewards.detach().mean().item(),
    }
