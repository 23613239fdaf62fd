"""What the user's code may not take from the run around each call of it (a reward, verifier or
environment): its signal handlers, its process, its output.

- A component that sets SIGTERM, SIGINT or SIGUSR2 to its own handler (or SIG_IGN) for the run's whole
  life made a scheduler's SIGTERM do nothing (seventeenth hunt); put back after each call, one that set
  SIG_IGN at each call still lost a SIGTERM that came during one (thirty-fifth hunt, case 20). During a call
  the run's handlers stay installed: signal.signal records the component's (getsignal and the next
  signal.signal give it back) and installs nothing; the first time, a warning names it.
- Its os._exit, and a SIGKILL it sends its own process (os.kill, os.killpg, signal.raise_signal,
  signal.pthread_kill), are said as sys.exit is (ExitCalled); a process it forks that comes back out of the
  call ends there, as it asked, never going on as a second copy of the run (a thread of its own that does
  either: user_threads.py).
- A component that closes or redirects the run's stdout or stderr lost every line after it (twenty-third
  hunt): they are put back too (user_modes.py, Streams).
- A stop it sends its own run (SIGTERM, SIGINT, ...) is its end, said as its SIGKILL is (thirty-first
  hunt); an alarm it leaves armed is cancelled and SIGALRM's handler put back, and faulthandler, which names
  the line of a crash, stays the run's (thirty-third hunt). The modes the run's numbers depend on are put
  back beside these, by user_modes.py (modes_kept)."""

from __future__ import annotations

import _thread
import faulthandler
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
_SAID: set = set()  # the components already named (and what of the run's they took), once a process


class ExitCalled(SystemExit):
    """os._exit(code) called by the user's code in the run's own thread: a SystemExit, so that the run
    stops in its one line naming the caller (run/summary.py exited_where) with its checkpoint; it ended
    the process at once, with the user's code (0 too), no line and summary.json saying running
    (twenty-second hunt, case 40). `call`: what the line says it called (os.kill of the run: SIGKILL)."""

    called = "os._exit"
    call: str | None = None
    thread = False  # called from a thread of the user's code, not the run's (run/summary.py says so)


CALLING: set[int] = set()  # the threads the run made to call the user's code (envs/base.py call_with_timeout)


def on_the_runs_behalf() -> bool:
    """This thread runs the user's code for the run: the main thread, or one the run made to call it (an
    environment's step: its os._exit ended the run with rc 0 and no line, twenty-third hunt, case 30)."""
    return threading.current_thread() is threading.main_thread() or threading.get_ident() in CALLING


def _exit_said(real_exit, pid: int, code: int) -> None:
    """os._exit while the user's code runs: a child it forked, or a thread of its own, exits as it asked."""
    if os.getpid() != pid or not on_the_runs_behalf():
        real_exit(code)
    said = ExitCalled(code)
    said.rank_frames = traceback.extract_stack(sys._getframe(1))  # where: the caller's (exited_where)
    raise said


# what the user's code may not send its own run as it is called: SIGKILL ends it with no word, and one that
# stops or preempts a run (KEPT) was said as a scheduler's stop, "interrupted by SIGTERM", naming neither the
# code nor its line, and the printed resume met the same signal again (thirty-first hunt, case 13)
# SIGSTOP and the terminal's stops halt it for good with no word, its bound with it (a thread of its own:
# thirty-ninth hunt, case 24, the "wait here for a debugger" idiom, under a scheduler held to its limit)
ENDS_THE_RUN = (signal.SIGKILL, *KEPT, signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)


def _exec_said(real_exec, name: str, pid: int, path, *args) -> None:
    """os.execv/os.execve (the os.exec* family calls them) while the user's code runs in the run's process:
    it would replace the run with another program (rc its, summary.json `running`, the line a guessed
    SIGKILL: thirty-ninth hunt, case 25), said as its os._exit is; a child it forked execs as it asked."""
    if os.getpid() != pid or not on_the_runs_behalf():
        return real_exec(path, *args)
    raise _killed(
        f"{name}({os.fsdecode(path)!r}, ...), which would replace the run's process with that program"
    )


def _kill_said(real_kill, pid: int, target: int, signum: int) -> None:
    """os.kill while the user's code runs: SIGKILL or a stop (ENDS_THE_RUN) to the run's own process (or
    its group) is said as os._exit is (twenty-third hunt, case 11: rc 137, no line); any other, as it
    asked."""
    own = target in (0, pid) or (target < 0 and -target == os.getpgrp())
    if signum not in ENDS_THE_RUN or not own or os.getpid() != pid:
        return real_kill(target, signum)
    if not on_the_runs_behalf():
        return real_kill(target, signum)
    raise _killed(f"os.kill({target}, {signal.Signals(signum).name})")


def _raise_said(real_raise, pid: int, signum: int) -> None:
    """signal.raise_signal(SIGKILL or a stop) while the user's code runs: said as os.kill of the run is
    (twenty-fourth hunt, case 4); any other signal, as it asked."""
    if signum not in ENDS_THE_RUN or os.getpid() != pid or not on_the_runs_behalf():
        return real_raise(signum)
    raise _killed(f"signal.raise_signal({signal.Signals(signum).name})")


def _interrupt_said(real_interrupt, pid: int, signum: int = signal.SIGINT) -> None:
    """_thread.interrupt_main() while the user's code runs (a timeout snippet's stop): said as its os.kill
    of the run is, where it was taken for an outside Ctrl-C (thirty-fourth hunt, case 35)."""
    if signum not in ENDS_THE_RUN or os.getpid() != pid or not on_the_runs_behalf():
        return real_interrupt(signum)
    raise _killed(f"_thread.interrupt_main({signal.Signals(signum).name})")


def _pthread_kill_said(real_pthread_kill, pid: int, thread_id: int, signum: int) -> None:
    """signal.pthread_kill(<any thread of the run's>, SIGKILL or a stop) while the user's code runs: it
    ends or stops the whole process, so it is said as os.kill of it is (twenty-fifth hunt, case 1)."""
    if signum not in ENDS_THE_RUN or os.getpid() != pid or not on_the_runs_behalf():
        return real_pthread_kill(thread_id, signum)
    raise _killed(f"signal.pthread_kill({thread_id}, {signal.Signals(signum).name})")


def _killpg_said(real_killpg, pid: int, group: int, signum: int) -> None:
    """os.killpg(<the run's group>, SIGKILL or a stop) while the user's code runs: said as os.kill is."""
    if signum not in ENDS_THE_RUN or group not in (0, os.getpgrp()) or os.getpid() != pid:
        return real_killpg(group, signum)
    if not on_the_runs_behalf():
        return real_killpg(group, signum)
    raise _killed(f"os.killpg({group}, {signal.Signals(signum).name})")


def _killed(call: str) -> ExitCalled:
    """The ExitCalled a SIGKILL of the run by the user's `call` is said as, where its caller called it."""
    said = ExitCalled(1)
    said.call = call
    said.rank_frames = traceback.extract_stack(sys._getframe(2))  # the wrapper's caller: the user's line
    return said


def left_by_a_fork(real_exit, error: BaseException | None) -> None:
    """A process the user's code forked, come back out of the call: it ends here, as it asked (a
    SystemExit's code, an error's traceback and 1), never going on as the run (twenty-third hunt, case 12:
    its sys.exit rewrote the completed run's summary.json `failed`, its figures gone)."""
    code = 0
    if isinstance(error, SystemExit):
        code = error.code if isinstance(error.code, int) else int(error.code is not None)
        if isinstance(error.code, str):
            print(error.code, file=sys.stderr)
    elif error is not None:
        traceback.print_exception(error)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    real_exit(code)


@contextmanager
def run_signals_kept(where: str) -> Iterator[None]:
    """Around a call of the user's code named `where` (`reward.path=mod:fn`): the run's handlers of KEPT
    as they were before it, put back after it (only the main thread sets handlers); its output and modes:
    user_modes.py modes_kept, entered beside it."""
    pid, main = os.getpid(), threading.current_thread() is threading.main_thread()
    before = {signum: signal.getsignal(signum) for signum in (*KEPT, *TIMERS.values())} if main else {}
    timers = {which: signal.getitimer(which) for which in TIMERS}  # one armed before the call is not its
    dispositions = {signum: signal.getsignal(signum) for signum in DISPOSITIONS} if main else {}
    real = os._exit, os.kill, os.killpg, signal.raise_signal, signal.pthread_kill, _thread.interrupt_main
    execs = os.execv, os.execve
    handlers = faulthandler.enable, faulthandler.disable
    setters, theirs = (signal.signal, signal.getsignal), {}  # the handlers the call set for KEPT
    real_exit = real[0]
    if main:
        signal.signal = functools.partial(_recorded, pid, setters, theirs)
        signal.getsignal = functools.partial(_theirs_read, setters[1], theirs)
        os._exit = functools.partial(_exit_said, real_exit, pid)
        os.kill = functools.partial(_kill_said, real[1], pid)
        os.killpg = functools.partial(_killpg_said, real[2], pid)
        signal.raise_signal = functools.partial(_raise_said, real[3], pid)
        signal.pthread_kill = functools.partial(_pthread_kill_said, real[4], pid)
        _thread.interrupt_main = functools.partial(_interrupt_said, real[5], pid)
        os.execv, os.execve = (functools.partial(_exec_said, e, f"os.{e.__name__}", pid) for e in execs)
        faulthandler.enable = faulthandler.disable = _faulthandler_kept  # (33rd hunt, 30, 48, 60, 70)
    try:
        yield
    except BaseException as e:
        if os.getpid() != pid:
            left_by_a_fork(real_exit, e)
        raise
    else:
        if os.getpid() != pid:
            left_by_a_fork(real_exit, None)
    finally:
        if os.getpid() == pid:
            if main:
                os._exit, os.kill, os.killpg, signal.raise_signal, signal.pthread_kill = real[:5]
                _thread.interrupt_main = real[5]
                os.execv, os.execve = execs
                faulthandler.enable, faulthandler.disable = handlers
                signal.signal, signal.getsignal = setters
                _handlers_kept(where, theirs, before)
                for which, signum in TIMERS.items():
                    _alarm_back(where, which, timers[which], before.pop(signum))
            _signals_back(where, before)
            _dispositions_back(where, dispositions)


# what the process does with a signal that is no stop: SIGPIPE ignored (Python's), so that a write to a
# closed pipe is an error, not the run's end with no word (a module's "no BrokenPipeError" idiom at import,
# the output piped into `head`: killed at its 3rd line, summary.json `running`: thirty-ninth hunt, case
# 13); SIGCHLD's default, so that rank 0 reads how each rank ended (ignored: a 62-line TypeError, case 14)
DISPOSITIONS = {
    signal.SIGPIPE: "a write to a closed pipe ends it",
    signal.SIGCHLD: "its ranks' ends are lost",
}


def _dispositions_back(where: str, before: dict) -> None:
    changed = [signum for signum, handler in before.items() if signal.getsignal(signum) != handler]
    for signum in changed:
        signal.signal(signum, before[signum])
    for signum in changed:
        if (where, signum) not in _SAID:
            _SAID.add((where, signum))
            name = signal.Signals(signum).name
            log.warning(
                f"warning: {where} changed the process's {name} handler; the run's is put back after each "
                f"call (with yours, {DISPOSITIONS[signum]})"
            )


def _recorded(pid: int, setters, theirs: dict, signum, handler):
    """signal.signal during a call: for a signal in KEPT, the component's handler recorded, not installed
    (from the main thread; another's raises ValueError as signal.signal does); the others, and any in a
    process it forked (a Pool's worker sets its own, and ends by SIGTERM), as they are."""
    main = threading.current_thread() is threading.main_thread()
    if signum not in KEPT or not main or os.getpid() != pid:
        return setters[0](signum, handler)
    if not (handler in (signal.SIG_IGN, signal.SIG_DFL) or callable(handler)):
        return setters[0](signum, handler)  # signal.signal's own TypeError
    previous = _theirs_read(setters[1], theirs, signum)
    theirs[signum] = handler
    return previous


def _theirs_read(getsignal, theirs: dict, signum):
    return theirs[signum] if signum in theirs else getsignal(signum)


def _handlers_kept(where: str, theirs: dict, before: dict) -> None:
    """The warning, once a component, that it set a handler of the run's (set back as it was: no change)."""
    changed = [signum for signum, handler in theirs.items() if handler != before.get(signum, handler)]
    if changed and (where, "handlers") not in _SAID:
        _SAID.add((where, "handlers"))
        names = " and ".join(signal.Signals(s).name for s in changed)
        log.warning(
            f"warning: {where} set a handler of the run's {names}; the run keeps its own during each call "
            "(yours is not installed), so that a scheduler's SIGTERM stops the run at a step's end with its "
            "checkpoint"
        )


def _faulthandler_kept(*args, **kwargs) -> None:
    """faulthandler.disable() or enable(file=<its own>) in the user's code, during a call or its import:
    the run keeps its own on, as the one word of a crash in C (which signal, which of the user's lines:
    hang_watch.py says it); after either, a crash was said as an outside SIGKILL, summary `running`."""


# each interval timer and the signal it sends: ITIMER_REAL's SIGALRM (signal.alarm), ITIMER_PROF's SIGPROF
# (a sampling profiler's), ITIMER_VIRTUAL's SIGVTALRM (user_timeouts.py's own signal, sent by no timer)
TIMERS = {signal.ITIMER_REAL: signal.SIGALRM, signal.ITIMER_PROF: signal.SIGPROF}
TIMERS[signal.ITIMER_VIRTUAL] = signal.SIGVTALRM


def _alarm_back(where: str, which: int, timer: tuple, handler) -> None:
    """A timer the call armed and left (signal.alarm, setitimer) cancelled, and its signal's handler put
    back: an alarm that fired outside the call killed the run with no line (SIGALRM's default action, rc
    142), or raised the user's timeout in the run's own code, a 90-line traceback (thirty-third hunt, cases
    34, 35); a profiler's ITIMER_PROF, rc 155 (thirty-fourth hunt, case 34; on rank 1, `interrupted by
    SIGPROF`, case 40); said once. A grader's own handler, left set with no timer armed, is put back
    without a word."""
    signum = TIMERS[which]
    if timer == (0.0, 0.0) and (left := signal.setitimer(which, 0))[0] > 0:
        if (where, signum) not in _SAID:
            _SAID.add((where, signum))
            name = signal.Signals(signum).name
            log.warning(
                f"warning: {where} left a timer armed (signal.alarm or setitimer, {name} in {left[0]:.2g} "
                f"s); it is cancelled after each call: {name} outside a call would end the run"
            )
    if signal.getsignal(signum) != handler:
        signal.signal(signum, handler)


def _signals_back(where: str, before: dict) -> None:
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
