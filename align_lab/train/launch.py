"""Rank 0's side of a data-parallel run on one node (train/distributed.py has the group itself): it
spawns ranks 1..N-1, each serving the run's RankJob and dying with rank 0, and says why a rank ended
(train/rank_ends.py)."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial

import torch.multiprocessing as mp

from align_lab.train.distributed import (
    Group,
    RankJob,
    free_port,
    join,
    join_slurm,
    serve,
)
from align_lab.train.preemption import Interrupted, Interruption
from align_lab.train.rank_ends import (
    RankExited,
    RankTimedOut,
    _forget_sent,
    _sent,
    _why_it_ended,
    stuck_file,
)
from align_lab.train.rank_env import forget_env, placed_env
from align_lab.train.rank_watch import ended, watched
from align_lab.train.slurm_world import SlurmWorld
from align_lab.user_pulse import pulsing
from align_lab.user_reads import watch
from align_lab.user_timeouts import for_the_rank
from align_lab.value_checks import UserCodeError

ENDED = (mp.ProcessRaisedException, mp.ProcessExitedException)  # a spawned rank raised, or exited


def unsendable(parts: dict) -> str | None:
    """`name (error)` of the first of `parts` that a spawned rank could not receive (pickle), or None
    (fourteenth hunt: an environment holding a threading.Lock was a 25-frame traceback as ranks started)."""
    for name, part in parts.items():
        try:
            pickle.dumps(part)
        except Exception as e:  # noqa: BLE001 - whatever pickle says of the user's object
            return f"{name} ({type(e).__name__}: {e})"
    return None


class _WatchFirst:
    """Unpickled on a spawned rank before its job, whose unpickling imports the user's modules again:
    what they read from then on is noted (user_reads.watch), to compare with rank 0's (seventeenth hunt),
    and its lines are said as the rank's (_first_on_a_rank)."""

    def __reduce__(self):
        return _first_on_a_rank, ()


def _first_on_a_rank() -> None:
    """watch(), and this rank's log lines prefixed `rank R of S: ` (thirty-eighth hunt, case 40: rank 1's
    warning on importing the reward read as a second of rank 0's)."""
    watch()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"rank {os.environ.get('RANK')} of {os.environ.get('WORLD_SIZE')}: %(message)s")
    )
    logging.getLogger().addHandler(handler)


def _spawned(
    index: int, size: int, port: int, device: str, rank_0: int, _watching: None, job: RankJob
) -> None:
    """Rank index + 1 of a run on this node, spawned by rank 0 (process `rank_0`): serves `job`."""
    # a terminal's Ctrl-C reaches every process of the run: rank 0 alone stops it, at a step's end with
    # its checkpoint (train/preemption.py), and then stops this rank (ignored from its start: _start_ranks)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for_the_rank(str(stuck_file(port, index + 1)))  # a call stuck in C: rank 0 says it (rank_ends.py)
    pulsing(True)  # and a thread of the user's code holding Python's lock (user_pulse.py)
    _die_with_rank_0()
    if os.getppid() != rank_0:  # rank 0 ended as this rank started (a signal): its end is the run's
        os._exit(1)
    try:
        serve(job, Group(index + 1, size), partial(join, index + 1, size, port, device))
    except Interrupted as e:  # a signal outside the steps: rank 0 says where the run stopped
        sys.stderr.flush()
        os._exit(e.exit_code)
    except BaseException as e:
        if os.getppid() != rank_0:  # rank 0 is gone (killed): its end is the run's; SIGKILL is on its way
            os._exit(1)
        # rank 0 raises it in its place (a reward's error on this rank alone: one line, as on one
        # process: thirteenth hunt), its traceback a note; one that cannot travel is said here, now
        if not _sent(e, port, index + 1, size):
            print(
                f"align_lab: rank {index + 1} of {size} failed:\n{traceback.format_exc()}",
                file=sys.stderr,
                flush=True,
            )
            raise
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: a late gloo thread must not abort a finished worker


def _die_with_rank_0() -> None:
    """Linux: this process gets SIGKILL when rank 0 (its parent) ends, whatever ends it (twelfth hunt:
    rank 0 killed by kill -9, rank 1 lived on to print gloo's traceback to the user's terminal)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl (not Linux): the traceback, as before
        pass


@contextmanager
def launch(
    size: int,
    device: str,
    job: RankJob,
    slurm: SlurmWorld | None = None,
    group_needed: bool = False,
    interruption: Interruption | None = None,
    end_now: Callable[[BaseException], None] | None = None,
):
    """Rank 0's side of a run of `size` ranks on this node: starts ranks 1..size-1 serving `job` (one
    picklable RankJob), joins them, and yields rank 0's Group; at the end waits for every rank, and stops
    them if rank 0 fails, or at once where a signal stops the run now (`interruption`: rank 0 may be
    waiting in a collective for a rank that hangs). Across nodes (`slurm`), the other ranks are Slurm tasks
    of their own: rank 0 only meets them. One rank yields Group() with no process group, unless
    `group_needed` (DeepSpeed wants one). `job.release()` runs before the group is destroyed. Where a
    spawned rank ends and rank 0 waits on in native code, `end_now(why)` ends the run (rank_watch.py)."""
    import torch.distributed as dist

    if slurm is None and size == 1 and not group_needed:
        yield Group()
        return
    workers, port = None, None
    try:
        if slurm is not None:
            join_slurm(slurm, device)
            size = slurm.size
        else:
            port = free_port()
            _forget_sent(port, size)  # an earlier run's at this port, its rank 0 killed: not this run's
            workers = _start_ranks(size, port, device, job) if size > 1 else None
        with watched(workers, partial(ended, workers, port, size, interruption), end_now):
            if slurm is None:
                join(0, size, port, device, partial(_check_started, workers, size) if workers else _none)
            if workers is not None and interruption is not None:  # not before: rank 0 waiting in the
                # rendezvous for a killed rank would wait out its timeout (sixteenth hunt: 15 min)
                interruption.on_stop_now.append(partial(_stop, workers))
            yield Group(0, size)
        if size > 1:
            dist.barrier()  # every rank has finished its loop
        while workers is not None and not workers.join():
            pass
    except ENDED as worker:  # a rank ended as rank 0 waited for it at the end
        _stopped_now(interruption)
        raise _why_it_ended(worker, port, size) from None
    except RuntimeError as e:  # a collective failed: a worker's own error says why
        _stopped_now(interruption)
        if workers is not None and not isinstance(e, UserCodeError):  # not rank 0's own reward's
            _said_by_a_rank(e, workers, port, size)
        raise
    finally:
        _close(workers, port, size, job, interruption)


def _none() -> None:
    pass


def _close(workers, port: int | None, size: int, job: RankJob, interruption: Interruption | None) -> None:
    """The end of launch, whatever ended it: the spawned ranks still alive killed (rank 0 stopped or
    failed: theirs is of no use, and a SIGTERM would wait), the job's hold on the group let go, the group
    and what joining it set taken back."""
    import torch.distributed as dist

    _forget_sent(port, size)
    if interruption is not None:
        interruption.on_stop_now.clear()
    for process in workers.processes if workers is not None else []:
        if process.is_alive():
            process.kill()
    job.release()
    if dist.is_initialized():
        dist.destroy_process_group()
    forget_env()


def _said_by_a_rank(e: RuntimeError, workers: mp.ProcessContext, port: int, size: int) -> None:
    """A collective failed (`e`): raises why a spawned rank ended, where one did."""
    try:
        workers.join(timeout=10)
    except ENDED as worker:
        raise _why_it_ended(worker, port, size) from e
    ended = [(i, p.exitcode) for i, p in enumerate(workers.processes) if p.exitcode is not None]
    if ended:  # ended with code 0 in the middle of the run: os._exit(0) (fourteenth hunt)
        raise _why_it_ended(RankExited(ended[0][0] + 1, size, ended[0][1]), port, size) from e
    if "Timed out" in str(e):  # every rank alive, one not answering: its user code hangs (seventeenth hunt:
        raise RankTimedOut(size) from None  # gloo's 60-line traceback after 15 minutes, no resume line)


def _start_ranks(size: int, port: int, device: str, job: RankJob) -> mp.ProcessContext:
    """Ranks 1..size-1, started with SIGINT ignored, which a process keeps across exec: a terminal's
    Ctrl-C reached a rank still importing torch, whose threads take it (20 lines of KeyboardInterrupt:
    seventeenth hunt). Rank 0 ignores it too for the few ms of the start; a rank whose rank 0 ended as it
    started (a SIGTERM raised in here) ends itself (_spawned)."""
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        args = (size, port, device, os.getpid(), _WatchFirst(), job)
        started = []
        for index in range(size - 1):  # each in its place as it starts: it imports the user's modules as
            with placed_env(index + 1, size):  # it unpickles `job` (RANK unset there: 34th hunt, case 38)
                started.append(
                    mp.start_processes(_placed, (index, *args), 1, join=False, start_method="spawn")
                )
        return mp.ProcessContext(
            [p for c in started for p in c.processes], [f for c in started for f in c.error_files]
        )
    finally:
        signal.signal(signal.SIGINT, ignored)


def _placed(_: int, index: int, *args) -> None:
    """_spawned as rank index + 1 (start_processes numbers the one process it starts 0)."""
    _spawned(index, *args)


def _check_started(workers: mp.ProcessContext, size: int) -> None:
    """As rank 0 waits for the ranks to join: raises where one has ended (torch's exception, which
    launch reads as the run ends: a signal's interruption, the error it left), or exited with 0."""
    ended = [i for i, process in enumerate(workers.processes) if process.exitcode is not None]
    if ended:
        workers.join(timeout=0)
        raise RankExited(ended[0] + 1, size, 0)


def _stop(workers: mp.ProcessContext) -> None:
    """The watcher's thread, on a signal that stops the run now: the spawned ranks killed, so that a
    collective rank 0 waits in fails and its signal handler runs (fourteenth hunt: rank 1's reward hung,
    a second SIGTERM did nothing, only SIGKILL ended the run). kill() alone: it reaps nothing."""
    for process in workers.processes:
        process.kill()


def _stopped_now(interruption: Interruption | None) -> None:
    """Where a signal stopped the run now (its ranks killed: their ends are the signal's), says so."""
    if interruption is not None and interruption.now is not None:
        raise interruption.stop(interruption.stopped or interruption.now) from None
