"""The run's own signal handlers, kept around the user's code: a reward, verifier or environment that
sets SIGTERM, SIGINT or SIGUSR2 to its own handler (or SIG_IGN) for the run's whole life made a
scheduler's SIGTERM do nothing (seventeenth hunt: two SIGTERMs ignored, the run trained on, and the SIGKILL
that follows would lose every step since the last checkpoint, saying nothing). After each call the
run's handlers are put back, and the first time a component changed them, a warning names it. Its
os._exit, meanwhile, is said as sys.exit is (ExitCalled)."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("align_lab")
# what stops or preempts a run (train/preemption.py Interruption.SIGNALS, Preemption's SIGUSR2)
KEPT = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
_SAID: set[str] = set()  # the components already named, once a process


class ExitCalled(SystemExit):
    """os._exit(code) called by the user's code in the run's own thread: a SystemExit, so that the run
    stops in its one line naming the caller (run/summary.py exited_where) with its checkpoint; it ended
    the process at once, with the user's code (0 too), no line and summary.json saying running
    (twenty-second hunt, case 40)."""

    called = "os._exit"


def _exit_said(real_exit, pid: int, code: int) -> None:
    """os._exit while the user's code runs: a child it forked, or another thread, exits as it asked."""
    if os.getpid() != pid or threading.current_thread() is not threading.main_thread():
        real_exit(code)
    said = ExitCalled(code)
    said.rank_frames = traceback.extract_stack(sys._getframe(1))  # where: the caller's (exited_where)
    raise said


@contextmanager
def run_signals_kept(where: str) -> Iterator[None]:
    """Around a call of the user's code named `where` (`reward.path=mod:fn`): the run's handlers of KEPT
    as they were before it, put back after it (only the main thread sets handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: signal.getsignal(signum) for signum in KEPT}
    real_exit = os._exit
    os._exit = functools.partial(_exit_said, real_exit, os.getpid())
    try:
        yield
    finally:
        os._exit = real_exit
        changed = [signum for signum, handler in before.items() if signal.getsignal(signum) != handler]
        for signum in changed:
            signal.signal(signum, before[signum])
        if changed and where not in _SAID:
            _SAID.add(where)
            names = " and ".join(signal.Signals(s).name for s in changed)
            log.warning(
                f"warning: {where} changed the run's {names} handler; the run's is put back after each call "
                "(a signal that arrives during one may be lost), so that a scheduler's SIGTERM still stops "
                "the run at a step's end with its checkpoint"
            )
