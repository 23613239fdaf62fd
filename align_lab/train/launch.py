"""Rank 0's side of a data-parallel run on one node (train/distributed.py has the group itself): it
spawns ranks 1..N-1, each serving the run's RankJob and dying with rank 0, and says why a rank ended: the
exception it left for rank 0 (a reward's error on one rank is one line, as on one process: thirteenth
hunt), the run's interruption where a signal ended it, else torch's own."""

from __future__ import annotations

import os
import pickle
import signal
import sys
import tempfile
import traceback
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch.multiprocessing as mp

from align_lab.train.distributed import Group, RankJob, forget_env, free_port, join, join_slurm, serve
from align_lab.train.preemption import Interrupted, Interruption
from align_lab.train.slurm_world import SlurmWorld
from align_lab.user_reads import watch
from align_lab.value_checks import UserCodeError, text_of

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
    what they read from then on is noted (user_reads.watch), to compare with rank 0's (seventeenth hunt)."""

    def __reduce__(self):
        return watch, ()


def _spawned(
    index: int, size: int, port: int, device: str, rank_0: int, _watching: None, job: RankJob
) -> None:
    """Rank index + 1 of a run on this node, spawned by rank 0 (process `rank_0`): serves `job`."""
    # a terminal's Ctrl-C reaches every process of the run: rank 0 alone stops it, at a step's end with
    # its checkpoint (train/preemption.py), and then stops this rank (ignored from its start: _start_ranks)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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


def _sent_file(port: int, rank: int) -> Path:
    """Where spawned rank `rank` of the run meeting at `port` leaves the exception it ended with."""
    return Path(tempfile.gettempdir()) / f"align_lab-rank-{port}-{rank}.exception"


def _sent(e: BaseException, port: int, rank: int, size: int) -> bool:
    """Rank `rank` leaves `e` for rank 0, its traceback a note (shown where it is no one-line error) and
    its frames (`rank_frames`: where a sys.exit was called, run/summary.py exited_where); False where it
    cannot be pickled (a class of the user's code that will not travel)."""
    e.add_note(f"rank {rank} of {size}:\n{traceback.format_exc()}")
    e.rank_frames = [(f.filename, f.lineno) for f in traceback.extract_tb(e.__traceback__)]
    for each in (e, _stand_in(e)):
        try:
            data = pickle.dumps(each)
            pickle.loads(data)  # an exception whose arguments do not rebuild it would fail in rank 0
            _sent_file(port, rank).write_bytes(data)
            return True
        except Exception:  # noqa: BLE001 - whatever stops it travelling: its stand-in, else said here
            continue
    return False


class Untravelled(BaseException):
    """In rank 0, a spawned rank's exception whose class cannot travel (it will not pickle, or its
    arguments do not rebuild it: fifteenth hunt): its class's name (`type_name`, which one_line says),
    message, frames and notes, as the one-process run would say them."""

    def __init__(self, type_name: str, text: str) -> None:
        super().__init__(text)
        self.type_name = type_name

    def __reduce__(self):
        return type(self), (self.type_name, str(self)), self.__dict__


class UntravelledError(Untravelled, Exception):
    """An Untravelled of an Exception's class."""


def _stand_in(e: BaseException) -> BaseException:
    """What travels for `e` where `e` cannot: the same kind of exception (an Exception, a SystemExit and
    its code, a KeyboardInterrupt, or another BaseException) with its words, frames and notes."""
    if isinstance(e, SystemExit):
        out = SystemExit(e.code if e.code is None or isinstance(e.code, int) else text_of(e))
    elif isinstance(e, KeyboardInterrupt):
        out = KeyboardInterrupt(text_of(e))
    else:
        out = (UntravelledError if isinstance(e, Exception) else Untravelled)(type(e).__name__, text_of(e))
    out.rank_frames = e.rank_frames
    out.__notes__ = [str(note) for note in getattr(e, "__notes__", [])]
    return out


def _received(port: int, size: int) -> BaseException | None:
    """The exception the lowest spawned rank that failed left, if any."""
    for rank in range(1, size):
        try:
            return pickle.loads(_sent_file(port, rank).read_bytes())
        except (OSError, pickle.PickleError, EOFError):
            continue
    return None


def _forget_sent(port: int | None, size: int) -> None:
    for rank in range(1, size if port is not None else 1):
        _sent_file(port, rank).unlink(missing_ok=True)


def _why_it_ended(worker: Exception, port: int, size: int) -> BaseException:
    """What rank 0 raises for a spawned rank that ended: the exception it left (a reward's error: one
    line, as on one process), the run's interruption where a signal ended it (SIGTERM, the OOM killer's
    SIGKILL: twelfth hunt; its last checkpoint whole: resumable), an exit code (RankExited), else
    torch's own."""
    received = _received(port, size)
    if received is not None:
        return received
    code = getattr(worker, "exit_code", 0)
    if isinstance(worker, mp.ProcessExitedException) and -code in CRASHES:  # not a signal anyone sent
        return RankExited(worker.error_index + 1, size, code)
    if isinstance(worker, mp.ProcessExitedException) and (code < 0 or code - 128 in STOPPED_BY):
        return Interrupted(signal.Signals(-code if code < 0 else code - 128).name)
    if isinstance(worker, mp.ProcessExitedException):  # os._exit(1) in the user's code (fourteenth hunt)
        return RankExited(worker.error_index + 1, size, code)
    return worker


STOPPED_BY = {getattr(signal, name) for name in Interruption.SIGNALS}  # a rank's exit code 128 + one of them
# signals a process raises on itself where native code fails: a crash, not an interruption (the
# sixteenth hunt's notes: a segfault on rank 1 was "interrupted by SIGSEGV")
CRASHES = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}


class RankExited(UserCodeError):
    """A spawned rank ended with an exit code, or crashed, during the run and left no error: one line,
    resumable."""

    def __init__(self, rank: int, size: int, code: int) -> None:
        if -code in CRASHES:
            super().__init__(
                f"rank {rank} of {size} crashed with {signal.Signals(-code).name} during the run, leaving no "
                "error (a fault in native code: an extension, a library the run's code loads, the machine)"
            )
            return
        super().__init__(
            f"rank {rank} of {size} exited with code {code} during the run, leaving no error (os._exit in "
            "code of the run's, or a crash in native code)"
        )


@contextmanager
def launch(
    size: int,
    device: str,
    job: RankJob,
    slurm: SlurmWorld | None = None,
    group_needed: bool = False,
    interruption: Interruption | None = None,
):
    """Rank 0's side of a run of `size` ranks on this node: starts ranks 1..size-1 serving `job` (one
    picklable RankJob), joins them, and yields rank 0's Group; at the end waits for every rank, and stops
    them if rank 0 fails, or at once where a signal stops the run now (`interruption`: rank 0 may be
    waiting in a collective for a rank that hangs). Across nodes (`slurm`), the other ranks are Slurm tasks
    of their own: rank 0 only meets them. One rank yields Group() with no process group, unless
    `group_needed` (DeepSpeed wants one). `job.release()` runs before the group is destroyed."""
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
            if size > 1:
                workers = _start_ranks(size, port, device, job)
            join(0, size, port, device, partial(_check_started, workers, size) if workers else lambda: None)
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


def _start_ranks(size: int, port: int, device: str, job: RankJob) -> mp.ProcessContext:
    """Ranks 1..size-1, started with SIGINT ignored, which a process keeps across exec: a terminal's
    Ctrl-C reached a rank still importing torch, whose threads take it (20 lines of KeyboardInterrupt:
    seventeenth hunt). Rank 0 ignores it too for the few ms of the start; a rank whose rank 0 ended as it
    started (a SIGTERM raised in here) ends itself (_spawned)."""
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        args = (size, port, device, os.getpid(), _WatchFirst(), job)
        return mp.start_processes(_spawned, args, size - 1, join=False, start_method="spawn")
    finally:
        signal.signal(signal.SIGINT, ignored)


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
