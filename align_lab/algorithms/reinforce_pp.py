"""REINFORCE++ (Hu et al. 2025, arXiv 2501.03262, Eqs. 4-5; spec section 10).

REINFORCE++-baseline (v9 Eqs. 6-8; spec section 11) is this class with group_baseline and use_kl_loss
switched on (conf/algo/reinforce_pp_baseline.yaml), as OpenRLHF's reinforce_baseline estimator is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from align_lab.algorithms.base import LoopNeeds, Rollout, check_online
from align_lab.algorithms.credit import (
    check_credit,
    clip_episode,
    episode_return,
    observation_steps,
    placed_rewards,
)
from align_lab.algorithms.online import OnlineBase, part
from align_lab.algorithms.parts import Aggregation, ClipLoss, PPOClip, RatioClip
from align_lab.algorithms.reward_clip import RewardClip
from align_lab.rl import (
    discounted_returns,
    group_normalize,
    masked_whiten,
    shape_token_rewards,
)
from align_lab.value_checks import check


@dataclass
class ReinforcePP(OnlineBase):
    """Critic-free PPO-clip: token-level k1 KL in the reward, return-to-go, global batch whitening. The
    loss is parts.ClipLoss with the PPOClip term; with use_kl_loss (v9 Eq. 8) + kl_coef * KL per token
    on pi_theta (with k2 its gradient is the reverse-KL policy gradient)."""

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 1
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    gamma: float = 1.0
    across_observations: str = "skip"  # multi-turn returns: skip observation tokens (verl) | step (OpenRLHF)
    turn_rewards_at: str = "turn"  # a turn's env reward at its last token | last (verl, OpenRLHF)
    # the ratio clip (parts.RatioClip, the node algo.clip)
    clip: RatioClip = field(default_factory=RatioClip)  # algo.clip.{low, high, dual, log_ratio_clamp}
    reward_clip: float | None = 10.0  # OpenRLHF's scores clamp (RewardClip); None = verl
    reward_clip_low: float | None = None
    whiten_unbiased: bool = False
    whiten_eps: float = 1e-8
    loss_aggregation: str = "token_mean"
    group_baseline: bool = False  # subtract each prompt's mean score first (REINFORCE++-baseline Eq. 6)
    use_kl_loss: bool = False  # KL as kl_coef * mean KL_t in the loss, on pi_theta, not in the reward

    @property
    def needs(self) -> LoopNeeds:
        """With group_baseline, the advantage compares each reward with its group's mean."""
        compared = "each reward with its group's mean" if self.group_baseline else None
        return LoopNeeds(compares_samples=compared)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.group_baseline:
            check_online(self, ">= 2 with group_baseline (a group of one has no baseline)", min_group_size=2)
        else:
            check_online(self)
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        check_credit(self)
        check(self.whiten_eps >= 0, "whiten_eps", self.whiten_eps, ">= 0")
        self.reward_clipping = part(RewardClip, self)  # clips the episode's total (credit.clip_episode)
        self.clip_loss = ClipLoss(
            PPOClip(self.clip),
            self.kl_term,
            self.correction,
            Aggregation(self.loss_aggregation),
            kl_in_loss=self.use_kl_loss,
        )

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        scores, turns = placed_rewards(rollout, self.turn_rewards_at)  # (B,), (B, T) or None
        if self.group_baseline:  # OpenRLHF: on the raw scores, before the reward clip
            # the baseline is the group's mean episode return; the turns' rewards stay at their turns
            scores = group_normalize(episode_return(rollout), self.group_size, scale_by_std=False)
            scores = scores if turns is None else scores - turns.sum(-1)
        scores = clip_episode(scores, turns, self.reward_clipping)  # (B,) the total clipped
        kl = self.kl(rollout.logprobs, rollout.ref_logprobs)  # (B, T)
        reward_kl_coef = 0.0 if self.use_kl_loss else self.kl_coef
        rewards = shape_token_rewards(scores, kl, rollout.mask, reward_kl_coef, turns)  # (B, T)
        steps = observation_steps(rollout, self.across_observations)  # (B, T) or None
        returns = discounted_returns(rewards, rollout.mask, self.gamma, steps)  # (B, T)
        whitened = masked_whiten(returns, rollout.mask, unbiased=self.whiten_unbiased, eps=self.whiten_eps)
        return whitened, None

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        return self.clip_loss(batch, logprobs, self.kl_coef)
