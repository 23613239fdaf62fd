"""The online loop: rollout -> score -> advantages -> minibatch updates -> log. One loop for every
online algorithm; the only algorithm-dependent branch is whether a critic exists.

The loop reads an algorithm only through the OnlineAlgorithm contract (algorithms/base.py): the
signals its loss reads (algorithms/signals.py; filled by name into rollout.signals, whatever the
family) and the switches of algo.needs (base.LoopNeeds), each off by default: critic_pretrain_steps
(the policy rests while the critic warms up), entropy_coef (entropy bonus), ptx_coef (PPO-ptx: NLL of
the task's demonstrations), dynamic_sampling (DAPO). A new family edits none of this file."""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

import torch

from align_lab.algorithms.base import OnlineAlgorithm, Rollout
from align_lab.algorithms.credit import total_return
from align_lab.algorithms.signals import (
    GREEDY_BASELINE,
    REWARD_SOURCES,
    VOCABULARY_DIVERGENCE,
    GreedyBaseline,
    SourceScores,
    reads,
)
from align_lab.algorithms.sources import DATA, TEACHER
from align_lab.rl import masked_mean
from align_lab.rollout.base import NonFiniteLogits
from align_lab.rollout.demonstrated import demonstrated
from align_lab.train.cadence import end_of_step, finish
from align_lab.train.common import Counters
from align_lab.train.context import Context
from align_lab.train.distributed import row_seeds
from align_lab.train.dynamic_sampling import refill
from align_lab.train.metrics import step_metrics, step_postfix, timed
from align_lab.train.online_setup import Loop, setup
from align_lab.train.resume import restore
from align_lab.train.rng import minibatch_order
from align_lab.train.staleness import Pending
from align_lab.value_checks import Diverged


def _loss(algo: OnlineAlgorithm, batch: Rollout, logprobs, entropy, values, divergence=None):
    """The algorithm's loss of a minibatch, minus the entropy bonus; entropy logged either way.
    `divergence`: the VocabularyDivergence signal of the minibatch (GKD), with the policy's graph, or None."""
    if divergence is not None:
        batch = replace(batch, signals={**batch.signals, VOCABULARY_DIVERGENCE: divergence})
    loss, stats = algo.loss(batch, logprobs, values)
    mean_entropy = masked_mean(entropy, batch.mask)
    entropy_coef = algo.needs.entropy_coef
    if entropy_coef > 0:
        loss = loss - entropy_coef * mean_entropy
    stats["train/entropy"] = mean_entropy.item()
    return loss, stats


def _sample(
    ctx: Context, algo, step_prompts: list, step: int, source: str, model=None, now: int | None = None
):
    """1. G rows for each of this process's share of the step's prompts from the step's `source`
    (algorithms/sources.py): samples of `model` (the policy by default) or the teacher, or the task's
    demonstrations; with the GreedyBaseline signal, one greedy response per prompt too (else None).
    `now`: the loop step that samples it (step - train.max_staleness, or earlier in the warm-up), named
    if it diverged."""
    task, tok, dp, G = ctx.task, ctx.tokenizer, ctx.group, algo.group_size
    model = ctx.policy if model is None else model
    model = ctx.teacher if source == TEACHER else model  # off-policy distillation
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


def _produce(ctx: Context, algo: OnlineAlgorithm, step_prompts: list, step: int, now: int, model) -> Pending:
    """1. The rollout of `step`, sampled at loop step `now` from `model` or the step's source, with its
    sampling time and source (asked once: it travels with the rollout)."""
    start, source = time.perf_counter(), algo.source.at(ctx.seed, step)
    samples, greedy = _sample(ctx, algo, step_prompts, step, source, model, now)
    return Pending(step, samples, greedy, time.perf_counter() - start, source)


def _score(ctx: Context, algo: OnlineAlgorithm, samples, greedy, counters: Counters):
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


def _refill(ctx: Context, algo: OnlineAlgorithm, loop: Loop, step: int, samples, scores, sources):
    """2b. DAPO's dynamic sampling (train/dynamic_sampling.py): each extra round samples fresh prompts
    with the current weights, seeded as step train.steps * round + step (a step the loop never reaches)."""

    def columns(scores, sources):  # (b,), or (b, 1 + K) with each source's score after the total
        return scores if sources is None else torch.cat([scores[:, None], sources.to(scores.dtype)], 1)

    def draw(round_: int):
        prompts = loop.prompts.take(loop.n_prompts)
        extra = ctx.train.steps * round_ + step
        more, _ = _sample(ctx, algo, prompts, extra, algo.source.at(ctx.seed, extra), now=step)
        more_scores, _, more_sources = _score(ctx, algo, more, None, loop.counters)
        return more, columns(more_scores, more_sources)

    limits = (loop.n_prompts, algo.group_size, algo.needs.max_resample_rounds, ctx.tokenizer.pad_token_id)
    samples, kept, metrics, (tokens, rows) = refill(samples, columns(scores, sources), draw, *limits)
    loop.counters["generated_tokens"] += tokens  # sampled, scored and left out
    loop.counters["reward_queries"] += rows
    if sources is None:
        return samples, kept, None, metrics
    return samples, kept[:, 0], kept[:, 1:].to(sources.dtype), metrics


def _gather_rollout(ctx: Context, samples, logprobs, signals, values, scores, baseline, sources=None):
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


def train_online(algo: OnlineAlgorithm, ctx: Context) -> dict:
    """Trains ctx.policy with `algo` for ctx.train.steps steps, or until an evaluation reaches
    train.stop_at (resuming from ctx's checkpoint); returns the final evaluation."""
    cfg, loop = ctx.train, setup(algo, ctx)
    learner, loss_fn = loop.learner, partial(_loss, algo)
    torch.manual_seed(ctx.seed)
    start = restore(ctx, loop.named, algo)
    ctx.preemption.steps_begin()  # a SIGTERM or SIGINT now stops the run at a step's end, checkpointed
    bar = ctx.progress(total=cfg.steps, initial=start, desc="policy optimisation")
    final, rejected_steps = None, 0  # steps in a row whose correction rejected every token (from a resume: 0)
    evaluated = None  # (step, eval/kl) of the latest evaluation: the progress line's KL without a KL term
    for step in range(start, cfg.steps):
        if ctx.ledger.stopped:  # train.stop_at reached: at the last evaluation, or in the checkpoint resumed
            break
        times: dict[str, float] = {}
        # 0. engines that hold their own copy of the weights (vLLM) take the policy's; HF samples the
        # live one. Async: the sampling thread's frozen copy takes them
        with timed(times, "time/sync_s"):
            if loop.sampler is None:
                ctx.engine.sync(ctx.policy)
            else:
                loop.sampler.freeze(ctx.policy)
        # 1. sample G responses for each of this process's share of the prompts of step + max_staleness
        # (data parallel: each process samples, scores and runs the models on its own rows) with the
        # current weights (before: the rollouts of the steps before it, with these weights too:
        # the warm-up), on the sampling thread with async_rollouts; take this step's rollout
        with timed(times, "time/rollout_s"):
            ahead, pending = step + cfg.max_staleness, loop.pending
            last = ahead if loop.sampler is None else ahead - 1  # the thread samples step `ahead`
            while pending.next_step(step) <= last:
                prompts = loop.prompts.take(loop.n_prompts)
                pending.push(_produce(ctx, algo, prompts, pending.next_step(step), step, ctx.policy))
            if loop.sampler is not None:
                prompts = loop.prompts.take(loop.n_prompts)
                loop.sampler.submit(partial(_produce, ctx, algo, prompts, ahead, step))
            entry = pending.pop(step)
        samples = entry.samples
        # 2. score them (the greedy baseline's responses too)
        with timed(times, "time/score_s"):
            scores, baseline_scores, by_source = _score(ctx, algo, samples, entry.greedy, loop.counters)
        dynamic = {}  # 2b. DAPO: groups whose rewards are all equal dropped, the step refilled
        if algo.needs.dynamic_sampling:
            with timed(times, "time/resample_s"):
                samples, scores, by_source, dynamic = _refill(
                    ctx, algo, loop, step, samples, scores, by_source
                )
        # 3. the trainer's log-probs under the current weights (the proximal policy: the sampling
        # policy when max_staleness=0; the engine's own log-probs of its draws are samples.logprobs),
        # the signals the algorithm reads (the reference's log-probs, a teacher's...); critic values;
        # `reuse`: the outputs the first update may reuse
        with timed(times, "time/ref_s"):
            logprobs, signals, values, reuse = learner.forward(samples, scores)
        # every process holds the whole step's rollout (B rows) from here on
        rollout = _gather_rollout(ctx, samples, logprobs, signals, values, scores, baseline_scores, by_source)
        rollout.sampled_by = entry.source  # whose rows: the engine's log-probs are the teacher's, or none
        # 4. advantages (and value targets)
        rollout.advantages, rollout.returns = algo.advantages(rollout)
        # 5. algo.epochs passes of minibatch updates (only the critic's while it is pre-trained); the
        # first minibatch reuses step 3's forward (the weights have not moved since)
        policy_rests, stats = step < algo.needs.critic_pretrain_steps, {}
        with timed(times, "time/train_s"):
            for _ in range(algo.epochs):
                order = minibatch_order(len(rollout.scores), ctx.group.size)  # rank 0's, on every rank
                for index in order.split(cfg.minibatch_size):
                    step_stats, tokens = learner.step(rollout, index, loss_fn, reuse, policy_rests)
                    reuse = None
                    for k, v in step_stats.items():
                        stats.setdefault(k, []).append(v)
                    loop.counters["trained_tokens"] += tokens
        rejected_steps = algo.rejected_streak(stats, rejected_steps, step + 1)  # stops at max_rejected_steps
        if loop.sampler is not None:  # the rollout of step + max_staleness joins the queue
            with timed(times, "time/rollout_wait_s"):
                loop.pending.push(loop.sampler.result())
        # 6. log what a comparison needs
        from_data = rollout.sampled_by == DATA  # demonstrations: no token was generated
        loop.counters["generated_tokens"] += 0 if from_data else int(rollout.mask.sum())
        loop.counters["reward_queries"] += len(rollout.scores)
        metrics = step_metrics(algo, rollout, stats, times, loop.counters)
        metrics |= dynamic
        if cfg.max_staleness > 0:  # this rollout's tokens over its own sampling time
            metrics["time/generated_tokens_per_s"] = int(rollout.mask.sum()) / max(entry.seconds, 1e-9)
        if loop.sampler is not None:  # the sampling thread's time for the rollout it queued (not in step_s)
            metrics["time/rollout_sampling_s"] = loop.pending.queue[-1].seconds
        final = end_of_step(ctx, loop.named, algo, step + 1, metrics) or final
        evaluated = (step + 1, metrics["eval/kl"]) if "eval/kl" in metrics else evaluated
        bar.set_postfix(**step_postfix(metrics, times, evaluated))
        bar.update(1)  # after the postfix: its log line shows this step's values
    bar.close()
    return finish(ctx, loop.named, algo, final)
