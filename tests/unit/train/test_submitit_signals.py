"""train/submitit_signals.py: in a Slurm job a SIGTERM is a plain `scancel` (the run stops at its step's end,
checkpointed: twenty-second hunt, case 16, it trained on until KillWait's SIGKILL) or a preemption's, which
Slurm follows with the job's USR2 (the run is requeued, as before): the run waits PREEMPTION_FOLLOWS_S for
that USR2 before it takes the SIGTERM for a stop."""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager

import pytest
from submitit.core.job_environment import SignalHandler

from align_lab.train.preemption import Interrupted, Interruption, Preempted, Preemption

WINDOW = 0.4  # PREEMPTION_FOLLOWS_S, shortened


@contextmanager
def in_a_submitit_job(monkeypatch, executor: str):
    """submitit's handlers as its job installs them: SIGTERM bypassed, USR2 its requeue (which exits)."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", executor)
    monkeypatch.setattr("align_lab.train.preemption.PREEMPTION_FOLLOWS_S", WINDOW)
    requeued = []

    def requeue(signum, frame):
        requeued.append(signum)
        raise SystemExit(-1)

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR2)}
    signal.signal(signal.SIGTERM, SignalHandler.__new__(SignalHandler).bypass)
    signal.signal(signal.SIGUSR2, requeue)
    try:
        yield requeued
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def signalled(*signums: int) -> None:
    for signum in signums:
        os.kill(os.getpid(), signum)
    threading.Event().wait(0.05)  # the handlers run


def test_a_plain_scancel_stops_a_slurm_run_at_its_steps_end_once_no_usr2_followed(monkeypatch):
    saved = []
    with in_a_submitit_job(monkeypatch, "slurm") as requeued, Interruption() as interruption:
        preemption = Preemption(interruption=interruption).install()
        preemption.steps_begin()
        signalled(signal.SIGTERM)
        assert preemption.stopping() and interruption.now is None  # the step under way finishes
        start = time.monotonic()
        with pytest.raises(Interrupted) as e:
            preemption.after_step(lambda: saved.append("checkpoint"))
    assert e.value.signal_name == "SIGTERM" and saved == ["checkpoint"] and requeued == []
    assert time.monotonic() - start >= WINDOW - 0.1  # it waited for a USR2 that did not come


def test_a_preemptions_sigterm_then_usr2_requeues_the_slurm_run(monkeypatch):
    saved = []
    with in_a_submitit_job(monkeypatch, "slurm") as requeued, Interruption() as interruption:
        preemption = Preemption(interruption=interruption).install()
        preemption.steps_begin()
        signalled(signal.SIGTERM, signal.SIGUSR2)  # submitit's _interrupt(): scancel --signal TERM, then USR2
        with pytest.raises(Preempted):
            preemption.after_step(lambda: saved.append("checkpoint"))
        signalled(signal.SIGTERM)  # the requeue's own: stops nothing
    assert saved == ["checkpoint"] and requeued == [signal.SIGUSR2]


def test_a_usr2_that_follows_within_the_window_at_a_steps_end_is_still_a_preemption(monkeypatch):
    with in_a_submitit_job(monkeypatch, "slurm") as requeued, Interruption() as interruption:
        preemption = Preemption(interruption=interruption).install()
        preemption.steps_begin()
        signalled(signal.SIGTERM)
        threading.Timer(
            WINDOW / 2, os.kill, (os.getpid(), signal.SIGUSR2)
        ).start()  # the second scancel, late
        with pytest.raises(Preempted):
            preemption.after_step(lambda: None)
    assert requeued == [signal.SIGUSR2]


def test_outside_the_steps_a_slurm_sigterm_stops_the_run_unless_a_usr2_follows(monkeypatch):
    with in_a_submitit_job(monkeypatch, "slurm"), Interruption() as interruption:  # stages being built
        with pytest.raises(Interrupted):
            signalled(signal.SIGTERM)
            threading.Event().wait(5 * WINDOW)
    with in_a_submitit_job(monkeypatch, "slurm") as requeued, Interruption() as interruption:
        preemption = Preemption(interruption=interruption).install()
        threading.Timer(WINDOW / 2, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        signalled(signal.SIGTERM)  # waits in its handler for the USR2, which comes: no stop here
        threading.Event().wait(WINDOW)
        assert preemption.stopping() and interruption.requested is None and requeued == []
        preemption.steps_begin()
        with pytest.raises(Preempted):  # the first step's end checkpoints and requeues
            preemption.after_step(lambda: None)


def test_a_local_jobs_sigterm_stops_its_run_without_waiting(monkeypatch):
    with in_a_submitit_job(monkeypatch, "local"), Interruption() as interruption:
        preemption = Preemption(interruption=interruption).install()
        preemption.steps_begin()
        signalled(signal.SIGTERM)
        start = time.monotonic()
        with pytest.raises(Interrupted):
            preemption.after_step(lambda: None)
    assert time.monotonic() - start < WINDOW / 2
