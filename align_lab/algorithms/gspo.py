"""GSPO (Zheng et al. 2025, Qwen, arXiv 2507.18071): GRPO with one length-normalised ratio per sequence
(the SequenceClip policy term)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip, RolloutCorrection
from align_lab.rl.policy_losses import sequence_clipped_surrogate, sequence_mean_advantages
from align_lab.value_checks import check

RATIO_FORMS = ("token", "sequence")
ADVANTAGE_FORMS = ("token", "sequence_mean")


@dataclass(frozen=True)
class SequenceClip:
    """Clips the sequence ratio s = (pi(y|x) / pi_old(y|x))^(1/|y|) to [1 - clip.low, 1 + clip.high]
    (rl.sequence_clipped_surrogate). With a rollout correction, s averages over the tokens it keeps
    (AReaL's GSPO with a rejection mask, verl's gspo on its rejection-narrowed response_mask); the
    aggregation still follows correction.masked_in_denominator. advantage_form=sequence_mean gives every
    token its sequence's mean advantage over the same kept tokens (AReaL); it changes the numbers only where
    advantages vary within a sequence (use_kl_loss=false's KL-shaped returns)."""

    clip: RatioClip
    ratio_form: str = "token"
    advantage_form: str = "token"

    def __post_init__(self) -> None:
        self.clip.require_null(("dual",), "for GSPO (no dual-clip in the paper)")
        check(self.ratio_form in RATIO_FORMS, "ratio_form", self.ratio_form, f"one of {RATIO_FORMS}")
        allowed = f"one of {ADVANTAGE_FORMS}"
        check(self.advantage_form in ADVANTAGE_FORMS, "advantage_form", self.advantage_form, allowed)

    def __call__(self, batch, logprobs: Tensor, old: Tensor, correction: RolloutCorrection):
        kept = batch.mask  # (B, T) the tokens s averages over
        if correction.mode != "none" or correction.reject:
            _, rejected = correction.weights(batch, logprobs, batch.mask)  # (B, T) bool
            kept = batch.mask * ~rejected
        advantages = batch.advantages  # (B, T)
        if self.advantage_form == "sequence_mean":
            advantages = sequence_mean_advantages(advantages, kept)  # (B, 1)
        return sequence_clipped_surrogate(
            logprobs,
            old,
            advantages,
            kept,
            self.clip.low,
            self.clip.high,
            self.clip.log_ratio_clamp,
            self.ratio_form == "token",
        )


@dataclass
class GSPO(GRPO):
    """GRPO's keys and advantages with the SequenceClip term. The paper's ranges are 3e-4 / 4e-4 (two
    orders below a token clip: s is a geometric mean)."""

    clip: RatioClip = field(default_factory=lambda: RatioClip(low=3e-4, high=4e-4))
    loss_aggregation: str = "seq_mean_token_mean"
    ratio_form: str = "token"  # token: GSPO-token's s_it (verl); sequence: s_i's own gradient (TRL, AReaL)
    advantage_form: str = "token"  # token: each token's own (verl, TRL, OpenRLHF); sequence_mean: AReaL

    def policy_term(self, clip: RatioClip) -> SequenceClip:
        return SequenceClip(clip, self.ratio_form, self.advantage_form)
