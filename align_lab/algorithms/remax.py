"""ReMax (Li et al. 2023, ICML 2024; spec section 8): REINFORCE with the greedy response as baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from align_lab.algorithms.base import LoopNeeds, Rollout, check_online
from align_lab.algorithms.credit import check_credit, episode_return, observation_steps
from align_lab.algorithms.online import OnlineBase
from align_lab.algorithms.parts import Aggregation, ClipLoss, Reinforce
from align_lab.algorithms.signals import GREEDY_BASELINE, GreedyBaseline
from align_lab.rl import broadcast_to_tokens, discounted_returns, shape_token_rewards
from align_lab.value_checks import check


@dataclass
class ReMax(OnlineBase):
    """One sample and one greedy response per prompt: A_t = G_t - r(x, y_greedy), no ratio or clip.

    G_t is the return-to-go of the per-token KL-shaped rewards (verl compute_remax_outcome_advantage);
    the baseline is the greedy episode's total return (its score plus its turns' rewards, as the
    sampled episode's return), which the loop fills in (the GreedyBaseline signal).
    """

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 1
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    gamma: float = 1.0
    across_observations: str = "skip"  # multi-turn returns: skip observation tokens (verl) | step (OpenRLHF)
    loss_aggregation: str = "seq_mean_token_sum"

    needs: ClassVar[LoopNeeds] = LoopNeeds(compares_samples="each reward with the greedy response's")

    @property
    def signals(self) -> tuple:
        return (*super().signals, GreedyBaseline())  # the greedy responses' returns

    def __post_init__(self) -> None:
        super().__post_init__()
        check_online(self, ratio=False)
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        check_credit(self, turn_rewards=False)
        aggregation = Aggregation(self.loss_aggregation)
        self.clip_loss = ClipLoss(Reinforce(), self.kl_term, self.correction, aggregation, kl_in_loss=False)

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        baseline = rollout.signals.get(GREEDY_BASELINE)  # (B,)
        if baseline is None:
            raise ValueError("ReMax needs rollout.signals['greedy_baseline'] (the greedy responses' scores)")
        kl = self.kl(rollout.logprobs, rollout.ref_logprobs)  # (B, T)
        # multi-turn: the episode return at the last policy token; the baseline the greedy episode's
        rewards = shape_token_rewards(episode_return(rollout), kl, rollout.mask, self.kl_coef)  # (B, T)
        steps = observation_steps(rollout, self.across_observations)  # (B, T) or None
        returns = discounted_returns(rewards, rollout.mask, self.gamma, steps)  # (B, T)
        return returns - broadcast_to_tokens(baseline, rollout.mask), None

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        return self.clip_loss(batch, logprobs, self.kl_coef)  # -A log pi, corrected, aggregated
