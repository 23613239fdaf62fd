"""DPPO (Divergence Proximal Policy Optimization; "Rethinking the Trust Region in LLM Reinforcement
Learning", arXiv 2602.04879): GRPO with a binary trust region on each token's divergence from the old
policy in place of PPO's ratio clip (the DivergenceMask policy term)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip, RolloutCorrection
from align_lab.rl.policy_losses import DPPO_DIVERGENCES, dppo_surrogate
from align_lab.value_checks import check


@dataclass(frozen=True)
class DivergenceMask:
    """Loss -sg(min(rho, ratio_cap)) A log pi on the tokens inside the trust region, 0 elsewhere
    (rl.dppo_surrogate). The bound is clip (and clip_high where A > 0; null: clip), read as a divergence
    (TV: a probability difference; binary_kl: nats), not a ratio range, as verl reads clip_ratio."""

    clip: RatioClip
    divergence: str = "tv"
    ratio_cap: float | None = 20.0

    def __post_init__(self) -> None:
        allowed = f"one of {DPPO_DIVERGENCES}"
        check(self.divergence in DPPO_DIVERGENCES, "divergence", self.divergence, allowed)
        check(self.ratio_cap is None or self.ratio_cap > 0, "ratio_cap", self.ratio_cap, "> 0 or null")
        self.clip.require_null(("dual",), "for DPPO (the mask replaces the clip)")

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        c = self.clip
        return dppo_surrogate(
            logprobs,
            old,
            batch.advantages,
            self.divergence,
            c.low,
            c.high,
            self.ratio_cap,
            c.log_ratio_clamp,
        )


@dataclass
class DPPO(GRPO):
    """GRPO's keys and advantages with the DivergenceMask term; token mean (verl's loss_agg_mode)."""

    divergence: str = "tv"
    ratio_cap: float | None = 20.0
    loss_aggregation: str = "token_mean"

    def policy_term(self, clip: RatioClip) -> DivergenceMask:
        return DivergenceMask(clip, self.divergence, self.ratio_cap)
