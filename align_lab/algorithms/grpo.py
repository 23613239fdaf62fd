"""GRPO (Shao et al. 2024, DeepSeekMath; spec section 9.1) and, as presets, Dr. GRPO (Liu et al. 2025;
conf/algo/dr_grpo.yaml) and DAPO (Yu et al. 2025; dapo.py's defaults). The 2025 variants (GSPO, CISPO,
SAPO, GMPO, Clip-Cov, KL-Cov) are GRPO with another policy term (the `policy_term` method)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import Tensor

from align_lab.algorithms.base import LoopNeeds, Rollout, check_online
from align_lab.algorithms.credit import episode_return
from align_lab.algorithms.online import OnlineBase, part
from align_lab.algorithms.parts import Aggregation, ClipLoss, PolicyTerm, PPOClip, RatioClip
from align_lab.algorithms.reward_clip import RewardClip
from align_lab.rl import (
    STD_SCOPES,
    broadcast_to_tokens,
    discounted_returns,
    group_normalize,
    shape_token_rewards,
)
from align_lab.rl.dapo import overlong_penalty
from align_lab.value_checks import check


@dataclass
class GRPO(OnlineBase):
    """Group-normalised outcome advantage (r - mean) / (std + eps), token PPO-clip, KL in the loss.

    The KL is kl_coef * k3(pi_theta, pi_ref) per token, added to the clipped surrogate, and the
    loss is the mean over sequences of per-sequence token means (parts.ClipLoss). Dr. GRPO
    (conf/algo/dr_grpo.yaml): scale_by_std=false, kl_coef=0, loss_aggregation=constant.
    use_kl_loss=false instead shapes the normalised score with per-token KL in the reward and takes the
    return-to-go (OpenRLHF group_norm). reward_clip (OpenRLHF 10) clamps the normalised score.
    DAPO's keys: dynamic_sampling (the online loop drops groups whose rewards are all equal and samples
    more prompts, at most max_resample_rounds more rounds: train/dynamic_sampling.py) and the soft
    overlong punishment (overlong_buffer tokens before max_len, down to -overlong_penalty, added to the
    score before the group normalisation; the dynamic-sampling filter sees the task's score).
    Multi-turn: the length is every token after the prompt, observations included, and max_len the
    conversation's budget (env.max_conversation_tokens), as verl's DAPO reward manager reads the
    response's attention mask (docs/conventions.md#multi-turn).
    """

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 8
    kl_coef: float = 0.04
    kl_estimator: str = "k3"
    use_kl_loss: bool = True
    scale_by_std: bool = True
    std_unbiased: bool = True
    eps: float = 1e-4
    std_scope: str = "group"  # group: each prompt's std (paper); batch: the step's (TRL scale_rewards=batch)
    use_bias_correction_kl: bool = False  # k3 times the ratio pi / pi_old (TRL 1.16 default true)
    # the ratio clip (parts.RatioClip, the node algo.clip)
    clip: RatioClip = field(default_factory=RatioClip)  # algo.clip.{low, high, dual, log_ratio_clamp}
    # RewardClip's keys: the normalised score clamped
    reward_clip: float | None = None
    reward_clip_low: float | None = None
    # Aggregation's keys
    loss_aggregation: str = "seq_mean_token_mean"
    max_len: int | None = None  # L_max of loss_aggregation=constant (Dr. GRPO: generation limit); None: T
    # DAPO's loop switches and overlong punishment (off here)
    dynamic_sampling: bool = False
    max_resample_rounds: int = 0
    overlong_buffer: int | None = None
    overlong_penalty: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_online(self, ">= 2 (a group of one has no baseline)", min_group_size=2)
        check(self.eps >= 0, "eps", self.eps, ">= 0")
        check(self.std_scope in STD_SCOPES, "std_scope", self.std_scope, f"one of {STD_SCOPES}")
        check(self.max_resample_rounds >= 0, "max_resample_rounds", self.max_resample_rounds, ">= 0")
        check(self.overlong_penalty >= 0, "overlong_penalty", self.overlong_penalty, ">= 0")
        buffer, max_len = self.overlong_buffer, self.max_len
        check(
            buffer is None or (max_len is not None and 0 < buffer <= max_len),
            "overlong_buffer",
            buffer,
            f"in [1, max_len={self.max_len}] (max_len: the generation limit; multi-turn: "
            "env.max_conversation_tokens) or null",
        )
        self.reward_clipping = part(RewardClip, self)
        self.clip_loss = ClipLoss(
            self.policy_term(self.clip),
            self.kl_term,
            self.correction,
            part(Aggregation, self),
            kl_in_loss=self.use_kl_loss and self.kl_coef > 0,  # on pi_theta
            bias_corrected_kl=self.use_bias_correction_kl,
        )

    @property
    def needs(self) -> LoopNeeds:
        """DAPO's keys switch the loop's dynamic sampling; the advantage compares a group's rewards."""
        return LoopNeeds(
            dynamic_sampling=self.dynamic_sampling,
            max_resample_rounds=self.max_resample_rounds,
            compares_samples="each reward with its group's mean",
        )

    def policy_term(self, clip: RatioClip) -> PolicyTerm:
        """The per-token policy term: PPO-clip. The 2025 variants override only this."""
        return PPOClip(clip)

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        if self.overlong_buffer is not None:  # DAPO: the soft overlong punishment, added to the score
            lengths = (rollout.mask if rollout.attend is None else rollout.attend).sum(-1)  # (B,)
            penalty = overlong_penalty(lengths, self.max_len, self.overlong_buffer, self.overlong_penalty)
            rollout = replace(rollout, scores=rollout.scores + penalty.to(rollout.scores.dtype))
        normalized = group_normalize(
            episode_return(rollout),
            self.group_size,
            self.scale_by_std,
            self.std_unbiased,
            self.eps,
            self.std_scope,
        )  # (B,)
        normalized = self.reward_clipping(normalized)  # (B,)
        if self.use_kl_loss:
            return broadcast_to_tokens(normalized, rollout.mask), None
        kl = self.kl(rollout.logprobs, rollout.ref_logprobs)  # (B, T)
        rewards = shape_token_rewards(normalized, kl, rollout.mask, self.kl_coef)  # (B, T)
        return discounted_returns(rewards, rollout.mask, 1.0), None

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        return self.clip_loss(batch, logprobs, self.kl_coef)
