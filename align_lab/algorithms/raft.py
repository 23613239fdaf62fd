"""RAFT, reward-ranked fine-tuning (Dong et al. 2023; online, as in Ahmadian et al. 2024; spec section 7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from align_lab.algorithms.base import LoopNeeds, Rollout, check_online
from align_lab.algorithms.credit import episode_return
from align_lab.algorithms.online import OnlineBase
from align_lab.algorithms.parts import Aggregation
from align_lab.rl import best_of_group, broadcast_to_tokens, shape_sequence_rewards


@dataclass
class RAFT(OnlineBase):
    """k samples per prompt, keep the top-1 by KL-shaped reward R = r - kl_coef sum_t KL_t, NLL on it.

    The advantage is the selection weight (1 on the kept response's tokens, else 0). The loss is the
    SFT negative log-likelihood over the kept tokens only; no negative gradient, baseline or ratio.
    """

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 4
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    loss_aggregation: str = "token_mean"

    needs: ClassVar[LoopNeeds] = LoopNeeds(
        compares_samples="the rewards of a group, to keep its best response"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_online(self, ">= 2 (ranking needs k > 1 samples)", min_group_size=2, ratio=False)
        self.aggregation = Aggregation(self.loss_aggregation)

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        kl = self.kl(rollout.logprobs, rollout.ref_logprobs)  # (B, T)
        rewards = shape_sequence_rewards(episode_return(rollout), kl, rollout.mask, self.kl_coef)  # (B,)
        return broadcast_to_tokens(best_of_group(rewards, self.group_size), rollout.mask), None

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        kept = batch.advantages > 0  # (B, T) tokens of the selected responses
        corrected = self.correction.correct(batch, -logprobs, logprobs, kept)
        loss = self.aggregation(corrected.per_token, corrected.mask, corrected.rows)
        return loss, {"train/clip_frac": 0.0, **corrected.stats}
