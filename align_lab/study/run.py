"""One run: checks -> shared stages (cached) -> context -> training loop -> summary in the run folder."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
import traceback
from functools import partial
from pathlib import Path

import torch

from align_lab.algorithms.base import OnlineAlgorithm
from align_lab.algorithms.preference import PairwiseAlgorithm
from align_lab.cache import StageCache
from align_lab.rewards.function import RewardError
from align_lab.study.checks import check_partitions, check_run
from align_lab.study.spec import RunSpec
from align_lab.study.summary import (
    SEGMENTS,
    RunStopped,
    check_resume_config,
    check_resume_stages,
    completed_before,
    config_digest,
    outcome,
    previous_segments,
    result_lines,
    stopped,
    write_resolved_config,
    write_summary,
)
from align_lab.study.world import World
from align_lab.tracking import MultiTracker
from align_lab.tracking.progress import progress_factory
from align_lab.train.backend import Diverged, forget_process_group
from align_lab.train.common import CheckpointError, Context, check_resumable, checkpoint_step
from align_lab.train.distributed import Group, join_slurm, launch, leave
from align_lab.train.online import train_online
from align_lab.train.pairwise import train_pairwise
from align_lab.train.preemption import Interrupted, Interruption, Preempted, Preemption

log = logging.getLogger("align_lab")


def build_context(spec: RunSpec, world: World, ckpt: Path, tracker, progress, preemption) -> Context:
    """Models and reward of a run from its (cached) shared stages: what a training loop needs."""
    # every stage is built (or loaded) before the seed, so a run that builds them and one that finds
    # them cached draw the same critic head and LoRA adapters: the reward model through the scorer,
    # the SFT policy explicitly (with reward=gold nothing else asks for it before the critic does)
    scorer = spec.reward.scorer(world)
    pairwise = isinstance(spec.algo, PairwiseAlgorithm) and spec.algo.uses_dataset_pairs
    preferences = world.preferences if pairwise else None
    judge = spec.judge.judge(world, scorer) if spec.judge is not None else None
    _ = world.sft_path
    torch.manual_seed(spec.seed)
    critic = None
    if isinstance(spec.algo, OnlineAlgorithm) and spec.algo.uses_critic:
        init = world.critic_start if spec.algo.critic_init == "sft" else world.stages["reward_model"].path
        critic = spec.model.init_critic(
            world.tokenizer, init
        ).train()  # a fresh value head: drawn from the seed
    ctx = Context(
        task=world.policy_task,
        tokenizer=world.tokenizer,
        policy=spec.lora.apply(world.load_policy()).train(),
        reference=world.load_reference().eval().requires_grad_(False),
        critic=critic,
        scorer=scorer,
        engine=spec.rollout,
        train=spec.train,
        tracker=tracker,
        checkpoint_dir=ckpt,
        seed=spec.seed,
        progress=progress,
        preferences=preferences,
        preemption=preemption,
        judge=judge,
        backend=spec.backend,
    )
    ctx.stage_keys = {name: stage.key for name, stage in world.stages.items()}
    return ctx


def loop_micro_batch_size(spec: RunSpec, world: World) -> int | None:
    """train.micro_batch_size of the loop, "auto" resolved for the most rows one of this process's
    updates covers (its share of a step's rollout or pairs). A DeepSpeed engine steps once per
    backward, so it takes whole minibatches."""
    setting, hw, train = spec.train.micro_batch_size, spec.hardware, spec.train
    if setting == "auto" and spec.backend.uses_deepspeed:
        setting = None
    online = isinstance(spec.algo, OnlineAlgorithm)
    # rows are responses (online) or pairs of responses (pairwise)
    per_row = world.sequence_bytes() * (1 if online else 2)
    if online and spec.algo.uses_critic:  # the critic's body runs with a graph beside the policy's
        per_row += world.sequence_bytes(logits=False)
    rows = -(-(train.rollout_size if online else train.minibatch_size) // hw.ranks)
    return world.resolve("train", setting, rows, per_row, hw.memory_bytes())


def eval_micro_batch_size(spec: RunSpec, world: World) -> int | None:
    """The same setting for evaluation's forwards (no graph: a forward's working set a row), over its
    samples (the task's eval prompts x train.eval_samples)."""
    setting = spec.train.micro_batch_size
    rows = len(world.policy_task.prompts("eval")) * spec.train.eval_samples
    per_row = world.sequence_bytes(graph=False)
    return world.resolve("eval", setting, rows, per_row, spec.hardware.memory_bytes())


def build_run(spec: RunSpec, run_dir: Path, tracker, progress, preemption):
    """(world, context, loop) of a run, the same on every rank. The context's train config holds the
    resolved micro-batch size (an int, or None for whole minibatches), never "auto"."""
    cache = StageCache(spec.cache_dir)
    # the stages run in the main process alone: the node's whole memory
    memory = spec.hardware.memory_bytes() * spec.hardware.processes
    world = World(spec.task, spec.model, spec.sft, cache, progress, spec.train.micro_batch_size, memory)
    ctx = build_context(spec, world, run_dir / "checkpoints", tracker, progress, preemption)
    ctx.train = dataclasses.replace(spec.train, micro_batch_size=loop_micro_batch_size(spec, world))
    ctx.eval_micro_batch_size = eval_micro_batch_size(spec, world)
    return world, ctx, train_online if isinstance(spec.algo, OnlineAlgorithm) else train_pairwise


def follow(group: Group, connect, spec: RunSpec, run_dir: Path, local_rank: int | None = None) -> None:
    """A rank other than 0: its share of the run (rank 0 logs, evaluates and writes the run folder).
    `connect()` joins the process group; `local_rank`: its GPU on its node (default: its rank)."""
    spec.hardware.use(group.rank if local_rank is None else local_rank)
    connect()
    quiet = progress_factory(enabled=False)
    _, ctx, loop = build_run(spec, run_dir, MultiTracker([]), quiet, Preemption())
    ctx.group = group
    loop(spec.algo, ctx)
    leave(partial(release, spec))


def release(spec: RunSpec) -> None:
    """What hangs off a run's process group, let go before the group is destroyed: the rollout engine
    (vLLM's own groups are made in the trainer's group) and DeepSpeed's cached groups."""
    spec.rollout.close()
    forget_process_group()


def run(spec: RunSpec, run_dir: Path) -> dict:
    """Runs (or resumes, when run_dir holds a checkpoint) one alignment run; returns summary.json.

    A folder that already holds this run, completed, is reported as it is (its checkpoint is not even
    read). A damaged checkpoint, a full disk, SIGTERM or Ctrl-C end the run with RunStopped: one line,
    the summary says failed or interrupted, and everything written before stays.
    """
    check_run(spec)
    digest = config_digest(spec.config)
    previous = completed_before(run_dir, digest)
    if previous is not None:
        return previous
    ckpt = run_dir / "checkpoints"
    try:  # before any compute: a damaged checkpoint or a changed hyperparameter is one line
        check_resumable(spec.algo, ckpt)
    except CheckpointError as e:
        raise RunStopped(f"error: {e}") from None
    check_resume_config(run_dir, spec.config)  # any other key: resume only the run that made it
    check_partitions(spec, ckpt)
    start = time.perf_counter()
    hw = spec.hardware
    slurm = hw.slurm_task()
    if slurm is not None and slurm.rank != 0:  # a run across nodes: rank 0 writes the run folder
        follow(
            Group(slurm.rank, slurm.size),
            partial(join_slurm, slurm, hw.device),
            spec,
            run_dir,
            slurm.local_rank,
        )
        return {"status": "completed", "rank": slurm.rank}
    hw.use(slurm.local_rank if slurm else 0)
    before = previous_segments(run_dir)  # a resumed run's earlier segments count in time/total_s
    summary = {"status": "running", "algo": spec.names.get("algo"), "seed": spec.seed}
    summary |= {"threads": torch.get_num_threads()}  # the default is the cores given: part of the numbers
    if spec.defaults_from:  # values the model preset chose (the user did not set these keys)
        summary |= {"defaults_from": spec.defaults_from}
        chosen = ", ".join(f"{k}={spec.config['algo'][k.split('.', 1)[1]]}" for k in spec.defaults_from)
        log.info(f"{chosen} from {next(iter(spec.defaults_from.values()))} (set the key to override)")
    summary |= {"names": spec.names, "config_digest": digest, "started": time.time(), SEGMENTS: before}
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_summary(run_dir, summary)
        write_resolved_config(run_dir, spec.config)
    except OSError as e:
        raise stopped(e, ckpt) or e from None
    # logged `step` = completed steps, so lines up to the checkpoint's step survive a resume
    tracker = spec.tracker.make(run_dir, spec.names, spec.config, checkpoint_step(ckpt) + 1)
    progress = progress_factory()
    try:
        with Interruption():
            world, ctx, loop = build_run(spec, run_dir, tracker, progress, Preemption().install())
            check_resume_stages(ckpt, ctx.stage_keys, spec.cache_dir)  # before the first step
            ranks = launch(
                hw.processes,
                hw.device,
                follow,
                (spec, run_dir),
                slurm=slurm,
                group_needed=spec.backend.uses_deepspeed,
                release=partial(release, spec),
            )
            summary["train/micro_batch_size_resolved"] = ctx.train.micro_batch_size
            write_summary(run_dir, summary)
            with ranks as ctx.group:  # the shared stages exist before the other ranks start
                final = loop(spec.algo, ctx)
        summary |= outcome(world, final, start, hw.device, before)
        if not spec.train.keep_checkpoint:  # the results are written; the weights are not wanted
            shutil.rmtree(ckpt, ignore_errors=True)
            summary["checkpoint"] = "deleted (train.keep_checkpoint=false)"
        tracker.summary(dict(final))
        for line in result_lines(summary, run_dir):
            log.info(line)
        return summary
    except Preempted:
        summary |= {"status": "preempted"}  # requeued by the scheduler, or resumed by a rerun
        raise
    except RewardError as e:  # a reward function's scores: one line naming reward.path
        summary |= {"status": "failed", "error": str(e)}
        raise RunStopped(f"error: {e}") from None
    except Diverged as e:  # the weights were not stepped into NaN; the last checkpoint is sound
        stage = str(e).startswith(("sft ", "reward model "))  # a stage says which key to lower
        error = str(e) if stage else f"policy optimisation {e}: lower algo.lr (now {spec.algo.lr})"
        summary |= {"status": "failed", "error": error}
        raise RunStopped(f"error: {error}") from None
    except BaseException as e:
        stop = stopped(e, ckpt)
        summary |= {
            "status": "interrupted" if isinstance(e, Interrupted | KeyboardInterrupt) else "failed",
            "error": str(stop) if stop else f"{type(e).__name__}: {e}",
            **({} if stop else {"traceback": traceback.format_exc()}),
        }
        if stop:
            raise stop from None
        raise
    finally:
        spec.rollout.close()
        summary[SEGMENTS] = [*before, time.perf_counter() - start]
        try:
            write_summary(run_dir, summary)
        finally:
            tracker.close()
