"""RLOO, REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024 section 2.3; spec section 6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor

from align_lab.algorithms.base import LoopNeeds, Rollout, check_online
from align_lab.algorithms.credit import episode_return
from align_lab.algorithms.online import OnlineBase, part
from align_lab.algorithms.parts import Aggregation, ClipLoss, PPOClip, RatioClip, Reinforce
from align_lab.algorithms.reward_clip import RewardClip
from align_lab.rl import (
    broadcast_to_tokens,
    clipped_surrogate,
    discounted_returns,
    leave_one_out,
    masked_mean,
    masked_sum,
    shape_sequence_rewards,
    shape_token_rewards,
    standardize,
)
from align_lab.value_checks import check

RATIOS = ("none", "sequence", "token")


@dataclass
class RLOO(OnlineBase):
    """k samples per prompt; each one's baseline is the mean reward of the other k - 1.

    Paper: R = r - kl_coef * sum_t KL_t, A_i = R_i - mean_{j!=i} R_j, loss -A_i sum_t m_t l_t (no
    ratio, no clip). TRL: ratio=sequence (one ratio exp(sum l - sum l_old) per sequence, PPO-clip,
    mean over sequences). OpenRLHF: token_level_kl=true (baseline on the raw scores, then per-token
    KL shaping and return-to-go), ratio=token, loss_aggregation=token_mean. reward_clip (RewardClip)
    clamps the baselined reward: the KL-shaped sequence reward's, or with token_level_kl the raw
    score's before KL shaping (OpenRLHF, 10). ratio token and none: parts.ClipLoss (no KL in the loss)
    with the PPOClip or Reinforce term; sequence: one clipped ratio per sequence (its own loss below).
    """

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 4
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    token_level_kl: bool = False
    ratio: str = "none"
    loss_aggregation: str = "seq_mean_token_sum"
    # the ratio clip (parts.RatioClip, the node algo.clip), read when ratio is not none
    clip: RatioClip = field(default_factory=RatioClip)  # algo.clip.{low, high, dual, log_ratio_clamp}
    reward_clip: float | None = None  # RewardClip's keys
    reward_clip_low: float | None = None
    normalize_advantages: bool = False  # (A - mean) / (std + 1e-4) over the batch (TRL normalize_advantages)

    needs: ClassVar[LoopNeeds] = LoopNeeds(compares_samples="each reward with the mean of the other k - 1")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.ratio in RATIOS, "ratio", self.ratio, f"one of {RATIOS}")
        check_online(self, ">= 2 (leave-one-out needs a sibling)", 2, ratio=self.ratio != "none")
        check(
            not (self.ratio == "sequence" and self.token_level_kl),
            "ratio",
            self.ratio,
            "token or none with token_level_kl=true (a sequence ratio needs one advantage per sequence)",
        )
        check(
            not (self.normalize_advantages and self.token_level_kl),
            "normalize_advantages",
            self.normalize_advantages,
            "false with token_level_kl=true (TRL normalises one advantage per sequence)",
        )
        self.reward_clipping = part(RewardClip, self)
        term = Reinforce(self.clip) if self.ratio == "none" else PPOClip(self.clip)
        aggregation = Aggregation(self.loss_aggregation)
        self.clip_loss = ClipLoss(term, self.kl_term, self.correction, aggregation, kl_in_loss=False)
        self.sequence_aggregation = Aggregation("seq_mean_token_mean")  # ratio=sequence, corrected

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        kl = self.kl(rollout.logprobs, rollout.ref_logprobs)  # (B, T)
        if self.token_level_kl:
            baselined = leave_one_out(episode_return(rollout), self.group_size)  # (B,)
            baselined = self.reward_clipping(baselined)  # (B,)
            rewards = shape_token_rewards(baselined, kl, rollout.mask, self.kl_coef)  # (B, T)
            return discounted_returns(rewards, rollout.mask, 1.0), None
        rewards = shape_sequence_rewards(episode_return(rollout), kl, rollout.mask, self.kl_coef)  # (B,)
        baselined = leave_one_out(rewards, self.group_size)  # (B,)
        baselined = self.reward_clipping(baselined)  # (B,)
        if self.normalize_advantages:
            baselined = standardize(baselined)  # (B,)
        return broadcast_to_tokens(baselined, rollout.mask), None

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        if self.ratio == "sequence":
            # one ratio per sequence; its advantage is the same on every kept token
            seq_logprobs = masked_sum(logprobs, batch.mask, dim=-1)  # (B,)
            seq_old = masked_sum(self.correction.anchor(batch), batch.mask, dim=-1)  # (B,)
            seq_advantages = masked_mean(batch.advantages, batch.mask, dim=-1)  # (B,)
            bounds = self.clip.bounds()
            per_seq, clipped = clipped_surrogate(seq_logprobs, seq_old, seq_advantages, *bounds)  # (B,) each
            stats = {"train/clip_frac": clipped.float().mean().item()}
            if self.correction.mode == "none":
                return per_seq.mean(), stats
            # corrected: each sequence's loss on its tokens, weighted per token, mean of sequence means
            spread = per_seq[:, None].expand_as(batch.mask)  # (B, T)
            corrected = self.correction.correct(batch, spread, logprobs)
            mean = self.sequence_aggregation(corrected.per_token, corrected.mask, corrected.rows)
            return mean, stats | corrected.stats
        return self.clip_loss(batch, logprobs, self.kl_coef)
