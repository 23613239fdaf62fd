"""REINFORCE with a moving-average baseline (Ahmadian et al. 2024, Back to Basics section 2; spec 5)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import Rollout, check_online
from align_lab.algorithms.credit import episode_return
from align_lab.algorithms.online import OnlineBase
from align_lab.algorithms.parts import Aggregation, ClipLoss, Reinforce
from align_lab.rl import broadcast_to_tokens, shape_sequence_rewards


@dataclass
class ReinforceMA(OnlineBase):
    """Whole response = one action: advantage R - b_MA, b_MA the mean of every past reward.

    R = r - kl_coef * sum_t KL_t (sequence-level KL in the reward); loss -(R - b_MA) sum_t m_t l_t,
    mean over sequences. No ratio, clip, critic or std normalisation. b_MA (the paper's Eq. 8) is
    the arithmetic mean over all earlier steps' rewards, never the current batch; 0 before any.
    """

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 1
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    loss_aggregation: str = "seq_mean_token_sum"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_online(self, ratio=False)
        aggregation = Aggregation(self.loss_aggregation)
        self.clip_loss = ClipLoss(Reinforce(), self.kl_term, self.correction, aggregation, kl_in_loss=False)
        # sum and count of all past rewards; saved with the checkpoint
        self.reward_sum, self.reward_count = 0.0, 0

    def state_dict(self) -> dict:
        return {"reward_sum": self.reward_sum, "reward_count": self.reward_count}

    @property
    def baseline(self) -> float:
        return self.reward_sum / self.reward_count if self.reward_count else 0.0

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        kl = self.kl(rollout.logprobs, rollout.ref_logprobs)  # (B, T)
        rewards = shape_sequence_rewards(episode_return(rollout), kl, rollout.mask, self.kl_coef)  # (B,)
        advantages = broadcast_to_tokens(rewards - self.baseline, rollout.mask)  # (B, T)
        self.reward_sum += rewards.sum().item()
        self.reward_count += rewards.numel()
        return advantages, None

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        loss, stats = self.clip_loss(batch, logprobs, self.kl_coef)  # -A log pi, corrected, aggregated
        return loss, stats | {"train/reward_running_mean": self.baseline}
