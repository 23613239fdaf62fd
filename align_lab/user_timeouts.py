"""A call of the user's code bounded in time: a reward function (`reward.timeout_s`) or a verifier
(`task.verifier_timeout_s`) that never returns left the run waiting with no line until the user signalled it
twice (twenty-sixth hunt, case 12). Past the bound the call is stopped where it is, in the run's main
thread, by a signal whose handler raises CallTimedOut there (as Math-Verify bounds its parse with SIGALRM,
which this leaves to it: SIGVTALRM here); a call that outlasts a minute says so once a process. Elsewhere
than the main thread (whose handlers Python runs) a call is not bounded. Imports nothing of align_lab."""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

log = logging.getLogger("align_lab")
ENABLE = faulthandler.enable  # as imported: a user's call sees a stand-in (user_signals.py)
SIGNAL = signal.SIGVTALRM  # no timer of the run's uses it, nor Math-Verify's (signal.alarm: SIGALRM)
SAY_AFTER_S = 60.0  # a call still running then is said, once a process
C_GRACE_S = 30.0  # past the bound, the most a call has to end before faulthandler ends the process
_STATE: dict = {"timed_out": None, "said": False, "installed": False}


class CallTimedOut(BaseException):
    """Raised inside a call of the user's code past its bound: a BaseException, so that the user's own
    `except Exception` cannot swallow it. `where`: `reward.path=mod:fn`; `key`: the bound's key."""

    def __init__(self, where: str, key: str, timeout_s: float) -> None:
        super().__init__(f"{where}: no answer in {key}={timeout_s:g} s")
        self.where, self.key, self.timeout_s = where, key, timeout_s

    def stopped_at(self) -> str:
        """`file:line` of the user's code the call was stopped at: the innermost frame of the user's (a
        future's `result()`, not the threading module's wait under it: thirty-fourth hunt, case 83), else the
        innermost not this file's."""
        frames = [f for f in traceback.extract_tb(self.__traceback__) if f.filename != __file__]
        library = tuple(library_folders())
        own = [f for f in frames if not f.filename.startswith(("<", *library))] or frames
        return f"{own[-1].filename}:{own[-1].lineno}" if own else "an unknown line"


def _on_signal(signum, frame) -> None:
    """The handler, in the main thread: raises in the call that timed out; a late signal (the call
    returned as it came) is ignored."""
    timed_out, _STATE["timed_out"] = _STATE["timed_out"], None
    if timed_out is not None:
        raise timed_out


def _watch(done: threading.Event, error: CallTimedOut, main: int) -> None:
    if done.wait(min(SAY_AFTER_S, error.timeout_s)):
        return
    if error.timeout_s > SAY_AFTER_S and not _STATE["said"]:
        _STATE["said"] = True
        log.warning(
            f"warning: {error.where} has not returned in {SAY_AFTER_S:g} s; the run waits for it up to "
            f"{error.key}={error.timeout_s:g} s, then stops in one line"
        )
        if done.wait(error.timeout_s - SAY_AFTER_S):
            return
    if not done.is_set():
        _STATE["timed_out"] = error
        signal.pthread_kill(main, SIGNAL)


def checked_bound(key: str, value) -> None:
    """A bound's value as a key gives it: seconds in (0, 1e8] (39th hunt, 61: 1e10 overflowed), or None."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if value is not None and not (number and 0 < value <= 1e8):
        raise ValueError(f"{key}={value}: must be a number of seconds in (0, 1e8], or null (unbounded)")


@contextmanager
def bounded(where: str, key: str, timeout_s: float | None) -> Iterator[None]:
    """Around a call of the user's code in the run's main thread: CallTimedOut raised inside it after
    `timeout_s` seconds (None or 0: unbounded)."""
    main = threading.main_thread()
    if not timeout_s or threading.current_thread() is not main:
        yield
        return
    if not _STATE["installed"] or signal.getsignal(SIGNAL) is not _on_signal:
        signal.signal(SIGNAL, _on_signal)
        _STATE["installed"] = True
    done, pid = threading.Event(), os.getpid()
    error = CallTimedOut(where, key, timeout_s)
    threading.Thread(
        target=_watch, args=(done, error, main.ident), daemon=True, name="align_lab-bound"
    ).start()
    # a call stuck in C holding the GIL (a regex backtracking for ever) runs neither the handler nor the
    # watcher: stuck_watched ends it (twenty-seventh hunt, case 4; twenty-eighth, case 3)
    try:
        with stuck_watched(where, key, timeout_s):
            yield
    finally:
        if os.getpid() == pid:
            done.set()
            if _STATE["timed_out"] is error:  # came as the call returned: not raised
                _STATE["timed_out"] = None


@contextmanager
def stuck_watched(where: str, key: str, timeout_s: float | None) -> Iterator[None]:
    """Around a call another way bounds (an environment's step, run in a thread under its timeout): only the
    end of one stuck in C holding the GIL, which no thread's timeout can reach, said by hang_watch.py as a
    bounded call's is (twenty-ninth hunt, case 17: an env's step stuck in a regex, no line for 200 s):
    faulthandler's C thread writes where it is and ends the process, and hang_watch.py, told of the call,
    says the line once the process has gone."""
    if not timeout_s:
        yield
        return
    pid, error = os.getpid(), CallTimedOut(where, key, timeout_s)
    grace = grace_s(timeout_s)
    told = _told(error, grace)
    with contextlib.suppress(ValueError, OSError):  # fd 2 itself: the user's code may close sys.stderr
        faulthandler.dump_traceback_later(timeout_s + grace, exit=True, file=told or 2)
    try:
        yield
    finally:
        if os.getpid() == pid:
            faulthandler.cancel_dump_traceback_later()
            if told:
                tell(b"{}\n")


RUN: dict = {}  # the run a bounded call is part of (for_the_run): hang_watch.py's line names its resume


def for_the_run(summary: str | None, pointer: str | None = None, command: str | None = None) -> None:
    """The run whose calls are bounded from now (run/execute.py): its summary.json, its checkpoint pointer
    and the command that resumes it, for the line of a call stuck in C (hang_watch.py); None: none."""
    RUN.clear()
    if summary:
        RUN.update(summary=summary, pointer=pointer, command=command)


def grace_s(timeout_s: float) -> float:
    """How long past its bound a call has to end (the signal's handler runs at its next line of Python)
    before faulthandler ends the process: as long as the bound, between C_GRACE_S and a second."""
    return min(C_GRACE_S, max(1.0, timeout_s))


def for_the_rank(said_to: str) -> None:
    """A spawned rank of a run: the line of a call stuck in C is left in `said_to` for rank 0 to say."""
    RUN.clear()
    RUN.update(said_to=said_to)


def _told(error: CallTimedOut, grace: float) -> int | None:
    """The file faulthandler writes a stuck call's traceback to, once hang_watch.py (started for this
    process) has been told of the call; None where it cannot be (faulthandler then writes to fd 2)."""
    watch = watching()
    call = {"where": error.where, "key": error.key, "timeout_s": error.timeout_s, "grace_s": grace}
    message = json.dumps({**call, "library": library_folders(), "run": dict(RUN)}) + "\n"
    return watch[2] if watch[1] is not None and tell(message.encode()) else None


def watching() -> tuple:
    """(this process's id, its hang_watch.py process, the file faulthandler writes to), started on first
    use; faulthandler writes a fatal signal's traceback there (os.abort, a crash in C) for its line too,
    again where the user's code turned it off (33rd hunt, case 30: a crash said as a SIGKILL)."""
    watch = _STATE.get("watch")
    if watch is None or watch[0] != os.getpid():
        watch = _STATE["watch"] = (os.getpid(), *_started_watch())
    if watch[2] is not None and not faulthandler.is_enabled():
        with contextlib.suppress(ValueError, OSError):
            ENABLE(file=watch[2], all_threads=True)  # not the user's (user_signals.py keeps it)
    return watch


def _started_watch() -> tuple:
    """(hang_watch.py's process, the file faulthandler writes to); (None, None) where it cannot start."""
    import subprocess
    import sys
    import tempfile

    try:
        fd, path = tempfile.mkstemp(prefix="align_lab-stuck-", suffix=".txt")
        command = [sys.executable, "-I", "-S", os.path.join(os.path.dirname(__file__), "hang_watch.py")]
        process = subprocess.Popen(
            [*command, path, str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
    except OSError:
        return None, None
    return process, fd


def ended_here(code: int) -> None:
    """os._exit(code) by align_lab's own hand, its line said, maybe in a call of the user's (a thread of the
    user's code that ended the run, a rank that ended): hang_watch.py is told the call is over first, so
    that it adds no line of its own."""
    watch = _STATE.get("watch")
    if watch is not None and watch[0] == os.getpid() and watch[1] is not None:
        faulthandler.cancel_dump_traceback_later()
        tell(b"{}\n")
    os._exit(code)


def tell(message: bytes) -> bool:
    """One line to this process's hang_watch.py; False where it has none or it has gone (killed with the
    process group)."""
    watch = _STATE.get("watch")
    if watch is None or watch[0] != os.getpid() or watch[1] is None:
        return False
    try:
        os.write(watch[1].stdin.fileno(), message)
    except (OSError, ValueError):
        return False
    return True


def library_folders() -> list[str]:
    """The folders whose frames are not the user's: the interpreter's, its packages' and align_lab's."""
    import sysconfig

    if "library" not in _STATE:
        paths = sysconfig.get_paths()
        found = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
        _STATE["library"] = sorted(found | {os.path.dirname(__file__)})
    return _STATE["library"]


# importing a module of the user's: a sys.exit at import (a guard, argparse reading align_lab's command line)
# ended the command with no line, one that never finished was waited for (28th hunt, cases 24-26): one line


class ImportSaid(ValueError):
    """The one line for an import that exited or did not finish (a caller re-raises it as it is)."""


def imported(module: str, where: str, key: str | None = None, timeout_s: float | None = None) -> ModuleType:
    """importlib.import_module(module) for `where` (`path=mod:fn`, the key that names it), bounded by
    `key`=`timeout_s` seconds (None: unbounded); a sys.exit or an os._exit at import (twenty-ninth hunt,
    case 7: rc 3 and not a byte said), the bound, or a file of the user's that Python's own module of its
    name hides (case 8: "types has no callable score") as one ValueError line. What else the import
    raises is the caller's to say."""
    hidden, top = hidden_by_pythons_own(module), module.partition(".")[0]  # a package's: its top (52nd, 10)
    if hidden:
        before = "align_lab or a library may import later: yours would stand in for it there"
        before = "Python had imported before it looked in your folder" if top in sys.modules else before
        raise ImportSaid(
            f"{where}: {hidden} is named as Python's own module {top}, which {before}; rename it, and the "
            "key that names it"
        )
    real_exit, pid = os._exit, os.getpid()

    def exit_raised(code: int) -> None:  # as the module is imported: said, not an end with no line
        if os.getpid() != pid or threading.current_thread() is not threading.main_thread():
            real_exit(code)  # a fork's, another thread's: as it asks
        raise ExitAtImport(code)

    os._exit = exit_raised
    try:
        with bounded(f"{keyed(where)}: importing {module}", keyed(key or ""), timeout_s if key else None):
            return importlib.import_module(module)
    except (SystemExit, ExitAtImport) as e:
        note = " (argparse there read the command line it was given: align_lab's)" if argparsed(e) else ""
        called = f"os._exit({e.args[0]!r})" if isinstance(e, ExitAtImport) else f"sys.exit({e.code!r})"
        called = getattr(e, "call", None) or called  # a kill of the process (user_signals.py ExitCalled)
        raise ImportSaid(
            f"{where}: importing {module} called {called} at {users_line(e)}{note}; a module the run "
            "imports must not end the process as it is imported"
        ) from None
    except CallTimedOut as e:
        raise ImportSaid(
            f"{where}: importing {module} did not finish in {key}={timeout_s:g} s, stopped at "
            f"{e.stopped_at()}; fix the import, or set {key}=<seconds> if it needs longer"
        ) from None
    finally:
        os._exit = real_exit


BUILDING: list[str] = []  # the config key whose component is being built (config.py build): its keys' root


def keyed(key: str) -> str:
    """`key` (`path=mod:fn`) under the component being built (`reward.path=mod:fn`)."""
    return f"{BUILDING[-1]}.{key}" if BUILDING and key else key


class ExitAtImport(BaseException):
    """os._exit(code) called by a module of the user's as it was imported (its code the argument)."""


def hidden_by_pythons_own(module: str) -> str | None:
    """The user's file `<module>.py` (or package) where `python -m` runs, named as one of Python's own:
    imported before, the import returns Python's; not yet, the user's stands in for it wherever it is
    imported later (51st hunt, case 36: a reward module statistics trained, the run's end failed)."""
    module = module.partition(".")[0]
    found = sys.modules.get(module)
    if module not in sys.stdlib_module_names:
        return None
    first = sys.path[0] if sys.path and sys.path[0] else os.getcwd()
    theirs = os.path.realpath(getattr(found, "__file__", None) or "<built-in>") if found else None
    for candidate in (os.path.join(first, f"{module}.py"), os.path.join(first, module, "__init__.py")):
        if os.path.isfile(candidate) and theirs != os.path.realpath(candidate):
            return candidate
    return None


def users_line(e: BaseException) -> str:
    """`file:line` of the innermost frame of `e` outside the interpreter's, its packages' and align_lab's
    folders (the user's module), else the innermost."""
    frames = traceback.extract_tb(e.__traceback__)
    library = library_folders()
    own = [f for f in frames if not f.filename.startswith("<") and not f.filename.startswith(tuple(library))]
    found = (own or frames)[-1:]
    return f"{found[0].filename}:{found[0].lineno}" if found else "an unknown line"


def argparsed(e: SystemExit) -> bool:
    """argparse's parse_args ended the import (its usage and error printed before this)."""
    return any(f.filename.endswith("argparse.py") for f in traceback.extract_tb(e.__traceback__))
