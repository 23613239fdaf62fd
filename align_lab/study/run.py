"""One run: checks -> shared stages (cached) -> context -> training loop -> summary in the run folder."""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from align_lab.algorithms.base import OnlineAlgorithm
from align_lab.algorithms.preference import PairwiseAlgorithm
from align_lab.cache import StageCache
from align_lab.checks import TrainsNothing
from align_lab.envs.base import EnvError
from align_lab.rewards import reward_models
from align_lab.rewards.function import RewardError
from align_lab.rollout.turns import TurnEngine
from align_lab.study.checks import check_partitions, check_run
from align_lab.study.spec import RunSpec
from align_lab.study.stages import Stages, build_stages
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
from align_lab.tasks.view import observation_renderer
from align_lab.tracking import MultiTracker
from align_lab.tracking.progress import progress_factory
from align_lab.train.backend import Diverged, forget_process_group
from align_lab.train.checkpoint_io import CheckpointError, checkpoint_step
from align_lab.train.context import Context
from align_lab.train.distributed import Group, join_slurm, launch, serve
from align_lab.train.memory import record as planned
from align_lab.train.online import train_online
from align_lab.train.pairwise import train_pairwise
from align_lab.train.preemption import Interrupted, Interruption, Preempted, Preemption
from align_lab.train.resume import check_resumable

log = logging.getLogger("align_lab")


def stages_of(spec: RunSpec, cache: StageCache, progress, memory: int, rank: int = 0) -> Stages:
    """The run's shared stages, built (or loaded) in their fixed order: the preference pairs when the
    algorithm trains on them, a reward model for each learned one its reward scores with. Rank 0 builds
    them before the other ranks start; those only load them."""
    pairwise = isinstance(spec.algo, PairwiseAlgorithm) and spec.algo.uses_dataset_pairs
    threshold = spec.algo.desirable_threshold if pairwise else None  # unpaired samples (KTO)
    return build_stages(
        spec.task,
        spec.model,
        spec.sft,
        cache,
        progress,
        spec.train.micro_batch_size,
        memory,
        preferences=pairwise and threshold is None,
        reward_models=reward_models(spec.reward),
        may_build=rank == 0,
        env=spec.env,
        desirable_threshold=threshold,
    )


def frozen_reference(stages: Stages) -> torch.nn.Module:
    """The frozen reference policy (the SFT policy, or model.reference's checkpoint), in eval mode."""
    return stages.load_reference().eval().requires_grad_(False)


def build_context(
    spec: RunSpec, stages: Stages, ckpt: Path, tracker, progress, preemption, rank=0
) -> Context:
    """Models and reward of a run from its built stages: what a training loop needs, complete (its
    memory planned: train/memory.py). The run's seed is set here, after every stage is built (or
    loaded), so a run that builds them and one that finds them cached draw the same critic head and
    LoRA adapters."""
    scorer = spec.reward.scorer(stages)
    pairwise = isinstance(spec.algo, PairwiseAlgorithm) and spec.algo.uses_dataset_pairs
    judge = spec.judge.judge(stages, scorer) if spec.judge is not None else None
    torch.manual_seed(spec.seed)
    critic = None
    if isinstance(spec.algo, OnlineAlgorithm) and spec.algo.uses_critic:
        init = stages.critic_start if spec.algo.critic_init == "sft" else stages.results["reward_model"].path
        # a fresh value head: drawn from the seed
        critic = spec.model.init_critic(stages.tokenizer, init).train()
    return Context(
        task=stages.policy_task,
        tokenizer=stages.tokenizer,
        policy=spec.lora.apply(stages.load_policy()).train(),
        # held for training only when its loss reads it; evaluation loads it otherwise (Context)
        reference=frozen_reference(stages) if spec.algo.uses_reference else None,
        critic=critic,
        scorer=scorer,
        engine=engine_of(spec, stages),
        train=spec.train,
        tracker=tracker,
        checkpoint_dir=ckpt,
        seed=spec.seed,
        progress=progress,
        preferences=(stages.preferences if stages.samples is None else stages.samples) if pairwise else None,
        preemption=preemption,
        judge=judge,
        backend=spec.backend,
        env=spec.env,
        load_reference=partial(frozen_reference, stages),
        stage_keys={name: stage.key for name, stage in stages.results.items()},
        group=Group(rank, spec.hardware.ranks),
        pairwise=not isinstance(spec.algo, OnlineAlgorithm),
        memory_budget=spec.hardware.memory_bytes(),
    )


def engine_of(spec: RunSpec, stages: Stages):
    """The run's rollout engine: the configured one, played turn by turn (rollout/turns.py) when the
    environment is multi-turn."""
    if not spec.env.multi_turn:
        return spec.rollout
    view = stages.policy_task
    render = observation_renderer(view, spec.env)  # as the SFT and preference stages render them
    return TurnEngine(spec.rollout, spec.env, spec.env_name, render, getattr(view, "raw", lambda p: p))


def build_run(spec: RunSpec, run_dir: Path, tracker, progress, preemption, rank: int = 0):
    """(stages, context, loop) of a run, the same on every rank."""
    # the stages run in the main process alone: the node's whole memory
    memory = spec.hardware.memory_bytes(whole_node=True)
    stages = stages_of(spec, StageCache(spec.cache_dir), progress, memory, rank)
    ctx = build_context(spec, stages, run_dir / "checkpoints", tracker, progress, preemption, rank)
    return stages, ctx, train_online if isinstance(spec.algo, OnlineAlgorithm) else train_pairwise


@dataclass(frozen=True)
class ShareOfRun:
    """A rank other than 0's part of a run (train/distributed.RankJob): rank 0 logs, evaluates and
    writes the run folder. Picklable: spawned ranks receive it. `local_rank`: its GPU on its node
    (default: its rank)."""

    spec: RunSpec
    run_dir: Path
    local_rank: int | None = None

    def run(self, group: Group, connect) -> None:
        """Sets the process up, calls connect() to join the process group, runs its share of the loop."""
        self.spec.hardware.use(group.rank if self.local_rank is None else self.local_rank)
        connect()
        quiet = progress_factory(enabled=False)
        _, ctx, loop = build_run(self.spec, self.run_dir, MultiTracker([]), quiet, Preemption(), group.rank)
        loop(self.spec.algo, ctx)

    def release(self) -> None:
        """What hangs off a run's process group, let go before the group is destroyed: the rollout
        engine (vLLM's own groups are made in the trainer's group) and DeepSpeed's cached groups."""
        self.spec.rollout.close()
        forget_process_group()


def first_summary(spec: RunSpec, digest: str, before: list[float]) -> dict:
    """summary.json as a run starts: what runs, the threads it has, the keys its model preset chose."""
    summary = {"status": "running", "algo": spec.names.get("algo"), "seed": spec.seed}
    summary |= {"threads": torch.get_num_threads()}  # the default is the cores given: part of the numbers
    if spec.defaults_from:  # values the model preset chose (the user did not set these keys)
        summary |= {"defaults_from": spec.defaults_from}
        chosen = ", ".join(f"{k}={spec.config['algo'][k.split('.', 1)[1]]}" for k in spec.defaults_from)
        log.info(f"{chosen} from {next(iter(spec.defaults_from.values()))} (set the key to override)")
    return summary | {"names": spec.names, "config_digest": digest, "started": time.time(), SEGMENTS: before}


def failure(e: BaseException, spec: RunSpec, ckpt: Path) -> tuple[dict, BaseException | None]:
    """What a run that ended with `e` adds to its summary, and the one-line RunStopped to raise in its
    place (None: raise `e` itself)."""
    if isinstance(e, Preempted):  # requeued by the scheduler, or resumed by a rerun
        return {"status": "preempted"}, None
    # one line naming reward.path, the environment and its turn, or the correction's keys
    if isinstance(e, RewardError | EnvError | TrainsNothing):
        return {"status": "failed", "error": str(e)}, RunStopped(f"error: {e}")
    if isinstance(e, Diverged):  # the weights were not stepped into NaN; the last checkpoint is sound
        stage = str(e).startswith(("sft ", "reward model "))  # a stage says which key to lower
        error = str(e) if stage else f"policy optimisation {e}: lower algo.lr (now {spec.algo.lr})"
        return {"status": "failed", "error": error}, RunStopped(f"error: {error}")
    stop = stopped(e, ckpt)
    return {
        "status": "interrupted" if isinstance(e, Interrupted | KeyboardInterrupt) else "failed",
        "error": str(stop) if stop else f"{type(e).__name__}: {e}",
        **({} if stop else {"traceback": traceback.format_exc()}),
    }, stop


def check_resume(spec: RunSpec, run_dir: Path, ckpt: Path) -> None:
    """Before any compute: a damaged checkpoint, a changed hyperparameter or any other key (resume only
    the run that made it) is one line."""
    try:
        check_resumable(spec.algo, ckpt)
    except CheckpointError as e:
        raise RunStopped(f"error: {e}") from None
    check_resume_config(run_dir, spec.config)
    check_partitions(spec, ckpt)


def start_folder(spec: RunSpec, run_dir: Path, summary: dict) -> None:
    """The run folder with its first summary.json and resolved config; a full disk is one line."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_summary(run_dir, summary)
        write_resolved_config(run_dir, spec.config)
    except OSError as e:
        raise stopped(e, run_dir / "checkpoints") or e from None


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
    check_resume(spec, run_dir, ckpt)
    start = time.perf_counter()
    hw = spec.hardware
    slurm = hw.slurm_task()
    if slurm is not None and slurm.rank != 0:  # a run across nodes: rank 0 writes the run folder
        job = ShareOfRun(spec, run_dir, slurm.local_rank)
        serve(job, Group(slurm.rank, slurm.size), partial(join_slurm, slurm, hw.device))
        return {"status": "completed", "rank": slurm.rank}
    hw.use(slurm.local_rank if slurm else 0)
    before = previous_segments(run_dir)  # a resumed run's earlier segments count in time/total_s
    summary = first_summary(spec, digest, before)
    start_folder(spec, run_dir, summary)
    # logged `step` = completed steps, so lines up to the checkpoint's step survive a resume
    tracker = spec.tracker.make(run_dir, spec.names, spec.config, checkpoint_step(ckpt) + 1)
    try:
        with Interruption():
            stages, ctx, loop = build_run(spec, run_dir, tracker, progress_factory(), Preemption().install())
            check_resume_stages(ckpt, ctx.stage_keys, spec.cache_dir)  # before the first step
            job = ShareOfRun(spec, run_dir)
            ranks = launch(
                hw.processes, hw.device, job, slurm=slurm, group_needed=spec.backend.uses_deepspeed
            )
            summary |= planned(ctx.memory)
            write_summary(run_dir, summary)
            with ranks:  # the shared stages exist before the other ranks start
                final = loop(spec.algo, ctx)
        summary |= outcome(stages, final, start, hw.device, before)
        if not spec.train.keep_checkpoint:  # the results are written; the weights are not wanted
            shutil.rmtree(ckpt, ignore_errors=True)
            summary["checkpoint"] = "deleted (train.keep_checkpoint=false)"
        tracker.summary(dict(final))
        for line in result_lines(summary, run_dir):
            log.info(line)
        return summary
    except BaseException as e:
        update, stop = failure(e, spec, ckpt)
        summary |= update
        if stop is not None:
            raise stop from None
        raise
    finally:
        spec.rollout.close()
        summary[SEGMENTS] = [*before, time.perf_counter() - start]
        try:
            write_summary(run_dir, summary)
        finally:
            tracker.close()
