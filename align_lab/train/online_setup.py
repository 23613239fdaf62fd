"""What the online loop builds before its first step, and before the seed is set: the batch arithmetic
checked, the optimisers, the prompt order, the demonstrations of the ptx term, the queue of rollouts
sampled ahead and the sampling thread; and the names a checkpoint saves them under."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from align_lab.algorithms.base import OnlineAlgorithm
from align_lab.algorithms.signals import SelfTeacher, reads
from align_lab.tasks.view import conversation_tokens, observation_renderer
from align_lab.train.common import Counters, Shuffler, TrainConfig
from align_lab.train.context import Context
from align_lab.train.dynamic_sampling import check_dynamic_sampling
from align_lab.train.learner import Learner
from align_lab.train.micro import Term
from align_lab.train.sft import nll_term
from align_lab.train.staleness import BackgroundSampler, PendingRollouts
from align_lab.value_checks import check


def validate(algo: OnlineAlgorithm, cfg: TrainConfig) -> int:
    """Checks batch arithmetic before any compute; returns prompts per step."""
    check(
        cfg.rollout_size % algo.group_size == 0,
        "train.rollout_size",
        cfg.rollout_size,
        f"a multiple of algo.group_size={algo.group_size}",
    )
    check(
        cfg.rollout_size % cfg.minibatch_size == 0,
        "train.minibatch_size",
        cfg.minibatch_size,
        f"a divisor of train.rollout_size={cfg.rollout_size}",
    )
    return cfg.rollout_size // algo.group_size


def ptx_term(ctx: Context, algo: OnlineAlgorithm, demonstrations: Shuffler) -> Term:
    """PPO-ptx: ptx_coef * NLL of a minibatch of `demonstrations`, a term every process computes in
    full on the same data (gradients are summed over processes, so it counts 1 / processes on each);
    conversation demonstrations render their observations as the policy reads them."""
    task, env = ctx.task, ctx.env
    demos = demonstrations.take(ctx.train.minibatch_size)
    limits = (task.max_prompt_tokens, conversation_tokens(task, env))
    scale, render = algo.needs.ptx_coef / ctx.group.size, observation_renderer(task, env)
    return nll_term(ctx.models.policy, ctx.tokenizer, demos, *limits, scale, ctx.backend, render)


@dataclass
class Loop:
    """What the online loop carries from step to step, built before the seed is set."""

    n_prompts: int  # prompts per step
    learner: Learner  # the policy's (and critic's) updates: rows -> gradients (train/learner.py)
    prompts: Shuffler
    counters: Counters
    named: dict  # what a checkpoint saves, by name
    pending: PendingRollouts  # rollouts sampled ahead (train.max_staleness)
    sampler: BackgroundSampler | None  # the sampling thread (train.async_rollouts)


def setup(algo: OnlineAlgorithm, ctx: Context) -> Loop:
    """The optimisers (the critic's with uses_critic), the prompt order, the demonstrations (ptx_coef),
    the queue of rollouts sampled ahead and the sampling thread, all checkpointed with the run."""
    cfg = ctx.train
    check(ctx.memory is not None, "Context.memory", None, "a plan: build the Context with Context.build")
    n_prompts = validate(algo, cfg)
    check_dynamic_sampling(algo, cfg, ctx.group.size)
    learner, models = Learner.of(ctx, algo), ctx.models  # the Learner runs the models (train/learner.py)
    prompts, counters = Shuffler(ctx.task.prompts("train"), ctx.seed), Counters()
    named = {
        **learner.policy.checkpointed("policy", "optimizer", "schedule"),
        "prompts": prompts,
        "counters": counters,
    }
    if algo.uses_critic:  # plain torch: the policy's backward of the one loss fills its gradients
        learner.critic = ctx.backend.prepare(models.critic, algo.critic_lr, ctx, plain=True)
        named |= learner.critic.checkpointed("critic", "critic_optimizer", "critic_schedule")
    if algo.needs.ptx_coef > 0:
        demonstrations = named["demonstrations"] = Shuffler(ctx.task.demonstrations(), ctx.seed)
        learner.demonstrations = partial(ptx_term, ctx, algo, demonstrations)
    taught = reads(algo, SelfTeacher)
    if taught is not None and taught.follow_rate > 0:  # SDPO's EMA teacher: its weights move with the run's
        named["self_teacher"] = models.teacher
    pending = PendingRollouts()
    if cfg.max_staleness > 0:
        named["pending_rollouts"] = pending
    sampler = BackgroundSampler(models.policy) if cfg.async_rollouts else None
    return Loop(n_prompts, learner, prompts, counters, named, pending, sampler)
