"""What submitit's signal handlers mean to a run: its SIGTERM bypass, which a run takes over
(train/preemption.py Interruption), in a Slurm job the USR2 that may follow a SIGTERM, and USR2 itself
(Slurm preemption, or a time limit announced by submitit's signal_delay_s): Preemption finishes the
current step, checkpoints, then hands the signal to the previous handler, which for a submitit job
requeues it."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable


def submitits_bypass(handler) -> bool:
    """submitit's SIGTERM handler, which ignores it: `kill -TERM` of a local sweep's run, or a plain `scancel`
    of a Slurm one, trained on with no word outside `.submitit/` (twenty-second hunt, cases 36 and 16; in
    Slurm, KillWait's SIGKILL then lost every step since the last checkpoint). A run's own Interruption
    takes SIGTERM instead, as outside submitit: the step ends, is checkpointed, the run says where it
    stopped; in a Slurm job only once no USR2 followed (slurms_sigterm)."""
    owner = getattr(handler, "__self__", None)
    return getattr(handler, "__name__", "") == "bypass" and type(owner).__module__.startswith("submitit")


def slurms_sigterm(handler) -> bool:
    """SIGTERM taken from submitit in a Slurm job, where it may be a preemption's: Slurm sends a preempted
    job SIGTERM and then its USR2 (submitit's own `_interrupt` does so), and the USR2 requeues it. Such a
    SIGTERM stops the run as an interruption only after PREEMPTION_FOLLOWS_S with no USR2
    (Interruption.settled); the SIGTERM of a requeue after a USR2 stops nothing (`preempting`)."""
    return submitits_bypass(handler) and os.environ.get("SUBMITIT_EXECUTOR", "slurm") != "local"


# how long a SIGTERM in a Slurm job waits for a preemption's USR2 (submitit's `_interrupt` sends them with
# two `scancel` calls, a fraction of a second apart); well inside Slurm's KillWait (30 s by default, 5 s
# on the tests' cluster), after which a SIGKILL ends the job
PREEMPTION_FOLLOWS_S = 2.0


class Preempted(SystemExit):
    """The run stopped after checkpointing on a preemption signal; the scheduler may requeue it."""


class Preemption:
    """Install once per run; the loop calls `steps_begin()` before its first step, `after_step(save)` at
    the end of every step and `steps_end()` after its last. `interruption`: the run's SIGTERM/SIGINT
    handling, a train/preemption.py Interruption (None on a rank other than 0, which stops when rank 0
    does)."""

    def __init__(self, signum: int = signal.SIGUSR2, interruption=None) -> None:
        self.signum = signum
        self.requested = None  # (signum, frame) once the signal has arrived
        self.previous = None
        self.interruption = interruption
        self.began = False  # steps_begin() was called: a USR2 waits for the step under way

    def install(self) -> Preemption:
        """The handler, until the run's Interruption block ends (else a run in a process that goes on, a
        test's or a benchmark's, left it behind for whatever ran next)."""
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(self.signum, self._note)
            if self.interruption is not None:
                self.interruption.on_exit.append(self._uninstall)
        return self

    def _uninstall(self) -> None:
        if signal.getsignal(self.signum) == self._note:
            signal.signal(self.signum, signal.SIG_DFL if self.previous is None else self.previous)

    def _note(self, signum, frame) -> None:
        """A USR2 while steps run waits for the step's end (after_step). One before the first step, as the
        stages are built, is passed to the job manager's handler at once, which requeues the job: the stages
        built so far are cached, no step is lost, and a stage that takes minutes (a real model's SFT) would
        outlast the notice (Slurm's `--signal` lead, a preemption's GraceTime): the job killed, never
        requeued (twenty-third hunt's notes: it acted at the first step's end, 22 s later on the toy)."""
        self.requested = (signum, frame)
        if self.interruption is not None:  # the SIGTERM its requeue brings is the requeue's own
            self.interruption.preempting = True
        if not self.began and callable(self.previous) and not getattr(self.interruption, "deferred", False):
            self._pass_on()  # (a block that holds signals, an import, takes it at its end's first step)

    def steps_begin(self) -> None:
        """From here to steps_end(), a first SIGTERM/SIGINT waits for the end of the step under way."""
        self.began = True
        if self.interruption is not None:
            self.interruption.deferred = True

    def steps_end(self) -> None:
        """After the last step: a signal stops the run at once again (one that waits stops it now)."""
        if self.interruption is not None:
            self.interruption.deferred = False
            if self.interruption.settled() is not None:
                raise self.interruption.stop(self.interruption.requested)

    def stopping(self) -> bool:
        """A USR2, SIGTERM or SIGINT arrived during the step: after_step checkpoints it and stops."""
        return self.requested is not None or getattr(self.interruption, "requested", None) is not None

    def stop_with_the_others(self) -> None:
        """Another process of the run got a SIGTERM (a rank other than 0): this one stops as if it had."""
        if not self.stopping() and self.interruption is not None:
            self.interruption.requested = "SIGTERM"

    def after_step(self, save: Callable[[], None]) -> None:
        """Saves a checkpoint and stops the run (USR2: passes the signal on), if a signal arrived during
        the step."""
        interrupted = self.interruption.settled() if self.interruption is not None else None
        if interrupted is not None and self.requested is None:
            save()  # the step just finished, whatever train.checkpoint_every says
            raise self.interruption.stop(interrupted)
        if self.requested is None:
            return
        save()
        self._pass_on()

    def _pass_on(self) -> None:
        """The signal passed to the handler before ours (submitit's: pickle the call, requeue, exit), as
        Preempted; with none, Preempted whose line says to rerun."""
        signal.signal(self.signum, self.previous or signal.SIG_DFL)
        message = f"preempted by signal {self.signum}: checkpointed; rerun to resume"
        if callable(self.previous):
            try:
                self.previous(*self.requested)  # submitit: pickle the call, requeue, exit
            except SystemExit as e:
                raise Preempted(e.code) from None
            except subprocess.CalledProcessError as e:
                if e.returncode != -signal.SIGTERM:
                    raise
                # `scontrol requeue` ended by the SIGTERM its own requeue sends the job's processes (a
                # race: CI of 469f5e1 called the requeued run failed): requeued, its checkpoint whole
                command = " ".join(map(str, e.cmd))
                said = f"checkpointed (requeue: {command} ended by SIGTERM); rerun to resume"
                raise Preempted(f"preempted by signal {self.signum}: {said}") from None
        raise Preempted(message)
