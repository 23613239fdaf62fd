"""RLHF PPO (Ziegler et al. 2019; Ouyang et al. 2022; spec section 2): KL-shaped rewards, GAE, critic.

PPO-max (Zheng et al. 2023; spec section 3) is this class with its tricks switched on
(conf/algo/ppo_max.yaml): each trick is one field, off by default, so each can be ablated on the
command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from align_lab.algorithms.base import LoopNeeds, Rollout, check_critic, check_online
from align_lab.algorithms.credit import (
    check_credit,
    clip_episode,
    observation_steps,
    placed_rewards,
    total_return,
)
from align_lab.algorithms.online import OnlineBase, part
from align_lab.algorithms.parts import Aggregation, ClipLoss, PPOClip, RatioClip
from align_lab.algorithms.reward_clip import RewardClip
from align_lab.rl import (
    KL_CONTROLLER_INPUTS,
    adaptive_kl_coef,
    clipped_value_loss,
    gae,
    masked_whiten,
    observed_kl,
    running_moments,
    running_std,
    shape_token_rewards,
)
from align_lab.value_checks import check


@dataclass
class PPO(OnlineBase):
    """Token-level k1 KL in the reward, GAE over a learned critic, clipped surrogate (parts.ClipLoss with
    the PPOClip term, no KL in the loss) and value loss. A CriticAlgorithm (base.py) by shape."""

    lr: float = 1e-3
    critic_lr: float = 3e-3
    epochs: int = 2
    group_size: int = 1
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    kl_target: float | None = None  # set -> adaptive KL controller (Ziegler et al.)
    kl_horizon: int = 10000
    kl_controller_input: str = "sum"  # controller's KL per response: sum (Ziegler) | token_mean (verl)
    gamma: float = 1.0
    lam: float = 0.95
    across_observations: str = "skip"  # multi-turn GAE: skip observation tokens (verl) | step (OpenRLHF)
    turn_rewards_at: str = "turn"  # a turn's env reward at its last token | last (verl, OpenRLHF)
    # the ratio clip (parts.RatioClip, the node algo.clip)
    clip: RatioClip = field(default_factory=RatioClip)  # algo.clip.{low, high, dual, log_ratio_clamp}
    value_clip: float | None = 0.2
    vf_coef: float = 1.0
    reward_clip: float | None = 10.0  # RewardClip's, applied after reward_scaling / reward_norm; None = off
    reward_clip_low: float | None = None
    reward_scaling: bool = False  # scores / running std (MOSS-RLHF --use_reward_scaling)
    reward_norm: bool = False  # scores - running mean (with reward_scaling: PPO-max reward normalisation)
    whiten_advantages: bool = True
    whiten_unbiased: bool = True
    whiten_eps: float = 1e-8
    advantage_clip: float | None = None
    loss_aggregation: str = "token_mean"
    critic_init: str = "sft"
    critic_pretrain_steps: int = 0  # the loop leaves the policy untouched for these first steps
    entropy_coef: float = 0.0  # the loop adds -entropy_coef * mean token entropy
    ptx_coef: float = 0.0  # the loop adds ptx_coef * NLL of a batch of the task's demonstrations

    def __post_init__(self) -> None:
        super().__post_init__()
        check_online(self)
        check_critic(self)
        check(self.kl_target is None or self.kl_target > 0, "kl_target", self.kl_target, "> 0 or null")
        check(self.kl_horizon >= 1, "kl_horizon", self.kl_horizon, ">= 1")
        check(
            self.kl_controller_input in KL_CONTROLLER_INPUTS,
            "kl_controller_input",
            self.kl_controller_input,
            f"one of {KL_CONTROLLER_INPUTS}",
        )
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        check(0 <= self.lam <= 1, "lam", self.lam, "in [0, 1]")
        check_credit(self)
        check(
            self.value_clip is None or self.value_clip > 0,
            "value_clip",
            self.value_clip,
            "> 0 or null",
        )
        check(self.vf_coef > 0, "vf_coef", self.vf_coef, "> 0")
        check(self.whiten_eps >= 0, "whiten_eps", self.whiten_eps, ">= 0")
        check(
            self.advantage_clip is None or self.advantage_clip > 0,
            "advantage_clip",
            self.advantage_clip,
            "> 0 or null",
        )
        check(self.critic_pretrain_steps >= 0, "critic_pretrain_steps", self.critic_pretrain_steps, ">= 0")
        check(self.entropy_coef >= 0, "entropy_coef", self.entropy_coef, ">= 0")
        check(self.ptx_coef >= 0, "ptx_coef", self.ptx_coef, ">= 0")
        # running (historical) reward moments, MOSS-RLHF's initial state; saved with the checkpoint
        self.reward_mean, self.reward_var, self.reward_count = 0.0, 1.0, 1e-24
        # the KL coefficient in use: kl_coef until the adaptive controller (kl_target) moves it
        self.current_kl_coef = self.kl_coef
        self.reward_clipping = part(RewardClip, self)
        aggregation = Aggregation(self.loss_aggregation)
        self.clip_loss = ClipLoss(PPOClip(self.clip), self.kl_term, self.correction, aggregation, False)

    @property
    def uses_critic(self) -> bool:
        return True

    @property
    def needs(self) -> LoopNeeds:
        """PPO's keys that switch the loop: the KL controller, critic warm-up, entropy bonus, PPO-ptx."""
        return LoopNeeds(
            kl_target=self.kl_target,
            entropy_coef=self.entropy_coef,
            ptx_coef=self.ptx_coef,
            critic_pretrain_steps=self.critic_pretrain_steps,
        )

    def state_dict(self) -> dict:
        moments = {
            "reward_mean": self.reward_mean,
            "reward_var": self.reward_var,
            "reward_count": self.reward_count,
        }
        # the controller's coefficient under the name older checkpoints (vars(algo)) gave it
        return moments | ({"kl_coef": self.current_kl_coef} if self.kl_target is not None else {})

    def load_state_dict(self, state: dict) -> None:
        self.reward_mean, self.reward_var, self.reward_count = (
            state["reward_mean"],
            state["reward_var"],
            state["reward_count"],
        )
        self.current_kl_coef = state.get("kl_coef", self.kl_coef)

    def process_scores(self, scores: Tensor) -> Tensor:
        """Scores after PPO-max's score reparameterisation: running-stat norm/scaling, then clip: (B,)."""
        # like MOSS-RLHF, the running moments include the current batch before they are used
        self.reward_mean, self.reward_var, self.reward_count = running_moments(
            self.reward_mean, self.reward_var, self.reward_count, scores
        )
        if self.reward_norm:
            scores = scores - self.reward_mean
        if self.reward_scaling:
            scores = scores / running_std(self.reward_var, self.reward_count)
        return self.reward_clipping(scores)

    def process_rewards(self, outcome: Tensor, turns: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Multi-turn score reparameterisation of each episode's return (B,): the running moments are the
        returns' (outcome + turn rewards), the mean comes off once (from the outcome), every reward is
        divided by the std, and the clip bounds the episode's total, the outcome taking up what it cuts,
        so turn_rewards_at=turn and last see the same total (docs/conventions.md#multi-turn). Returns
        (outcome (B,), turn rewards (B, T)); without turn rewards, process_scores(outcome), None."""
        if turns is None:
            return self.process_scores(outcome), None
        self.reward_mean, self.reward_var, self.reward_count = running_moments(
            self.reward_mean, self.reward_var, self.reward_count, total_return(outcome, turns)
        )
        if self.reward_norm:
            outcome = outcome - self.reward_mean
        if self.reward_scaling:
            std = running_std(self.reward_var, self.reward_count)
            outcome, turns = outcome / std, turns / std
        return clip_episode(outcome, turns, self.reward_clipping), turns

    def advantages(self, rollout: Rollout) -> tuple[Tensor, Tensor]:
        kl = self.kl(rollout.logprobs, rollout.ref_logprobs)  # (B, T)
        outcome, turns = placed_rewards(rollout, self.turn_rewards_at)  # (B,), (B, T) or None
        scores, turns = self.process_rewards(outcome, turns)  # (B,), (B, T) or None
        rewards = shape_token_rewards(scores, kl, rollout.mask, self.current_kl_coef, turns)  # (B, T)
        steps = observation_steps(rollout, self.across_observations)  # (B, T) or None
        advantages, returns = gae(rewards, rollout.values, rollout.mask, self.gamma, self.lam, steps)
        if self.kl_target is not None:  # state of the controller, saved with the checkpoint
            observed = observed_kl(kl, rollout.mask, self.kl_controller_input)
            n = len(rollout.scores)
            self.current_kl_coef = adaptive_kl_coef(
                self.current_kl_coef, observed, self.kl_target, n, self.kl_horizon
            )
        if self.whiten_advantages:
            advantages = masked_whiten(
                advantages, rollout.mask, unbiased=self.whiten_unbiased, eps=self.whiten_eps
            )
        if self.advantage_clip is not None:
            advantages = advantages.clamp(-self.advantage_clip, self.advantage_clip)
        return advantages, returns

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        policy_loss, policy_stats = self.clip_loss(batch, logprobs, self.current_kl_coef)
        value_loss = self.clip_loss.aggregation(  # the policy loss's aggregation
            clipped_value_loss(values, batch.values, batch.returns, self.value_clip), batch.mask
        )
        stats = {
            **policy_stats,
            "train/value_loss": value_loss.item(),
            "train/kl_coef": self.current_kl_coef,
            "train/reward_running_mean": self.reward_mean,
            "train/reward_running_std": running_std(self.reward_var, self.reward_count),
        }
        return policy_loss + self.vf_coef * value_loss, stats
