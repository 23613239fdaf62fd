"""GDPO (Group reward-Decoupled normalisation Policy Optimisation; Liu et al. 2026, NVIDIA, arXiv
2601.05242): GRPO whose advantage normalises each reward source of reward=combined within its group on
its own, sums them with the sources' weights, then whitens the sum over the batch's tokens."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.signals import REWARD_SOURCES, RewardSources
from align_lab.rl import broadcast_to_tokens, decoupled_group_normalize, masked_whiten
from align_lab.value_checks import check


@dataclass
class GDPO(GRPO):
    """GRPO's keys and loss; advantages sum_k w_k A_k (rl.decoupled_group_normalize), whitened over the
    step's response tokens with batch_whiten (the paper; verl masked_whiten, unbiased, eps 1e-8).

    The weights are reward=combined's (reward.components.<name>.weight): the run refuses another reward
    or a single source (run/cross_checks.py). Only the sources' scores enter: KL in the loss
    (use_kl_loss=true), no overlong punishment, no dynamic sampling, no per-turn env rewards.
    """

    batch_whiten: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        why = "for GDPO (it normalises the reward sources' scores only)"
        check(self.std_scope == "group", "std_scope", self.std_scope, f"group {why}")
        check(self.use_kl_loss, "use_kl_loss", self.use_kl_loss, f"true {why}")
        check(self.overlong_buffer is None, "overlong_buffer", self.overlong_buffer, f"null {why}")
        check(not self.dynamic_sampling, "dynamic_sampling", self.dynamic_sampling, f"false {why}")

    @property
    def signals(self) -> tuple:
        """GRPO's, and each reward source's score: the run needs reward=combined with two sources or more."""
        return (*super().signals, RewardSources())

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        sources = rollout.signals.get(REWARD_SOURCES)  # SourceScores (B, K)
        if sources is None or rollout.turn_rewards is not None:
            raise ValueError(
                "algo=gdpo: needs each reward source's score (reward=combined) and no per-turn env rewards"
            )
        summed = decoupled_group_normalize(
            sources.scores,
            sources.weights,
            self.group_size,
            self.scale_by_std,
            self.std_unbiased,
            self.eps,
        )  # (B,)
        advantages = broadcast_to_tokens(self.reward_clipping(summed), rollout.mask)  # (B, T)
        if self.batch_whiten:
            advantages = masked_whiten(advantages, rollout.mask, unbiased=True)  # (B, T)
        return advantages, None
