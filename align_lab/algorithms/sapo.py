"""SAPO (Gao et al. 2025, Qwen, arXiv 2511.20347): a soft sigmoid gate instead of PPO's hard clip."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.grpo import GRPO
from align_lab.rl.policy_losses import soft_gated_surrogate
from align_lab.value_checks import check


@dataclass
class SAPO(GRPO):
    """GRPO's advantages; loss -sigmoid(tau (rho - 1)) 4 / tau A per token, tau = tau_pos where A > 0
    else tau_neg (rl.soft_gated_surrogate); seq_mean_token_mean as verl and TRL. GRPO's clip,
    clip_high and dual_clip have no effect here: the two latter must stay null."""

    tau_pos: float = 1.0
    tau_neg: float = 1.05
    loss_aggregation: str = "seq_mean_token_mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.tau_pos > 0, "tau_pos", self.tau_pos, "> 0")
        check(self.tau_neg > 0, "tau_neg", self.tau_neg, "> 0")
        for key in ("clip_high", "dual_clip"):
            check(
                getattr(self, key) is None,
                key,
                getattr(self, key),
                "null for SAPO (the gate replaces the clip)",
            )

    def policy_term(self, batch: Rollout, logprobs: Tensor, old: Tensor) -> tuple[Tensor, Tensor]:
        return soft_gated_surrogate(
            logprobs, old, batch.advantages, self.tau_pos, self.tau_neg, self.log_ratio_clamp
        )
