"""Why a spawned rank of a run on one node ended, as rank 0 says it: the exception it left for rank 0 (a
reward's error on one rank is one line, as on one process: thirteenth hunt; one that cannot travel sends a
stand-in that says the same), the run's interruption where a signal ended it, a crash in native code, an
exit code, a collective that timed out with every rank alive; else torch's own."""

from __future__ import annotations

import pickle
import signal
import tempfile
import traceback
from pathlib import Path

import torch.multiprocessing as mp

from align_lab.hang_watch import KILLED, KILLED_WHY
from align_lab.train.distributed import COLLECTIVE_TIMEOUT
from align_lab.train.preemption import Interrupted, Interruption
from align_lab.value_checks import UserCodeError, text_of


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


def stuck_file(port: int, rank: int) -> Path:
    """Where the line of spawned rank `rank`'s call stuck in C past its bound is left (user_timeouts.py
    for_the_rank): faulthandler ended the rank, and hang_watch.py writes it once the rank has gone."""
    return Path(tempfile.gettempdir()) / f"align_lab-rank-{port}-{rank}.stuck"


STUCK_WAIT_S = 3.0  # how long rank 0 waits for the line of a rank that ended in a call (hang_watch.py)


def _stuck(port: int, size: int, crash: int = 0) -> BaseException | None:
    """The line of a rank whose call was stuck in C, or crashed in one (its process ended a moment before
    the line is written: waited for up to STUCK_WAIT_S), as a user's error: "rank 1 of 2 exited with code
    1 ... (os._exit ..., or a crash in native code)" blamed the wrong thing (twenty-eighth hunt, case 30)."""
    import time

    deadline = time.monotonic() + STUCK_WAIT_S
    while True:
        for rank in range(1, size):
            try:
                said = stuck_file(port, rank).read_text().strip()
            except OSError:
                continue
            if crash and KILLED in said:  # its exit status says the crash faulthandler was off for (33rd, 48)
                what = (
                    f"crashed ({signal.strsignal(crash)}) in this call (the code had turned faulthandler off)"
                )
                said = said.replace(f"{KILLED}: {KILLED_WHY}", what)
            error = UserCodeError(f"rank {rank} of {size}: {said}")
            # its resume command as one process's (hang_watch.resumable): for a fix of the user's code (a
            # crash: thirty-second hunt, case 44, whose fixed reward the plain command refused), or a
            # raised bound; as it was after a kill from outside
            error.fixed_in_checked_inputs = KILLED not in said
            return error
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def _forget_sent(port: int | None, size: int) -> None:
    for rank in range(1, size if port is not None else 1):
        _sent_file(port, rank).unlink(missing_ok=True)
        stuck_file(port, rank).unlink(missing_ok=True)


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
        return _stuck(port, size, -code) or RankExited(worker.error_index + 1, size, code)  # a call's line
    if isinstance(worker, mp.ProcessExitedException) and (code < 0 or code - 128 in STOPPED_BY):
        return Interrupted(signal.Signals(-code if code < 0 else code - 128).name)
    if isinstance(worker, mp.ProcessExitedException):  # os._exit(1) in the user's code (fourteenth hunt)
        return (code == 1 and _stuck(port, size)) or RankExited(worker.error_index + 1, size, code)
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


class RankTimedOut(UserCodeError):
    """A collective timed out with every spawned rank alive: one line, resumable."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"a rank of {size} did not answer rank 0 for {COLLECTIVE_TIMEOUT} in the run's collectives, "
            "alive (a reward, verifier or environment of yours hanging there, or a judge that never answers)"
        )
