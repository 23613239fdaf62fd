"""The pairwise loop's contract: where each pair comes from (a route), then a loss on sequence log-probs."""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class PairwiseAlgorithm(Protocol):
    """Preference pairs -> a loss on sequence log-probs (DPO, IPO, SLiC, online DPO, SAIL).

    The loop draws the step's pairs from the task's preference data (uses_dataset_pairs) or, when
    every pair is sampled, from the train prompts; replaces the responses of sampled routes by two
    samples of the sampling policy (refreshed from the policy every sync_every steps); orders DPR
    pairs by the reward; then calls pair_loss. Labels from the policy itself are drawn in pair_loss.
    An algorithm subclasses this Protocol to inherit the defaults below and overrides what it uses.
    """

    lr: float
    uses_dataset_pairs: bool  # False: pairs are built from train prompts (every route sampled)
    sync_every: int  # steps between copies of the policy into the sampling policy (1 = current)
    # True: pair_loss gets per-token averages of the log-probs instead of their sums (TRL's IPO)
    length_normalize: bool = False
    # True: pair_loss also gets kl_logratios (2N,), log pi - log pi_ref of the step's responses each
    # under the previous row's prompt (KTO's reference point, TRL's mismatched KL batch)
    mismatched_kl: bool = False
    # None: the step's items are pairs; a number: unpaired samples of the preferences stage, desirable
    # when the run's reward scores them above it (KTO); pair_loss then also gets `desirable` (2N,) bool
    desirable_threshold: float | None = None

    @property
    def uses_reference(self) -> bool:
        """False: the loss reads no reference log-probs (SimPO, ORPO), so the loop skips the reference
        forward and passes zeros; evaluation still compares with the SFT policy."""
        return True

    def routes(self, n: int) -> Tensor:
        """(N,) Route codes of the step's pairs (may use the global torch RNG: it is checkpointed)."""
        ...

    def pair_loss(
        self,
        chosen_logps: Tensor,
        rejected_logps: Tensor,
        ref_chosen_logps: Tensor,
        ref_rejected_logps: Tensor,
        routes: Tensor,
    ) -> tuple[Tensor, dict]:
        """Scalar loss of N pairs ((N,) summed or averaged log-probs) and plain-float stats."""
        ...

    def check_data(self, items: list) -> None:
        """Looks at the training items once before the first step (warnings only). Default: nothing."""

    def state_dict(self) -> dict:
        """What training changes in the algorithm, for the checkpoint (as OnlineAlgorithm). Default: none."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restores state_dict()'s values (default: each key is an attribute)."""
        for key, value in state.items():
            setattr(self, key, value)
