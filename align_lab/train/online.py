"""The online loop: rollout -> score -> advantages -> minibatch updates -> log. One loop for every
online algorithm; the only algorithm-dependent branch is whether a critic exists.

The loop reads an algorithm only through the OnlineAlgorithm contract (algorithms/base.py): the
signals its loss reads (algorithms/signals.py; filled by name into rollout.signals, whatever the
family) and the switches of algo.needs (base.LoopNeeds), each off by default: critic_pretrain_steps
(the policy rests while the critic warms up), entropy_coef (entropy bonus), ptx_coef (PPO-ptx: NLL of
the task's demonstrations), dynamic_sampling (DAPO). Steps 1-2 and the gathered rollout are
train/online_steps.py's, the model side the Learner's (train/learner.py). A new family edits none."""

from __future__ import annotations

from functools import partial

from align_lab.algorithms.base import OnlineAlgorithm
from align_lab.algorithms.sources import DATA
from align_lab.train import online_steps as steps
from align_lab.train.cadence import end_of_step, finish
from align_lab.train.context import Context
from align_lab.train.metrics import evaluated_before, step_metrics, step_postfix, timed
from align_lab.train.online_setup import setup
from align_lab.train.resume import restore
from align_lab.train.rng import minibatch_order, seed_generators


def train_online(algo: OnlineAlgorithm, ctx: Context) -> dict:
    """Trains ctx.models.policy with `algo` for ctx.train.steps steps, or until an evaluation reaches
    train.stop_at (resuming from ctx's checkpoint); returns the final evaluation."""
    cfg, loop, policy = ctx.train, setup(algo, ctx), ctx.models.policy
    learner = loop.learner  # the models' side: step 3's forward and step 5's updates (train/learner.py)
    seed_generators(ctx.seed)  # torch's, Python's and numpy's global generators
    start = restore(ctx, loop.named, algo)
    ctx.preemption.steps_begin()  # a SIGTERM or SIGINT now stops the run at a step's end, checkpointed
    bar = ctx.progress(total=cfg.steps, initial=start, desc="policy optimisation")
    final, rejected_steps = None, 0  # steps in a row whose correction rejected every token (from a resume: 0)
    # (step, eval/kl) of the latest evaluation, a resumed run's too: the progress line's KL without a KL term
    evaluated = evaluated_before(ctx.checkpoint_dir.parent, start)
    for step in range(start, cfg.steps):
        if ctx.ledger.stopped:  # train.stop_at reached: at the last evaluation, or in the checkpoint resumed
            break
        times: dict[str, float] = {}
        # 0. engines that hold their own copy of the weights (vLLM) take the policy's; HF samples the
        # live one. Async: the sampling thread's frozen copy takes them
        with timed(times, "time/sync_s"):
            if loop.sampler is None:
                ctx.engine.sync(policy)
            else:
                loop.sampler.freeze(policy)
        # 1. sample G responses for each of this process's share of the prompts of step + max_staleness
        # (data parallel: each process samples, scores and runs the models on its own rows) with the
        # current weights (before: the rollouts of the steps before it, with these weights too:
        # the warm-up), on the sampling thread with async_rollouts; take this step's rollout
        with timed(times, "time/rollout_s"):
            ahead, pending = step + cfg.max_staleness, loop.pending
            last = ahead if loop.sampler is None else ahead - 1  # the thread samples step `ahead`
            while pending.next_step(step) <= last:
                prompts = loop.prompts.take(loop.n_prompts)
                pending.push(steps.produce(ctx, algo, prompts, pending.next_step(step), step, policy))
            if loop.sampler is not None:
                prompts = loop.prompts.take(loop.n_prompts)
                loop.sampler.submit(partial(steps.produce, ctx, algo, prompts, ahead, step))
            entry = pending.pop(step)
        samples = entry.samples
        # 2. score them (the greedy baseline's responses too)
        with timed(times, "time/score_s"):
            scores, baseline_scores, by_source = steps.score(ctx, algo, samples, entry.greedy, loop.counters)
        dynamic = {}  # 2b. DAPO: groups whose rewards are all equal dropped, the step refilled
        if algo.needs.dynamic_sampling:
            with timed(times, "time/resample_s"):
                refilled = steps.refill_step(ctx, algo, loop, step, samples, scores, by_source)
                samples, scores, by_source, dynamic = refilled
        # 3. the trainer's log-probs under the current weights (the proximal policy: the sampling
        # policy when max_staleness=0; the engine's own log-probs of its draws are samples.logprobs),
        # the signals the algorithm reads (the reference's log-probs, a teacher's...); critic values;
        # `reuse`: the outputs the first update may reuse
        with timed(times, "time/ref_s"):
            logprobs, signals, values, reuse = learner.forward(samples, scores)
        # every process holds the whole step's rollout (B rows) from here on
        gathered = (samples, logprobs, signals, values, scores, baseline_scores, by_source)
        rollout = steps.gather_rollout(ctx, *gathered)
        rollout.sampled_by = entry.source  # whose rows: the engine's log-probs are the teacher's, or none
        # 4. advantages (and value targets)
        rollout.advantages, rollout.returns = steps.advantages_of(algo, rollout)
        # 5. algo.epochs passes of minibatch updates (only the critic's while it is pre-trained); the
        # first minibatch reuses step 3's forward (the weights have not moved since)
        policy_rests, stats = step < algo.needs.critic_pretrain_steps, {}
        with timed(times, "time/train_s"):
            for _ in range(algo.epochs):
                order = minibatch_order(len(rollout.scores), ctx.group.size)  # rank 0's, on every rank
                for index in order.split(cfg.minibatch_size):
                    step_stats, tokens = learner.step(rollout, index, reuse, policy_rests)
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
