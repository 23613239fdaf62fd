"""One admitted run (align_lab/admission.py): its folder started, its parts built (study/build.py), the
training loop, its summary in the run folder."""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from align_lab.envs.base import EnvError
from align_lab.rewards.function import RewardError
from align_lab.study.build import build_run
from align_lab.study.hardware import threads
from align_lab.study.spec import Job, RunSpec
from align_lab.study.summary import (
    SEGMENTS,
    RunStopped,
    check_resume_stages,
    completed_before,
    config_digest,
    outcome,
    previous_segments,
    result_lines,
    run_identity,
    stopped,
    write_resolved_config,
    write_summary,
)
from align_lab.tracking import MultiTracker
from align_lab.tracking.progress import progress_factory
from align_lab.train.backend import Diverged, forget_process_group
from align_lab.train.checkpoint_io import checkpoint_step
from align_lab.train.distributed import Group, join_slurm, launch, serve
from align_lab.train.memory import record as planned
from align_lab.train.preemption import Interrupted, Interruption, Preempted, Preemption
from align_lab.value_checks import ArtifactMissing, TrainsNothing

log = logging.getLogger("align_lab")


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
        _, ctx, loop = build_run(
            self.spec, self.run_dir, MultiTracker([]), quiet, Preemption(), rank=group.rank
        )
        loop(self.spec.algo, ctx)

    def release(self) -> None:
        """What hangs off a run's process group, let go before the group is destroyed: the rollout
        engine (vLLM's own groups are made in the trainer's group) and DeepSpeed's cached groups."""
        self.spec.rollout.close()
        forget_process_group()


def first_summary(spec: RunSpec, digest: str, before: list[float], stage_threads: int) -> dict:
    """summary.json as a run starts: what runs, the threads it has (and its stages were built with), the
    keys its model preset chose."""
    summary = {"status": "running", "algo": spec.names.get("algo"), "seed": spec.seed}
    # the default is the cores given: part of the numbers
    summary |= {"threads": torch.get_num_threads(), "stage_threads": stage_threads}
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
    if isinstance(e, RewardError | EnvError | TrainsNothing | ArtifactMissing):
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


def start_folder(spec: RunSpec, run_dir: Path, summary: dict) -> None:
    """The run folder with its first summary.json and resolved config; a full disk is one line."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_summary(run_dir, summary)
        write_resolved_config(run_dir, spec.config)
    except OSError as e:
        raise stopped(e, run_dir / "checkpoints") or e from None


def begin(job: Job, ckpt: Path) -> tuple[dict, list[float], int | None]:
    """(the first summary.json, written with the resolved config; the wall seconds of the earlier
    segments, which count in time/total_s; the threads the stages load with). A run started again from
    step 0 (its checkpoints deleted) counts no abandoned segment, and builds its stages afresh."""
    resumed = checkpoint_step(ckpt) > 0
    before = previous_segments(job.run_dir) if resumed else []
    stage_threads = job.stage_threads if resumed else None
    digest = config_digest(job.spec.config)
    summary = first_summary(job.spec, digest, before, stage_threads or torch.get_num_threads())
    start_folder(job.spec, job.run_dir, summary)
    return summary, before, stage_threads


def completed(summary: dict, final: dict, spec: RunSpec, run_dir: Path, tracker) -> dict:
    """A completed run's last words: its checkpoint let go if unwanted, the tracker's summary, the lines."""
    if not spec.train.keep_checkpoint:  # the results are written; the weights are not wanted
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        summary["checkpoint"] = "deleted (train.keep_checkpoint=false)"
    tracker.summary(dict(final))
    for line in result_lines(summary, run_dir):
        log.info(line)
    return summary


def run(job: Job) -> dict:
    """Runs (or resumes, when its folder holds a checkpoint) one admitted run; returns summary.json.

    A folder that already holds this run, completed, is reported as it is (its checkpoint is not even
    read). A damaged checkpoint, a full disk, SIGTERM or Ctrl-C end the run with RunStopped: one line,
    the summary says failed or interrupted, and everything written before stays.
    """
    spec, run_dir = job.spec, job.run_dir
    if job.completed:
        return completed_before(run_dir, job.previous)
    ckpt = run_dir / "checkpoints"
    start = time.perf_counter()
    hw = spec.hardware
    slurm = hw.slurm_task()
    if slurm is not None and slurm.rank != 0:  # a run across nodes: rank 0 writes the run folder
        share = ShareOfRun(spec, run_dir, slurm.local_rank)
        serve(share, Group(slurm.rank, slurm.size), partial(join_slurm, slurm, hw.device))
        return {"status": "completed", "rank": slurm.rank}
    hw.use(slurm.local_rank if slurm else 0)
    summary, before, stage_threads = begin(job, ckpt)
    # logged `step` = completed steps, so lines up to the checkpoint's step survive a resume
    tracker = spec.tracker.make(run_dir, spec.names, spec.config, checkpoint_step(ckpt) + 1)
    try:
        with Interruption():
            with threads(stage_threads):  # a resume loads the stages its checkpoint was trained on
                # the run's identity goes inside every checkpoint, checked on resume (admission)
                stages, ctx, loop = build_run(
                    spec, run_dir, tracker, progress_factory(), Preemption().install(), run_identity(spec)
                )
            check_resume_stages(ckpt, ctx.stage_keys, spec.cache_dir)  # before the first step
            ranks = launch(
                hw.processes,
                hw.device,
                ShareOfRun(spec, run_dir),
                slurm=slurm,
                group_needed=spec.backend.uses_deepspeed,
            )
            summary |= planned(ctx.memory)
            write_summary(run_dir, summary)
            with ranks:  # the shared stages exist before the other ranks start
                final = loop(spec.algo, ctx)
        summary |= outcome(stages, final, start, hw.device, before)
        return completed(summary, final, spec, run_dir, tracker)
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
