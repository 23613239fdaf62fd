"""ReMax (Li et al. 2023, ICML 2024; spec section 8): REINFORCE with the greedy response as baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from align_lab.algorithms.base import OnlineAlgorithm, Rollout, RolloutCorrection, check_online
from align_lab.checks import check
from align_lab.rl import (
    aggregate_loss,
    broadcast_to_tokens,
    discounted_returns,
    kl_penalty,
    shape_token_rewards,
)


@dataclass
class ReMax(RolloutCorrection, OnlineAlgorithm):
    """One sample and one greedy response per prompt: A_t = G_t - r(x, y_greedy), no ratio or clip.

    G_t is the return-to-go of the per-token KL-shaped rewards (verl compute_remax_outcome_advantage);
    the baseline is the greedy response's raw score, which the loop fills in (greedy_baseline).
    """

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 1
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    kl_clamp: float | None = None  # every KL estimate bounded to [-kl_clamp, kl_clamp]; None = unbounded
    gamma: float = 1.0
    loss_aggregation: str = "seq_mean_token_sum"

    greedy_baseline: ClassVar[bool] = True  # the loop fills rollout.baseline_scores (greedy responses)

    def __post_init__(self) -> None:
        check_online(self, ratio=False)
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        if rollout.baseline_scores is None:
            raise ValueError("ReMax needs rollout.baseline_scores (the greedy responses' scores)")
        kl = kl_penalty(rollout.logprobs, rollout.ref_logprobs, self.kl_estimator, clamp=self.kl_clamp)
        rewards = shape_token_rewards(rollout.scores, kl, rollout.mask, self.kl_coef)  # (B, T)
        returns = discounted_returns(rewards, rollout.mask, self.gamma)  # (B, T)
        return returns - broadcast_to_tokens(rollout.baseline_scores, rollout.mask), None

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        corrected = self.correct(batch, -batch.advantages * logprobs, logprobs)
        loss = aggregate_loss(corrected.per_token, corrected.mask, self.loss_aggregation, rows=corrected.rows)
        return loss, {"train/clip_frac": 0.0, **corrected.stats}
