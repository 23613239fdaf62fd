"""Vanilla policy gradient (Ahmadian et al. 2024, Back to Basics section 3; spec section 4)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import (
    Rollout,
    check_critic,
    check_online,
)
from align_lab.algorithms.credit import check_credit, observation_steps, placed_rewards
from align_lab.algorithms.online import OnlineBase
from align_lab.algorithms.parts import Aggregation, ClipLoss, Reinforce
from align_lab.rl import gae, shape_token_rewards
from align_lab.value_checks import check


@dataclass
class VanillaPG(OnlineBase):
    """Token-level REINFORCE: return-to-go of KL-shaped rewards minus a learned baseline b_phi(s_t).

    A CriticAlgorithm (base.py) by shape. PPO with lam = 1 and neither ratio nor clip: loss
    -sum_t m_t stopgrad(G_t - b(s_t)) l_t, plus the baseline's regression
    1/2 (b(s_t) - G_t)^2 (a token mean: every state weighs the same).
    """

    lr: float = 1e-3
    critic_lr: float = 3e-3
    epochs: int = 1
    group_size: int = 1
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    gamma: float = 1.0
    across_observations: str = "skip"  # multi-turn returns: skip observation tokens (verl) | step (OpenRLHF)
    turn_rewards_at: str = "turn"  # a turn's env reward at its last token | last (verl, OpenRLHF)
    loss_aggregation: str = "seq_mean_token_sum"
    critic_init: str = "sft"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_online(self, ratio=False)
        check_critic(self)
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        check_credit(self)
        aggregation = Aggregation(self.loss_aggregation)
        self.clip_loss = ClipLoss(Reinforce(), self.kl_term, self.correction, aggregation, kl_in_loss=False)
        self.value_aggregation = Aggregation("token_mean")  # every state weighs the same

    @property
    def uses_critic(self) -> bool:
        return True

    def advantages(self, rollout: Rollout) -> tuple[Tensor, Tensor]:
        kl = self.kl(rollout.logprobs, rollout.ref_logprobs)  # (B, T)
        outcome, turns = placed_rewards(rollout, self.turn_rewards_at)  # (B,), (B, T) or None
        rewards = shape_token_rewards(outcome, kl, rollout.mask, self.kl_coef, turns)  # (B, T)
        steps = observation_steps(rollout, self.across_observations)  # (B, T) or None
        # GAE with lam = 1 telescopes to the Monte-Carlo return minus the baseline: (G - b, G)
        return gae(rewards, rollout.values, rollout.mask, self.gamma, 1.0, steps)

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        policy_loss, stats = self.clip_loss(batch, logprobs, self.kl_coef)  # -A log pi, corrected
        value_loss = self.value_aggregation((values - batch.returns).square() / 2, batch.mask)
        return policy_loss + value_loss, stats | {"train/value_loss": value_loss.item()}
