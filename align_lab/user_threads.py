"""A thread of the user's code (one a reward, verifier or environment started, not the run's) that ends
the run's process, by os._exit or a SIGKILL of it (os.kill, os.killpg, signal.raise_signal,
signal.pthread_kill), during a call of that code or after it: the process ends as asked, but the run
ends its way first, summary.json `failed` and one line with the resume command, never rc 0 or 137 and no
word (twenty-fourth hunt, case 8; twenty-fifth hunt, cases 1 and 2). In the run's own thread, during a
call, user_signals.py says the same calls as sys.exit."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import sysconfig
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from align_lab.user_code import installed
from align_lab.user_signals import ExitCalled, on_the_runs_behalf

SIGNALS = sys.modules[ExitCalled.__module__].__file__  # its wrappers call ours: not the caller


def _from_a_thread(end, pid: int, code: int, call: str | None) -> None:
    """A thread of the user's code (one the run did not make) ending the process: `end(ExitCalled)` writes
    summary.json `failed` and the line with the resume command, and ends the process (rc 1, the code an
    os._exit passed if not 0); elsewhere (the run's own threads, align_lab's watchers, a forked child)
    nothing: the caller goes on to do as asked (twenty-fourth hunt, case 8 and twenty-fifth, case 2: rc 0
    or 137, no line, summary.json saying running)."""
    frames = [f for f in traceback.extract_stack(sys._getframe(1)) if f.filename not in (__file__, SIGNALS)]
    if os.getpid() != pid or on_the_runs_behalf() or not frames or not yours(frames[-1].filename):
        return
    said = ExitCalled(code)
    said.call, said.thread, said.rank_frames = call, True, frames
    with contextlib.suppress(Exception):
        end(said)


def _thread_exit(real_exit, pid: int, end, code: int) -> None:
    _from_a_thread(end, pid, code, None)
    real_exit(code)


def _thread_kill(real_kill, pid: int, end, target: int, signum: int) -> None:
    if signum == signal.SIGKILL and (target in (0, pid) or (target < 0 and -target == os.getpgrp())):
        _from_a_thread(end, pid, 1, f"os.kill({target}, SIGKILL)")
    return real_kill(target, signum)


def _thread_killpg(real_killpg, pid: int, end, group: int, signum: int) -> None:
    if signum == signal.SIGKILL and group in (0, os.getpgrp()):
        _from_a_thread(end, pid, 1, f"os.killpg({group}, SIGKILL)")
    return real_killpg(group, signum)


def _thread_raise(real_raise, pid: int, end, signum: int) -> None:
    if signum == signal.SIGKILL:
        _from_a_thread(end, pid, 1, "signal.raise_signal(SIGKILL)")
    return real_raise(signum)


def _thread_pthread_kill(real_pthread_kill, pid: int, end, thread_id: int, signum: int) -> None:
    if signum == signal.SIGKILL:
        _from_a_thread(end, pid, 1, f"signal.pthread_kill({thread_id}, SIGKILL)")
    return real_pthread_kill(thread_id, signum)


OURS = os.path.dirname(os.path.abspath(__file__)) + os.sep  # align_lab's own threads end the run their way
LIBRARIES = (sysconfig.get_paths()["stdlib"], "site-packages", "dist-packages", "<frozen")


def yours(filename: str) -> bool:
    """A file of the user's code: not align_lab's (a watcher ending the run at once on its own line), an
    installed library's (a `pip install --target` one's too: user_code.installed) or the standard
    library's."""
    path = os.path.abspath(filename)
    if path.startswith(OURS) or any(part in path for part in LIBRARIES):
        return False
    return not installed(Path(path))


ENDS = (  # what ends the process, and what says it when a thread of the user's code calls it
    (os, "_exit", _thread_exit),
    (os, "kill", _thread_kill),
    (os, "killpg", _thread_killpg),
    (signal, "raise_signal", _thread_raise),
    (signal, "pthread_kill", _thread_pthread_kill),
)


_RAISED: set[str] = set()  # the lines of the user's code where a thread of it raised, said once each


def _thread_raised(default, args) -> None:
    """threading.excepthook: a thread of the user's code that raised is one warning line, once for each line
    of the user's where one raised (a reward's helper thread raising at each call printed Python's 12-line
    traceback each time, and nothing named the code or said the run went on: thirty-first hunt, case 14);
    any other thread's error, and a thread's SystemExit, as Python says them."""
    frames = [f for f in traceback.extract_tb(args.exc_traceback) if yours(f.filename)]
    if not frames or issubclass(args.exc_type, SystemExit):
        return default(args)
    where = f"{frames[-1].filename}:{frames[-1].lineno}"
    if where not in _RAISED:
        _RAISED.add(where)
        name = f" ({args.thread.name})" if args.thread is not None else ""
        logging.getLogger("align_lab").warning(
            f"warning: a thread of your code{name} raised {args.exc_type.__name__}: {args.exc_value} at "
            f"{where}; the run goes on without what it was doing (said once for this line)"
        )
    return None


@contextmanager
def thread_exits_said(end) -> Iterator[None]:
    """For a run's life: os._exit or a SIGKILL of the process from a thread it did not make is said
    (_from_a_thread); `end(ExitCalled)`: the run's end in its summary and line. The run's own threads and
    processes it forks exit as they ask. An error a thread of the user's code raised is one line
    (_thread_raised)."""
    pid, real = os.getpid(), [getattr(module, name) for module, name, _ in ENDS]
    ours = [functools.partial(said, was, pid, end) for (_, _, said), was in zip(ENDS, real, strict=True)]
    for (module, name, _), wrapper in zip(ENDS, ours, strict=True):
        setattr(module, name, wrapper)
    hook, threading.excepthook = threading.excepthook, functools.partial(_thread_raised, threading.excepthook)
    said_hook = threading.excepthook
    try:
        yield
    finally:
        for (module, name, _), wrapper, was in zip(ENDS, ours, real, strict=True):
            if getattr(module, name) is wrapper:
                setattr(module, name, was)
        if threading.excepthook is said_hook:
            threading.excepthook = hook
