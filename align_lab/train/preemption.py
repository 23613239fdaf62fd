"""SIGTERM and SIGINT (Ctrl-C): while training steps run, finish the step, checkpoint it whatever
train.checkpoint_every says, stop the run as interrupted; a second one, or one at any other time, stops
the run at once. USR2 (a preemption's notice) is submitit_signals.Preemption's."""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from align_lab.train.submitit_signals import PREEMPTION_FOLLOWS_S, slurms_sigterm, submitits_bypass
from align_lab.user_fds import hold, let_go
from align_lab.user_timeouts import tell

_FAULTHANDLER_OFF = faulthandler.disable  # as imported: a user's call sees a stand-in (user_signals.py)
WATCHED: set[int] = set()  # the write ends of the watchers' pipes (Interruption._watch)
ACTIVE: list[Interruption] = []  # the Interruptions this process is in, innermost last (held)
HELD: dict[int, set] = {}  # the forking thread's signal mask before a fork (_held_over_a_fork)
STOPPING = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2}


def _held_over_a_fork() -> None:
    """Before a fork in a run: the signals that stop it wait (blocked in the forking thread, whose mask the
    child inherits) until the child has its own handlers: one that came in between ran the run's handler
    in the child, which wrote it into the run's pipe (a phantom `SIGTERM: the run stops ...` line) and, by
    the time Python ran it, found the default action and dropped it, so a Pool's worker outlived its
    terminate() and the run waited for it forever (twenty-fifth hunt, case 9)."""
    if ACTIVE:
        HELD[threading.get_ident()] = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)


def _let_go_after_a_fork() -> None:
    """The forking thread's signals as they were before the fork (the parent; and the child, last)."""
    mask = HELD.pop(threading.get_ident(), None)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _unwatched_in_a_fork() -> None:
    """A process the user's code forks (a reward's Pool) would write its own signals into the run's
    pipe (a Pool's terminate() taken for the run's second SIGTERM): its signals are its own, with their
    default actions, as any library's forked worker expects: one that kept the run's handler ignored
    its Pool's terminate() while it waited on a lock, and the run waited for it forever (twenty-fourth
    hunt, case 44). A signal held over the fork arrives once they are (_held_over_a_fork). Nor are the run's
    crash reports (a Pool's crashed workers buried the run's one line under 200 lines of dumps: thirty-
    fourth hunt, case 60); a plain Python's worker prints nothing."""
    try:
        fd = signal.set_wakeup_fd(-1)
        if fd not in WATCHED:
            signal.set_wakeup_fd(fd)
        for name in (*Interruption.SIGNALS, "SIGUSR2"):
            handler = signal.getsignal(getattr(signal, name))
            if type(getattr(handler, "__self__", None)).__name__ in ("Interruption", "Preemption"):
                default = signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL
                signal.signal(getattr(signal, name), default)
    except ValueError:  # not this interpreter's main thread: nothing of the run's to undo here
        pass
    if faulthandler.is_enabled():
        _FAULTHANDLER_OFF()
    _let_go_after_a_fork()


os.register_at_fork(
    before=_held_over_a_fork, after_in_parent=_let_go_after_a_fork, after_in_child=_unwatched_in_a_fork
)


def _holds(outer: Interruption | None) -> bool:
    """Whether `outer` (the Interruption a new one is entered in) holds a signal not yet stopping anything."""
    return outer is not None and outer.requested is not None and outer.stopped is None


class RankStopped(Exception):
    """On a rank other than 0: rank 0 checkpoints the step that just ended (`step`) and stops the run (a
    signal reached it); this rank's share ends there, and rank 0 says so."""

    def __init__(self, step: int) -> None:
        super().__init__(f"rank 0 stops the run after step {step}")
        self.step = step


class Interrupted(BaseException):
    """SIGTERM or SIGINT (Ctrl-C) stopped the run; it resumes from its last checkpoint when rerun. A
    BaseException, as KeyboardInterrupt is: an `except Exception` around user code (an environment, a
    reward function, a tool) or in a library cannot take the run's own stop for an error of its own."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = 128 + getattr(signal, signal_name)


class Interruption:
    """While installed, SIGTERM and SIGINT raise Interrupted (instead of killing the process or raising
    KeyboardInterrupt), so that the run (or a study) can say where it stopped; the previous handlers come
    back after. A signal that already has a handler of its own (submitit's, in a Slurm job) keeps it; an
    Interruption inside another (a run inside a study) takes over until it ends.

    While `deferred` (training steps run: Preemption.steps_begin), the first signal is only noted in
    `requested`: the step finishes and is checkpointed, then the run stops (Preemption.after_step), so
    that a stop keeps every finished step and never a half-applied update. A second one stops it now.

    Python runs a handler only between bytecodes: a main thread blocked in native code (a collective
    waiting for a rank whose reward hangs) would never see the second one (fourteenth hunt). A thread
    reads the signals as they arrive (signal.set_wakeup_fd) and, for one that stops the run now, notes it
    in `now` and calls `on_stop_now` (the spawned ranks killed: the collective fails, the handler runs)."""

    # SIGHUP: a terminal closed over a run; SIGUSR1: `scancel --signal=USR1`, a tool's own stop (seventeenth
    # hunt: both killed the run with no line and no checkpoint)
    SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1")

    def __init__(self, quiet: bool = False, deferred: bool = False, waiting: str | None = None) -> None:
        self.quiet = quiet  # a spawned rank's: rank 0 alone says it (fifteenth hunt: once a rank)
        self.deferred = deferred  # a command's own (__main__): a signal waits for the next one's entry
        self.requested: str | None = None  # the signal's name, noted while deferred
        self.now: str | None = None  # the name of a signal that stops the run now, seen by the watcher
        self.on_stop_now: list[Callable[[], None]] = []  # called from the watcher's thread
        self.pipe: tuple[int, int] | None = None
        self.stopped: str | None = None  # the signal the run is stopping on (stop): later ones wait
        self.later = 0  # signals since
        self.unsaid = [True]  # the first signal's line, not yet said (_say_waiting)
        self.waiting_for = waiting or WAITING  # what a first signal waits for while deferred (holding)
        self.preempting = False  # a USR2 came (Preemption): the SIGTERM of its requeue stops nothing
        self.term_may_preempt = False  # SIGTERM taken from submitit in a Slurm job: its USR2 may follow
        self.term_at: float | None = None  # when such a SIGTERM came (settled)
        self.on_exit: list[Callable[[], None]] = []  # what else the block installed, put back as it ends

    def __enter__(self) -> Interruption:
        """Takes the signals over; where the Interruption it is inside holds a signal (the command's own,
        deferred: one that came while it imported), that signal stops this one's block as it begins, a
        point where nothing is half done (eighteenth hunt: raised inside an import, it was swallowed
        there, or left a module half made)."""
        outer = ACTIVE[-1] if ACTIVE and threading.current_thread() is threading.main_thread() else None
        if _holds(outer):
            raise outer.stop(outer.requested)
        self.previous = {}
        self.pid = os.getpid()
        self.sigint_ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # `nohup ... &`, a daemon
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                current = signal.getsignal(getattr(signal, name))
                outer = getattr(current, "__self__", None)
                ours = isinstance(outer, Interruption)
                taken = ours or (submitits_bypass(current) and not self.quiet)
                if current not in (signal.SIG_DFL, signal.default_int_handler) and not taken:
                    continue  # a job manager's own handler stays
                if name == "SIGTERM":
                    self.term_may_preempt = outer.term_may_preempt if ours else slurms_sigterm(current)
                self.previous[name] = signal.signal(getattr(signal, name), self._raise)
        if self.previous:
            self._watch()
        ACTIVE.append(self)
        if _holds(outer):  # one the command took while this took the signals over (CI of 768a3f1: held,
            self.__exit__(None, None, None)  # never raised, a sweep's runs trained on after its SIGTERM)
            raise outer.stop(outer.requested)
        return self

    @contextmanager
    def holding(self, what: str) -> Iterator[None]:
        """The block runs whole: a first signal is noted (and said: the command stops once `what`) and
        raised as it ends; a second stops it now. For imports: an Interrupted raised inside one (torch's,
        transformers' lazy classes) was caught there, the signal lost and the run went on to complete, or
        left a module half-made for a later ImportError traceback (seventeenth hunt)."""
        deferred, waiting = self.deferred, self.waiting_for
        self.deferred, self.waiting_for = True, what
        try:
            yield
        finally:
            self.deferred, self.waiting_for = deferred, waiting
        if self.requested is not None and not deferred and self.settled() is not None:
            raise self.stop(self.requested)

    def _watch(self) -> None:
        """Starts the thread that sees each signal as it arrives, whatever the main thread is doing."""
        read, write = os.pipe()
        os.set_blocking(write, False)
        self.previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self.pipe = (read, write)
        hold("signal pipe", read, write)  # a call of the user's code may not close them (user_fds.py)
        WATCHED.add(write)
        said_to_watch(write)
        threading.Thread(target=self._seen, args=(read,), daemon=True, name="align_lab-signals").start()

    def _seen(self, read: int) -> None:
        """The watcher: the signals' numbers, one byte each, until __exit__ closes the pipe."""
        # the signals this Interruption handles: a job manager's own (submitit's SIGTERM) are not the run's
        names = {getattr(signal, name): name for name in self.previous}
        count, usr2 = 0, False
        # once Python's lock is taken, not before: a signal a thread holding it keeps waiting stays in the
        # pipe, where hang_watch.py sees it (thirty-third hunt, case 64: two SIGTERMs did nothing)
        while data := signals_in(read):
            for signum in data:
                usr2 |= signum == signal.SIGUSR2
                tentative = self.term_may_preempt and signum == signal.SIGTERM  # a preemption's? (settled)
                if signum not in names or (tentative and usr2):  # after a USR2: its requeue's SIGTERM
                    continue
                count += 1
                if count == 1 and self.deferred:  # said now, though the main thread waits in native code
                    self._say_waiting(names[signum])  # (seventeenth hunt: a collective)
                if count > 1 or not (self.deferred or tentative):
                    self.now = names[signum]
                    for stop in list(self.on_stop_now):
                        stop()
        with contextlib.suppress(OSError):  # closed by code of the user's: said by user_fds.py
            os.close(read)

    def _raise(self, signum, frame) -> None:
        if os.getpid() != self.pid:  # a process the user's code forked (a Pool's worker): the default, so
            signal.signal(signum, signal.SIG_DFL)  # that its parent's terminate() ends it (tenth hunt: a
            os.kill(os.getpid(), signum)  # reward's fork Pool hung, saying a SIGTERM nobody sent)
            return
        name = signal.Signals(signum).name
        if name == "SIGTERM" and self.preempting:  # the requeue's own (submitit's bypass did the same)
            return
        if self.deferred and self.requested is None and self.now is None:
            self.requested = name
            self.term_at = time.monotonic()
            self._say_waiting(name)
            return
        if name == "SIGTERM" and self.term_may_preempt and self.requested is None and self.stopped is None:
            self.requested, self.term_at = name, time.monotonic()
            if self.settled() is None:  # a preemption: its USR2 stops the run at its first step's end
                return
        # one already stopping the run: its summary and line are not cut short by the next (sixteenth hunt,
        # case 25: SIGTERM then SIGINT said SIGTERM, rc 130); a third one raises that signal's stop again
        self.later += self.stopped is not None
        if self.stopped is None or self.later > 1:  # (code of the user's that swallowed the first)
            raise self.stop(self.stopped or name)

    def settled(self) -> str | None:
        """The signal that stops the run (`requested`), once a SIGTERM in a Slurm job has had
        PREEMPTION_FOLLOWS_S to be followed by a preemption's USR2: then None, the preemption's stop
        (Preemption.after_step: checkpointed, requeued) instead of an interruption's."""
        if self.requested == "SIGTERM" and self.term_may_preempt and self.term_at is not None:
            deadline = self.term_at + PREEMPTION_FOLLOWS_S
            while not self.preempting and (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, 0.05))  # the USR2's handler (Preemption._note) runs in between
            if self.preempting:
                self.requested = None
        return self.requested

    def _say_waiting(self, name: str) -> None:
        """The first signal's line, once, by the handler or the watcher, whichever comes first (the
        handler runs only between bytecodes: rank 0 waiting in a collective for a rank whose reward hangs
        said nothing, and a scheduler's one SIGTERM met silence). os.write, not print: the handler may
        run while the main thread is inside a write to stderr (a progress bar: "reentrant call")."""
        try:
            self.unsaid.pop()  # atomic: the other caller finds it empty
        except IndexError:
            return
        if not self.quiet:
            os.write(2, f"\nalign_lab: {name}: {self.waiting_for.format(name=name)}\n".encode())

    def stop(self, name: str) -> Interrupted:
        """The Interrupted that stops the run on signal `name`; from here a later signal neither cuts
        what the stop writes (summary.json, the line) nor changes the signal the line and exit code name
        (the watcher's stop-now hooks still run)."""
        self.stopped = name
        return Interrupted(name)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self in ACTIVE:
            ACTIVE.remove(self)
        outer = ACTIVE[-1] if ACTIVE and threading.current_thread() is threading.main_thread() else None
        if outer is not None and isinstance(exc, Interrupted) and self.stopped is not None:
            outer.waiting_for = ENDING  # not "at the next run's start" (fortieth hunt, case 45)
        for undo in reversed(self.on_exit):
            undo()
        for name, handler in self.previous.items():
            signal.signal(getattr(signal, name), handler)
        if self.pipe is not None:
            with contextlib.suppress(OSError, ValueError):  # one a call of the user's closed (user_fds.py)
                signal.set_wakeup_fd(self.previous_fd)
            said_to_watch(self.previous_fd)
            WATCHED.discard(self.pipe[1])
            let_go(*self.pipe)
            with contextlib.suppress(OSError):
                os.close(self.pipe[1])  # the watcher reads the end of its pipe and stops
        if isinstance(exc, KeyboardInterrupt) and ("SIGINT" in self.previous or self.sigint_ignored):
            # no SIGINT came (ours raises Interrupted; an ignored one raises nothing): code of the run
            # raised it (seventh hunt; a run started in the background, SIGINT ignored, said "SIGINT")
            exc.raised_by_code = True


def signals_in(read: int) -> bytes:
    """The next signals' bytes in the watcher's pipe; b"" once it is closed (by __exit__, or by a call of the
    user's code that closed the run's descriptors in C: user_fds.py says it in one line)."""
    try:
        select.select([read], [], [])
        return os.read(read, 64)
    except (OSError, ValueError):
        return b""


WAITING = (
    "the run stops once the step under way is done and checkpointed ({name} again: it stops now, to resume "
    "from its last checkpoint)"
)
STARTING = "the command stops as soon as it can, at the next run's start or its own end ({name} again: now)"
ENDING = "the command ends once the stopped run has written its summary and resume line ({name} again: now)"


@contextmanager
def held(what: str) -> Iterator[None]:
    """Interruption.holding of the innermost Interruption this process is in (none: nothing to hold)."""
    with ACTIVE[-1].holding(what) if ACTIVE else contextlib.nullcontext():
        yield


def said_to_watch(wakeup_fd: int) -> None:
    """hang_watch.py told which pipe the signals wait in (-1: none), where it is running (user_pulse.py)."""
    tell(json.dumps({"signals": wakeup_fd if wakeup_fd >= 0 else None}).encode() + b"\n")
