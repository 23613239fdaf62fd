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

from align_lab.train.preemption import Interrupted, Interruption
from align_lab.train.submitit_signals import Preempted, Preemption

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
        Preemption(interruption=interruption).install()
        threading.Timer(WINDOW / 2, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        with pytest.raises(Preempted):  # the SIGTERM's handler waits for the USR2, which requeues at once
            signalled(signal.SIGTERM)
            threading.Event().wait(5 * WINDOW)
        assert interruption.stopped is None and requeued == [signal.SIGUSR2]


def test_a_usr2_before_the_first_step_requeues_at_once_while_one_in_a_step_waits_for_its_end(monkeypatch):
    """Twenty-third hunt's notes: a USR2 as the stages were built acted at the first step's end (a real
    model's SFT outlasts Slurm's notice: the job killed, never requeued); now submitit requeues it at once.
    In a step, it waits for the step's end and its checkpoint, as before."""
    with in_a_submitit_job(monkeypatch, "slurm") as requeued, Interruption() as interruption:
        Preemption(interruption=interruption).install()
        with pytest.raises(Preempted):
            signalled(signal.SIGUSR2)
            threading.Event().wait(1.0)  # a stage being built
        assert requeued == [signal.SIGUSR2]
    saved = []
    with in_a_submitit_job(monkeypatch, "slurm") as requeued, Interruption() as interruption:
        preemption = Preemption(interruption=interruption).install()
        preemption.steps_begin()
        signalled(signal.SIGUSR2)
        assert requeued == [] and preemption.stopping()
        with pytest.raises(Preempted):
            preemption.after_step(lambda: saved.append("checkpoint"))
        assert requeued == [signal.SIGUSR2] and saved == ["checkpoint"]
    with in_a_submitit_job(monkeypatch, "slurm") as requeued, Interruption() as interruption:
        preemption = Preemption(interruption=interruption).install()
        with interruption.holding("an import"):  # a block that holds signals takes it at the first step
            signalled(signal.SIGUSR2)
        assert requeued == [] and preemption.stopping()


def test_a_local_jobs_sigterm_stops_its_run_without_waiting(monkeypatch):
    with in_a_submitit_job(monkeypatch, "local"), Interruption() as interruption:
        preemption = Preemption(interruption=interruption).install()
        preemption.steps_begin()
        signalled(signal.SIGTERM)
        start = time.monotonic()
        with pytest.raises(Interrupted):
            preemption.after_step(lambda: None)
    assert time.monotonic() - start < WINDOW / 2
