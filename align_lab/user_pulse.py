"""The run's pulse: a thread that tells hang_watch.py, once a second, that Python runs in the run's process.
A thread of the user's code stuck in C holding Python's lock outside any call of align_lab's (a regex
backtracking for ever in a daemon thread a reward started) stopped every thread of the run's: no line, the
signals' handlers never ran, two SIGTERMs did nothing (thirty-third hunt, case 64). With no pulse for
HELD_S seconds and no bounded call under way (whose own bound ends it: user_timeouts.py), hang_watch.py has
faulthandler write where each thread is and end the process (a SIGABRT), then says the run's one line with
the user's frame, summary.json `failed` and the command that resumes it."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time

from align_lab.user_fds import hold
from align_lab.user_timeouts import RUN, library_folders, tell, watching

log = logging.getLogger("align_lab")
HELD = "ALIGN_LAB_HELD_S"  # seconds with no Python run in the run's process before it is ended
HELD_S = 120.0  # no step of align_lab's own holds Python's lock this long (torch's ops let it go)
PULSE_S = 1.0
_PULSING: dict = {}  # the process whose pulse thread runs
_WARNED: set = set()  # the values of HELD said wrong in this process


def held_s(value: str | None) -> float:
    """HELD's value in seconds (unset: HELD_S); a value that is not a number of seconds > 0 is said in
    one warning line, and HELD_S taken."""
    if value is None:
        return HELD_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        if value not in _WARNED:  # admission and the run's start each read it: said once (seventh hunt)
            _WARNED.add(value)
            said = f"{HELD}={value}: not a number of seconds > 0; {HELD_S:g} s taken"
            log.warning(f"align_lab: warning: {said}")
        return HELD_S
    return seconds


def pulsing(on: bool) -> None:
    """From now, this process's pulse for the run user_timeouts.RUN names (`on`), or for none: a silence
    is then nobody's to end (a test's process between runs)."""
    if not on:
        tell(b'{"pulse": null}\n')
        return
    _, watch, dump = watching()
    if watch is None:  # no process beside this one: nothing to tell
        return
    hold("hang watch's pipe", watch.stdin.fileno())  # a call of the user's code may not close them
    hold("crash dump file", dump)
    message = {"pulse": held_s(os.environ.get(HELD)), "library": library_folders(), "run": dict(RUN)}
    message["signals"] = wakeup_fd()
    tell(json.dumps(message).encode() + b"\n")
    if _PULSING.get("pid") != os.getpid():
        _PULSING["pid"] = os.getpid()
        threading.Thread(target=_beat, args=(os.getpid(),), daemon=True, name="align_lab-pulse").start()


def _beat(pid: int) -> None:
    """An empty line a PULSE_S, for as long as hang_watch.py reads them."""
    while os.getpid() == pid and tell(b"\n"):
        time.sleep(PULSE_S)


def wakeup_fd() -> int | None:
    """The pipe the process's signals are written to as they come (train/preemption.py), None for none or
    outside the main thread."""
    try:
        fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(fd, warn_on_full_buffer=False)  # as the run's watcher set it
    except ValueError:
        return None
    return fd if fd >= 0 else None
