"""What online algorithms share beyond the rollout correction (correction.py): the KL clamp, the policy
ratio's clip, the reward clip, each a dataclass mixin whose fields come before the algorithm's own, with
its checks; and the loss of the PPO-clip family (GRPO and its variants, REINFORCE++), whose algorithms
differ only in the per-token policy term and where the KL goes."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.rl import aggregate_loss, clip_reward, kl_penalty, masked_mean
from align_lab.value_checks import check


@dataclass
class KLClamp:
    """Every KL estimate bounded to [-kl_clamp, kl_clamp] (None: unbounded). The algorithm declares its
    own kl_estimator (k1, k3, ...: the defaults differ by paper)."""

    kl_clamp: float | None = None

    def kl(self, logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
        """(B, T) the algorithm's KL estimate of log pi - log pi_ref per token, clamped."""
        return kl_penalty(logprobs, ref_logprobs, self.kl_estimator, clamp=self.kl_clamp)


@dataclass
class RatioClip:
    """PPO's clip of the policy ratio to [1 - clip, 1 + clip_high] (clip_high None: clip), dual-clip
    c > 1 for A < 0 (None: off), and the log-ratio clamped to +-log_ratio_clamp before exp (None: TRL)."""

    clip: float = 0.2
    clip_high: float | None = None
    dual_clip: float | None = None
    log_ratio_clamp: float | None = 20.0


def check_clip(algo) -> None:
    """The checks of a ratio-clipped algorithm's clip, clip_high, dual_clip and log_ratio_clamp."""
    check(0 < algo.clip < 1, "clip", algo.clip, "in (0, 1)")
    check(algo.clip_high is None or algo.clip_high > 0, "clip_high", algo.clip_high, "> 0 or null")
    check(algo.dual_clip is None or algo.dual_clip > 1, "dual_clip", algo.dual_clip, "> 1 or null")
    check(
        algo.log_ratio_clamp is None or algo.log_ratio_clamp > 0,
        "log_ratio_clamp",
        algo.log_ratio_clamp,
        "> 0 or null (null: unclamped, as TRL)",
    )


def clip_bounds(algo) -> tuple[float, float | None, float | None, float | None]:
    """(clip_low, clip_high, dual_clip, log_ratio_clamp) of rl.clipped_surrogate for a ratio-clipped
    algorithm."""
    return algo.clip, algo.clip_high, algo.dual_clip, algo.log_ratio_clamp


@dataclass
class RewardClip:
    """Scores clamped to [-reward_clip_low, reward_clip] (reward_clip None: off; reward_clip_low None:
    -reward_clip, symmetric). Where in the advantage it applies is the algorithm's (its docstring)."""

    reward_clip: float | None = None
    reward_clip_low: float | None = None

    def clip_reward(self, scores: Tensor) -> Tensor:
        return clip_reward(scores, self.reward_clip, self.reward_clip_low)


def check_reward_clip(algo) -> None:
    """The checks of reward_clip and reward_clip_low (rewards clamped to [-reward_clip_low, reward_clip]).

    The lower bound may be positive (OpenRLHF's --reward.clip_range 1 10 is reward_clip_low=-1
    reward_clip=10); the range must hold more than one value.
    """
    high, low = algo.reward_clip, algo.reward_clip_low
    if low is None:
        check(
            high is None or high > 0,
            "reward_clip",
            high,
            "> 0 or null (the range is [-reward_clip, reward_clip])",
        )
        return
    if high is not None:
        check(
            -low < high,
            "reward_clip_low",
            low,
            f"> -reward_clip = {-high} (the range is [-reward_clip_low, reward_clip])",
        )


def policy_loss(
    algo,
    batch,
    logprobs: Tensor,
    per_token: Tensor,
    clipped: Tensor,
    kl_in_loss: bool,
    kl_weight: Tensor | None = None,
    max_len: int | None = None,
) -> tuple[Tensor, dict]:
    """The loss of the PPO-clip family from its per-token policy term (B, T) and clipped tokens (B, T):
    the rollout correction (algo.correct), then with kl_in_loss + kl_coef * KL(pi_theta, pi_ref) per
    token on pi_theta (times `kl_weight` (B, T): TRL's bias-corrected k3), aggregated by
    algo.loss_aggregation (`max_len`: Dr. GRPO's constant). Stats: clip_frac, kl_loss, the correction's."""
    corrected = algo.correct(batch, per_token, logprobs)
    per_token = corrected.per_token  # (B, T)
    stats = {"train/clip_frac": masked_mean(clipped.float(), batch.mask).item(), **corrected.stats}
    if kl_in_loss:
        kl = algo.kl(logprobs, batch.ref_logprobs)  # (B, T) differentiable
        if kl_weight is not None:
            kl = kl * kl_weight
        per_token = per_token + algo.kl_coef * kl
        stats["train/kl_loss"] = masked_mean(kl.detach(), batch.mask).item()
    loss = aggregate_loss(per_token, corrected.mask, algo.loss_aggregation, max_len, corrected.rows)
    return loss, stats
