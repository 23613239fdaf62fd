"""One admitted run (align_lab/run/admission.py): its folder started, its parts built (run/build.py), the
training loop, its summary in the run folder."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from align_lab.rollout.base import COLD
from align_lab.rollout.busy import threads_record
from align_lab.rollout.decode import hidden_size
from align_lab.rollout.decode_matmul import resolved as decode_matmul
from align_lab.run.build import build_run
from align_lab.run.failure import failure
from align_lab.run.hardware import threads
from align_lab.run.inputs import check_same_inputs, check_same_reads
from align_lab.run.resume_stages import StagesChanged
from align_lab.run.run_folder import RunFolder
from align_lab.run.spec import Job, RunSpec
from align_lab.run.start import begin, leave
from align_lab.run.summary import (
    RunStopped,
    completed_before,
    exited_where,
    outcome,
    result_lines,
    run_identity,
    stopped,
)
from align_lab.run.teacher_run import teacher_below_sft
from align_lab.tracking import MultiTracker
from align_lab.tracking.jsonl import trained
from align_lab.tracking.progress import below_sft_line, progress_factory, reversed_weights, unmoved_line
from align_lab.tracking.samples import SAMPLES_FILE, read_samples
from align_lab.train.backend import forget_process_group
from align_lab.train.checkpoint_io import checkpoint_step
from align_lab.train.distributed import Group, join_slurm, serve
from align_lab.train.launch import launch
from align_lab.train.memory import record as planned
from align_lab.train.preemption import Interruption, held
from align_lab.train.stop_at import unreached
from align_lab.train.submitit_signals import Preemption
from align_lab.user_limits import held_at_the_end
from align_lab.user_reads import as_opened
from align_lab.user_threads import thread_exits_said
from align_lab.user_timeouts import ended_here
from align_lab.value_checks import (
    one_line,
)

log = logging.getLogger("align_lab")


@dataclass(frozen=True)
class ShareOfRun:
    """A rank other than 0's part of a run (train/distributed.RankJob): rank 0 logs, evaluates and
    writes the run folder. Picklable: spawned ranks receive it. `local_rank`: its GPU on its node
    (default: its rank)."""

    spec: RunSpec
    run_dir: Path
    local_rank: int | None = None
    inputs: dict | None = None  # rank 0's digests of the user's inputs (run/inputs.py), as the run started
    read: dict | None = None  # the files rank 0's user code read, each as it read it (user_reads.as_opened)

    def run(self, group: Group, connect) -> None:
        """Sets the process up, calls connect() to join the process group, runs its share of the loop."""
        rank = group.rank if self.local_rank is None else self.local_rank
        self.spec.hardware.use(rank, getattr(self.spec.model, "max_threads", None))
        connect()
        check_same_inputs(self.inputs, self.spec.config)  # in the group: a refusal reaches rank 0 at once
        check_same_reads(self.read)
        quiet = progress_factory(enabled=False)
        # a scheduler's SIGTERM reaches every process of the run (scancel, a preemption): here too it
        # stops the run at the step's end, with rank 0's checkpoint (eleventh hunt: this rank died of it)
        with Interruption(quiet=group.rank != 0) as interruption:
            preemption = Preemption(interruption=interruption).install()
            _, ctx, loop = build_run(
                self.spec, self.run_dir, MultiTracker([]), quiet, preemption, rank=group.rank
            )
            try:
                loop(self.spec.algo, ctx)
            finally:
                closed(ctx)

    def release(self) -> None:
        """What hangs off a run's process group, let go before the group is destroyed: the rollout
        engine (vLLM's own groups are made in the trainer's group) and DeepSpeed's cached groups."""
        self.spec.rollout.close()
        forget_process_group()


def completed(summary: dict, final: dict, spec: RunSpec, run_dir: Path, tracker) -> dict:
    """A completed run's end: its checkpoint let go if unwanted, the tracker's summary."""
    if not spec.train.keep_checkpoint:  # the results are written; the weights are not wanted
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        summary["checkpoint"] = "deleted (train.keep_checkpoint=false)"
    tracker.summary(dict(final))
    return summary


def said_completed(summary: dict, run_dir: Path, spec: RunSpec) -> dict:
    """A completed run's last words, once its summary.json says completed (seventeenth hunt: a SIGTERM
    right after "completed in" left it `running`, and compare called the run died)."""
    for line in [*result_lines(summary, run_dir), *unreached(spec.train.stop_at, summary, spec.train.steps)]:
        log.info(line)
    samples = read_samples(run_dir / SAMPLES_FILE)[0]
    cold = spec.rollout.temperature < COLD
    clamped = max(getattr(getattr(spec.algo, "reward_clipping", None), "said", None) or [0.0])
    unmoved = unmoved_line(samples, *trained(run_dir), cold=cold, clamped=clamped)
    below = below_sft_line(samples, reversed_weights(spec.reward), teacher_below_sft(spec))
    for warning in (below, unmoved):  # never a silent collapse (issue 73)
        if warning is not None:
            log.warning(warning)
    return summary


ENDING = threading.Lock()  # summary.json's last write: the run's own end's, or a thread's (ended_by_a_thread)


def ending(
    spec: RunSpec, folder: RunFolder, summary: dict | None, kept: dict, segments: list, tracker, ctx=None
) -> None:
    """A run's end, whatever ended it: its models' file let go (`closed`), the rollout engine closed,
    summary.json written with the segments' wall times (a full disk: the stop under way keeps its line:
    unwritten), the tracker closed."""
    closed(ctx)
    spec.rollout.close()
    held_at_the_end()  # a limit a thread of the user's code lowered after the last step, put back
    try:
        with ENDING:  # a thread of the user's code ending the process waits, or is waited for
            leave(folder, summary, kept, segments)
    except OSError as e:
        unwritten(e, summary, folder.path / "checkpoints")
    finally:
        if tracker is not None:
            try:  # its last lines flushed: on a full disk, as summary.json (twentieth hunt, case 41)
                tracker.close()
            except OSError as e:
                unwritten(e, summary, folder.path / "checkpoints", "")


def unwritten(
    e: OSError, summary: dict | None, ckpt: Path, said: str = "; it says the run is running"
) -> None:
    """summary.json (or the tracker's last lines) could not be written as the run ended (a full disk):
    where the run is stopping on an error or a signal, that stop's line stands and a warning says the file
    was not written (a real full disk replaced the stop's line with "cannot write the run folder ...;
    choose a writable hydra.run.dir", the way to a new run); a completed run's is one line naming it."""
    if summary is None or summary.get("status") in ("completed", "running"):
        raise stopped(e, ckpt) or e from None
    if not ckpt.parent.is_dir() or (e.filename and e.filename in str(summary.get("error"))):
        return  # the folder itself removed, or the file the stop names: the stop under way says so
    log.warning(f"warning: {e.filename or 'summary.json'}: not written ({e.strerror}){said}")


def end_now(
    spec: RunSpec, folder: RunFolder, summary: dict, kept: dict, before: list, start: float, tracker, e
) -> None:
    """The run ended as run() ends it, from rank 0's watch over its ranks (train/rank_watch.py), while the
    main thread waits in native code for a rank that has ended: summary.json, the line, the exit code."""
    update, stop = failure(e, spec, folder.path / "checkpoints")
    summary |= update
    try:
        ending(spec, folder, summary, kept, [*before, time.perf_counter() - start], tracker)
    except RunStopped as written:  # summary.json not written: the disk's line
        stop = written
    finally:
        line = stop or RunStopped(f"error: {one_line(e)}", 1)
        os.write(2, f"align_lab: {line}\n".encode())
        logging.shutdown()  # the run's app.log
        ended_here(line.exit_code)  # said: no second line from hang_watch.py for a call under way


def ended_by_a_thread(
    spec: RunSpec, folder: RunFolder, summary: dict, kept: dict, before: list, start: float, e
) -> None:
    """A thread of the user's code ended the process (user_threads.py): summary.json says failed and the
    line resumes the run, as end_now's; the rollout engine and the tracker are left to the main thread,
    which may be using them, and the process ends (rc 1, or the code its os._exit passed). A run whose
    end came first stays as it ended: completed, a warning and rc 0 (twenty-sixth hunt, case 2: a thread
    that fired as the run completed rewrote its summary `failed` and said "resume from step 6")."""
    ENDING.acquire()  # never released: the process ends here, and the run's own end waits for it
    status = summary.get("status")
    if status == "running":
        update, stop = failure(e, spec, folder.path / "checkpoints")
        summary = summary | update  # a copy: the main thread may still merge its outcome into its own
        line = stop or RunStopped(f"error: {one_line(e)}", 1)
    else:  # its outcome merged (completed), or its own stop already written
        called = e.call or f"os._exit({e.code!r})"
        line = RunStopped(
            f"warning: {exited_where(e)} (a thread of your code) called {called} after the "
            f"run ended ({status})",
            0 if status == "completed" else e.code or 1,
        )
    with contextlib.suppress(OSError):
        leave(folder, summary, kept, [*before, time.perf_counter() - start])
    os.write(2, f"align_lab: {line}\n".encode())
    logging.shutdown()  # the run's app.log
    ended_here(line.exit_code and (e.code or line.exit_code))


def closed(ctx) -> None:
    """A run's models let go of what they hold outside memory, whatever ended the run (a completed run's
    finish() did already): an offloaded reference's file, now or as its writing thread ends, not at a
    later garbage collection inside another run of the process; nothing read back (a run that failed out
    of memory would fail again), nothing waited for."""
    if ctx is not None:
        with contextlib.suppress(OSError):
            ctx.models.discard()


def learned(ctx) -> dict:
    """What the run's Ledger (train/ledger.py) adds to its summary: the memory plan with the forwards
    `auto` really ran, and why it stopped early, if it did (train.stop_at)."""
    stopped, offloaded = ctx.ledger.stopped, ctx.models.offload is None or ctx.models.offload.written()
    plan = planned(ctx.memory, ctx.ledger.realized, offloaded)  # a reference whose file failed: held
    return plan | ({"stopped": dict(stopped)} if stopped else {})


def built(spec: RunSpec, ctx) -> dict:
    """What the summary says once a run's parts are built: its memory plan, the rollout's LM-head matmul,
    and on a GPU vLLM's share of it (null: chosen by the policy's size, run/build.py)."""
    device = spec.hardware.device
    share = getattr(spec.rollout, "gpu_memory_utilization", None) if device == "cuda" else None
    engine = {"rollout/gpu_memory_utilization": share} if share else {}
    return planned(ctx.memory) | decode_matmul(spec.rollout, device, hidden_size(ctx.models.policy)) | engine


def run(job: Job) -> dict:
    """Runs (or resumes, when its folder holds a checkpoint) one admitted run; returns summary.json. A
    folder that already holds this run, completed, is reported as it is (its checkpoint not even read).
    A damaged checkpoint, a full disk, SIGTERM or Ctrl-C end the run with RunStopped: one line, the
    summary says failed or interrupted, and everything written before stays."""
    spec, run_dir, folder = job.spec, job.run_dir, RunFolder(job.run_dir)  # its summary's one writer
    if job.completed:
        return completed_before(run_dir, job.previous)
    ckpt, start, hw = run_dir / "checkpoints", time.perf_counter(), spec.hardware
    slurm = hw.slurm_task()
    if slurm is not None and slurm.rank != 0:  # a run across nodes: rank 0 writes the run folder
        share = ShareOfRun(spec, run_dir, slurm.local_rank)
        status = serve(share, Group(slurm.rank, slurm.size), partial(join_slurm, slurm, hw.device))
        return {"status": status, "rank": slurm.rank}
    hw.use(slurm.local_rank if slurm else 0, getattr(spec.model, "max_threads", None))
    kept = folder.kept()  # what a refused resume leaves as it found it
    identity = run_identity(spec)  # inside every checkpoint, checked on resume (admission)
    summary, before, stage_threads, tracker, ctx = None, [], None, None, None
    try:  # from the folder's start: a signal as it is written left summary.json `running` (18th hunt)
        with held("the run stops once its folder is started ({name} again: now)"):
            summary, before, stage_threads = begin(job, ckpt, folder, identity["inputs"])
        # logged `step` = completed steps, so lines up to the checkpoint's step survive a resume
        tracker = spec.tracker.make(run_dir, spec.names, spec.config, checkpoint_step(ckpt) + 1)
        ends = spec, folder, summary, kept, before, start  # what a run's end from another thread writes
        with Interruption() as interruption, thread_exits_said(partial(ended_by_a_thread, *ends)):
            preemption = Preemption(interruption=interruption).install()  # USR2; SIGTERM/INT at a step's end
            with threads(stage_threads):  # a resume loads the stages its checkpoint was trained on
                stages, ctx, loop = build_run(
                    spec, run_dir, tracker, progress_factory(), preemption, identity
                )
            ranks = launch(
                hw.processes,
                hw.device,
                ShareOfRun(spec, run_dir, inputs=identity["inputs"], read=as_opened()),
                slurm=slurm,
                group_needed=spec.backend.uses_deepspeed,
                interruption=interruption,
                end_now=partial(end_now, *ends, tracker),
            )
            summary |= built(spec, ctx)
            folder.write_summary(summary)
            with ranks:  # the shared stages exist before the other ranks start
                final = loop(spec.algo, ctx)
        summary |= outcome(stages, final, start, hw.device, before, threads_record(spec.rollout))
        summary |= learned(ctx)
        summary = completed(summary, final, spec, run_dir, tracker)
    except StagesChanged as e:  # refused before any stage was built: nothing written, no time counted
        summary = None
        raise RunStopped(f"error: {e}") from None
    except BaseException as e:
        if summary is None:  # the folder refused as it was started: as it was (leave)
            raise
        update, stop = failure(e, spec, ckpt)
        summary |= update
        if stop is not None:
            raise stop from None
        raise
    finally:
        ending(spec, folder, summary, kept, [*before, time.perf_counter() - start], tracker, ctx)
    return said_completed(summary, run_dir, spec)
