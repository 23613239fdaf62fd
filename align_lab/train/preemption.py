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
