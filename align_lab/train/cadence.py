"""What both loops do between steps: evaluate, log and checkpoint when due, honour a preemption or an
interruption (train/preemption.py), and finish the run."""

from __future__ import annotations

from align_lab.cache import default_cache_dir
from align_lab.rollout.base import sampled_dtype, weights_version
from align_lab.tracking.samples import cap_texts
from align_lab.train.context import Context
from align_lab.train.preemption import RankStopped
from align_lab.train.resume import checkpoint
from align_lab.train.rng import every_rank, rng_state
from align_lab.train.roofline import observe, run_means
from align_lab.train.stop_at import stop_record
from align_lab.user_limits import RunLimitsLost, held
from align_lab.value_checks import UserCodeError


def due(step: int, every: int, last: int) -> bool:
    """True on every `every`-th completed step (never when every == 0), excluding the last."""
    return every > 0 and step % every == 0 and step != last


def reference_version(ctx: Context) -> tuple:
    """Which reference an evaluation samples: the one training holds, at its weights' version (frozen in
    a run; a benchmark may hand the policy itself), or the starting model loaded for the evaluation."""
    reference = ctx.models.reference
    return ("loaded",) if reference is None else weights_version(reference)


def evaluate_now(ctx: Context):
    """Held-out evaluation of the current policy (row-seeded; the training RNG is untouched): an
    Evaluation (train/evaluate.py), its metrics and per-sample records. The reference's samples are
    drawn once a run (ctx.ledger.reference_draws): each evaluation would draw the very same ones."""
    from align_lab.train.evaluate import EVAL_PHASES, evaluate

    what = f"evaluation ({len(ctx.task.prompts('eval'))} prompts x {ctx.train.eval_samples} samples)"
    version = reference_version(ctx)
    with ctx.models.evaluation_reference() as reference, ctx.progress(total=EVAL_PHASES, desc=what) as bar:
        result = evaluate(
            ctx.models.policy,
            reference,
            ctx.tokenizer,
            ctx.task,
            ctx.scorer,
            ctx.engine,
            ctx.train.eval_samples,
            ctx.seed,
            judge=ctx.judge,
            micro_batch_size=ctx.memory.eval_micro_batch_size,
            sample_rows=ctx.memory.eval_sample_rows,
            progress=bar,
            reference_samples=ctx.ledger.reference_draws.get(version),
        )
    ctx.ledger.reference_draws.clear()
    ctx.ledger.reference_draws[version] = result.reference_samples
    return result


def limits_held() -> None:
    """The process's resource limits as the user's code found them, where code it left running (a reward's
    thread) lowered one after its call: put back and said, or one line naming the code, the run left to
    resume, where it lowered a hard one for good (forty-first hunt, case 49: a 362-line traceback)."""
    try:
        held()
    except RunLimitsLost as e:
        raise UserCodeError(str(e)) from None


def end_of_step(ctx: Context, named: dict, algo, done: int, metrics: dict) -> dict | None:
    """What both loops do after a step: evaluate when due (always at the last step), log, checkpoint
    when due, and honour a preemption signal. Returns the evaluation if one ran. With data parallel,
    only rank 0 does these (every rank holds the same weights), except what needs every process:
    a ZeRO-3 policy's forwards (evaluation) and a DeepSpeed engine's checkpoint."""
    main, backend = ctx.group.is_main, ctx.backend
    limits_held()  # before an evaluation opens a file
    evaluation = None
    evaluating = done == ctx.train.steps or due(done, ctx.train.eval_every, ctx.train.steps)
    if evaluating and (main or backend.every_rank_forwards(ctx.group)):
        result = evaluate_now(ctx)
        evaluation = result.metrics
        metrics |= evaluation
    if evaluating:
        stop_when_reached(ctx, evaluation, done, metrics)
    last = ctx.ledger.stopped.get("step", ctx.train.steps)  # finish() writes the last checkpoint
    limits_held()  # again before this step's lines and checkpoint are written
    if main:
        policy = ctx.models.policy
        sampled = sampled_dtype(ctx.engine, policy)  # the dtype of the weights the rollout reads
        metrics |= observe(ctx.ledger.perf, policy, default_cache_dir(), metrics, done, sampled)  # perf/
        ctx.tracker.log(metrics, step=done)
        if evaluation is not None and ctx.train.keep_eval_samples:
            ctx.tracker.samples(cap_texts(result.records, ctx.train.eval_text_chars), step=done)
    if ctx.group.size > 1:  # every rank's generators, for a checkpoint rank 0 may write now or at a signal
        ctx.ledger.rng_ranks = every_rank(rng_state(), ctx.group.size)
    saves = main or backend.every_rank_saves(ctx.group)
    saved = saves and due(done, ctx.train.checkpoint_every, last)
    if saved:
        checkpoint(ctx, named, algo, done)
    save = (lambda: None) if saved else lambda: checkpoint(ctx, named, algo, done)  # noqa: E731
    # a signal may reach one process of the run or all (scancel): every rank learns at this step's end
    # whether any did, and none starts the next step (one that did scored it, and scored it again on
    # resume: a reward with side effects saw it twice); a signal after this stops the next step
    stop = ctx.group.any(ctx.preemption.stopping())
    if stop and not main:
        if backend.every_rank_saves(ctx.group):
            save()  # with the main process, which then stops the run
        raise RankStopped(done)
    if main and stop:
        ctx.preemption.stop_with_the_others()  # another rank's signal: this one stops as it would
        # a USR2 during the step: checkpoint now, then let submitit requeue the job; a SIGTERM or
        # SIGINT: checkpoint now (whatever train.checkpoint_every says), then stop as interrupted
        ctx.preemption.after_step(save)
    return evaluation


def stop_when_reached(ctx: Context, evaluation: dict | None, done: int, metrics: dict) -> None:
    """train.stop_at: records in ctx.ledger.stopped why the run stops after step `done`, when this evaluation
    reached the threshold (train/stop_at.py); the loops then break. Rank 0 decides (it alone may have
    evaluated); with data parallel every rank learns it, before any checkpoint of this step."""
    stop = ctx.train.stop_at
    if not stop.on:
        return
    record = stop_record(stop, evaluation or {}, done, ctx.train.steps, metrics) if ctx.group.is_main else {}
    if ctx.group.from_main(bool(record)):
        ctx.ledger.stopped.update(record or {"step": done, "steps": ctx.train.steps})


def finish(ctx: Context, named: dict, algo, final: dict | None) -> dict:
    """The last checkpoint, and the final evaluation (re-run, seeded, if the run was already done). A run
    that keeps no checkpoint (train.keep_checkpoint=false: deleted once the run completes) writes no last
    one: 1.6 GB for SmolLM2, 3.1 GB with a critic, written only to be deleted. A run that stopped at
    train.stop_at writes it at the stop step (ctx.ledger.stopped), its record inside."""
    main, backend = ctx.group.is_main, ctx.backend
    limits_held()  # before the last checkpoint (forty-fourth hunt, case 10: a thread's, after the last step)
    if ctx.train.keep_checkpoint and (main or backend.every_rank_saves(ctx.group)):
        checkpoint(ctx, named, algo, ctx.ledger.stopped.get("step", ctx.train.steps))
    ctx.preemption.steps_end()  # a signal during the checkpoint stops the run now; in the evaluation, at once
    if final is None and (main or backend.every_rank_forwards(ctx.group)):
        final = evaluate_now(ctx).metrics  # its samples were written when the last step was logged
    ctx.models.close()  # an offloaded reference back in memory, its file closed (hardware.offload_reference)
    return (final | run_means(ctx.ledger.perf)) if main else {}  # with the run's mean perf/ figures
