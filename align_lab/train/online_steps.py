"""The online loop's steps over a context, apart from the loop (train/online.py) that calls them in
order: 1. sampling a step's rows from its source (and ReMax's greedy responses), 2. scoring them (each
reward source's score too), 2b. DAPO's refill, and the whole step's rollout gathered from every process,
its signals by name. Like the loop, none of this reads an algorithm's name or family: a new family edits
neither file."""

from __future__ import annotations

import math
import time

import torch

from align_lab.algorithms.base import OnlineAlgorithm, Rollout
from align_lab.algorithms.credit import total_return
from align_lab.algorithms.signals import GREEDY_BASELINE, REWARD_SOURCES, GreedyBaseline, SourceScores, reads
from align_lab.algorithms.sources import DATA, TEACHER
from align_lab.rollout.base import NonFiniteLogits
from align_lab.rollout.demonstrated import demonstrated
from align_lab.train.common import Counters
from align_lab.train.context import Context
from align_lab.train.distributed import row_seeds
from align_lab.train.dynamic_sampling import refill
from align_lab.train.online_setup import Loop
from align_lab.train.staleness import Pending
from align_lab.value_checks import ConfigError, Diverged


def sample(
    ctx: Context, algo, step_prompts: list, step: int, source: str, model=None, now: int | None = None
):
    """1. G rows for each of this process's share of the step's prompts from the step's `source`
    (algorithms/sources.py): samples of `model` (the policy by default) or the teacher, or the task's
    demonstrations; with the GreedyBaseline signal, one greedy response per prompt too (else None).
    `now`: the loop step that samples it (step - train.max_staleness, or earlier in the warm-up), named
    if it diverged."""
    task, tok, dp, G = ctx.task, ctx.tokenizer, ctx.group, algo.group_size
    model = ctx.models.policy if model is None else model
    model = ctx.models.teacher if source == TEACHER else model  # off-policy distillation
    mine = dp.shard(len(step_prompts))
    my_prompts = step_prompts[mine]
    limits = (task.max_response_tokens, task.max_prompt_tokens)
    if source == DATA:  # GKD seq_kd=false: the task's demonstrations, nothing sampled
        return demonstrated(task, tok, my_prompts, G, *limits), None
    seeds = row_seeds(ctx.seed, step, mine.start * G, len(my_prompts) * G)
    try:
        samples = ctx.engine.sample(model, tok, my_prompts, G, *limits, seeds=seeds)
        greedy = None
        if reads(algo, GreedyBaseline):  # ReMax: one greedy response per prompt as the baseline
            greedy = ctx.engine.sample(model, tok, my_prompts, 1, *limits, greedy=True)
    except NonFiniteLogits:  # the last update made the weights non-finite: say which step found it
        now = step if now is None else now
        raise Diverged(f"diverged at step {now + 1} (non-finite logits while sampling)") from None
    return samples, greedy


def produce(ctx: Context, algo: OnlineAlgorithm, step_prompts: list, step: int, now: int, model) -> Pending:
    """1. The rollout of `step`, sampled at loop step `now` from `model` or the step's source, with its
    sampling time and source (asked once: it travels with the rollout)."""
    start, source = time.perf_counter(), algo.source.at(ctx.seed, step)
    samples, greedy = sample(ctx, algo, step_prompts, step, source, model, now)
    return Pending(step, samples, greedy, time.perf_counter() - start, source)


def score(ctx: Context, algo: OnlineAlgorithm, samples, greedy, counters: Counters):
    """2. This process's rewards (b,), the greedy baseline of every row of the step (B,) or None: the
    greedy episode's total return (its score plus its turns' rewards), as the sampled episode's; and
    with reward=combined each source's own score (b, K) (rewards/function.py WeightedSum), else None."""
    by_source = getattr(ctx.scorer, "by_source", None)
    sources = None if by_source is None else by_source(samples.prompts, samples.responses, samples.finished)
    if sources is None:
        scores = ctx.scorer(samples.prompts, samples.responses, samples.finished)  # (b,)
    else:
        scores = ctx.scorer.total(sources)  # (b,)
    if greedy is None:
        return scores, None, sources
    greedy_scores = ctx.scorer(greedy.prompts, greedy.responses, greedy.finished)  # (b/G,)
    greedy_scores = ctx.group.gather(total_return(greedy_scores, greedy.turn_rewards))  # (B/G,)
    counters["generated_tokens"] += int(ctx.group.gather(greedy.mask).sum())
    counters["reward_queries"] += len(greedy_scores)
    return scores, greedy_scores.repeat_interleave(algo.group_size), sources  # (B,)


def refill_step(ctx: Context, algo: OnlineAlgorithm, loop: Loop, step: int, samples, scores, sources):
    """2b. DAPO's dynamic sampling (train/dynamic_sampling.py): each extra round samples fresh prompts
    with the current weights, seeded as step train.steps * round + step (a step the loop never reaches)."""

    def columns(scores, sources):  # (b,), or (b, 1 + K) with each source's score after the total
        return scores if sources is None else torch.cat([scores[:, None], sources.to(scores.dtype)], 1)

    def draw(round_: int):
        prompts = loop.prompts.take(loop.n_prompts)
        extra = ctx.train.steps * round_ + step
        more, _ = sample(ctx, algo, prompts, extra, algo.source.at(ctx.seed, extra), now=step)
        more_scores, _, more_sources = score(ctx, algo, more, None, loop.counters)
        return more, columns(more_scores, more_sources)

    limits = (loop.n_prompts, algo.group_size, algo.needs.max_resample_rounds, ctx.tokenizer.pad_token_id)
    samples, kept, metrics, (tokens, rows) = refill(samples, columns(scores, sources), draw, *limits)
    loop.counters["generated_tokens"] += tokens  # sampled, scored and left out
    loop.counters["reward_queries"] += rows
    if sources is None:
        return samples, kept, None, metrics
    return samples, kept[:, 0], kept[:, 1:].to(sources.dtype), metrics


def gather_rollout(ctx: Context, samples, logprobs, signals, values, scores, baseline, sources=None):
    """The whole step's rollout (B rows) from every process's rows: `signals` step 3's by name (b, ...),
    `baseline` (B,) the greedy baseline or None, `sources` (b, K) each reward source's score
    (reward=combined) or None."""
    dp, pad = ctx.group, ctx.tokenizer.pad_token_id
    signals = {name: dp.gather(value) for name, value in signals.items()}
    if baseline is not None:
        signals[GREEDY_BASELINE] = baseline
    if sources is not None:  # (B, K)
        signals[REWARD_SOURCES] = SourceScores(dp.gather(sources), ctx.scorer.names, ctx.scorer.weights)
    turn_rewards = None if samples.turn_rewards is None else dp.gather(samples.turn_rewards)
    return Rollout(
        dp.gather(samples.prompt_ids, pad, left=True),
        dp.gather(samples.prompt_attn, left=True),
        dp.gather(samples.response_ids, pad),
        dp.gather(samples.mask),
        dp.gather(logprobs),
        dp.gather(scores),
        None if values is None else dp.gather(values),
        rollout_logprobs=dp.gather(samples.logprobs),  # the engine's: corrections, mismatch metrics
        attend=None if samples.attend is None else dp.gather(samples.attend),
        turn_rewards=None if turn_rewards is None or not bool(turn_rewards.any()) else turn_rewards,
        signals=signals,
    )


SCORE_SCALE = 1e18  # past it a score's square (a group's variance) overflows float32: advantages of 0 or inf


def advantages_of(algo: OnlineAlgorithm, rollout: Rollout) -> tuple:
    """Step 4: `algo.advantages(rollout)`, refused in one line where the step's finite scores are past
    SCORE_SCALE, where a group's variance overflows float32 (issue 73: scores of 1e38 read as "diverged
    ... lower algo.lr", 1e20 as advantages of 0 under GRPO and a divergence under RLOO); the weights are
    not touched."""
    largest = rollout.scores.abs().max().item() if rollout.scores.numel() else 0.0
    if math.isfinite(largest) and largest > SCORE_SCALE:
        raise ConfigError(
            f"reward: the step's scores reach {largest:.3g} in magnitude, past {SCORE_SCALE:g}, where their "
            "advantages overflow float32 (their squares pass its range); scale the reward down"
        )
    return algo.advantages(rollout)
