"""USR2 (Slurm preemption, or a time limit announced by submitit's signal_delay_s): finish the current
step, checkpoint, then hand the signal to the previous handler, which for a submitit job requeues it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


class Preempted(SystemExit):
    """The run stopped after checkpointing on a preemption signal; the scheduler may requeue it."""


class Preemption:
    """Install once per run; the loop calls `after_step(save)` at the end of every step."""

    def __init__(self, signum: int = signal.SIGUSR2) -> None:
        self.signum = signum
        self.requested = None  # (signum, frame) once the signal has arrived
        self.previous = None

    def install(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(self.signum, self._note)
        return self

    def _note(self, signum, frame) -> None:
        self.requested = (signum, frame)

    def after_step(self, save: Callable[[], None]) -> None:
        """Saves a checkpoint and passes the signal on, if one arrived during the step."""
        if self.requested is None:
            return
        save()
        signal.signal(self.signum, self.previous or signal.SIG_DFL)
        message = f"preempted by signal {self.signum}: checkpointed; rerun to resume"
        if callable(self.previous):
            try:
                self.previous(*self.requested)  # submitit: pickle the call, requeue, exit
            except SystemExit as e:
                raise Preempted(e.code) from None
        raise Preempted(message)


class Interrupted(Exception):
    """SIGTERM or SIGINT (Ctrl-C) stopped the run; it resumes from its last checkpoint when rerun."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = 128 + getattr(signal, signal_name)


class Interruption:
    """While installed, SIGTERM and SIGINT raise Interrupted (instead of killing the process or raising
    KeyboardInterrupt), so that the run can say where it stopped; the previous handlers come back after.
    A signal that already has a handler of its own (submitit's, in a Slurm job) keeps it."""

    SIGNALS = ("SIGTERM", "SIGINT")

    def __enter__(self) -> Interruption:
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                current = signal.getsignal(getattr(signal, name))
                if current not in (signal.SIG_DFL, signal.default_int_handler):
                    continue  # a job manager's own handler (submitit's SIGTERM during a requeue) stays
                self.previous[name] = signal.signal(getattr(signal, name), self._raise)
        return self

    @staticmethod
    def _raise(signum, frame) -> None:
        raise Interrupted(signal.Signals(signum).name)

    def __exit__(self, *exc) -> None:
        for name, handler in self.previous.items():
            signal.signal(getattr(signal, name), handler)
