"""A Slurm job requeued after a preemption (USR2) is in the queue again before its new allocation starts,
while sacct still reads its first allocation as CANCELLED: `study status` asks squeue before it calls
such a run failed (issue 59; study/status.py slurm_state). sacct and squeue are faked at their seams
(status.sacct_state, status.squeue_state), so the window, seconds long on a real cluster, is forced."""

from __future__ import annotations

import json

import pytest

from align_lab.study import status
from align_lab.study.status import run_state, slurm_state


def never_asked() -> str:
    raise AssertionError("squeue asked about a job sacct calls running")


@pytest.mark.parametrize(
    "accounted, queued, state",
    [
        ("CANCELLED by 0", "PENDING", "PENDING"),  # the requeue window: queued again
        ("CANCELLED by 0", "REQUEUED", "REQUEUED"),
        ("PREEMPTED", "COMPLETING", "COMPLETING"),  # the first allocation still letting go
        ("CANCELLED by 0", "", "CANCELLED by 0"),  # not in the queue: ended, as sacct says
        ("COMPLETED", "", "COMPLETED"),
        ("UNKNOWN", "PENDING", "PENDING"),  # no accounting record yet
        ("UNKNOWN", "", "CANCELLED"),  # no record and not queued: cancelled while pending
        ("CANCELLED by 0", "CANCELLED", "CANCELLED by 0"),  # squeue -j still shows it: ended, not queued
        ("COMPLETED", "COMPLETED", "COMPLETED"),
        ("CANCELLED by 0", "UNKNOWN", "UNKNOWN"),  # squeue failed (not "Invalid job id"): not ended
    ],
)
def test_a_job_sacct_calls_ended_is_what_squeue_says_while_it_is_queued(accounted, queued, state):
    assert slurm_state(accounted, lambda: queued) == state


def test_squeue_is_asked_only_when_sacct_calls_the_job_ended():
    assert slurm_state("RUNNING", never_asked) == "RUNNING"
    assert slurm_state("PENDING", never_asked) == "PENDING"


def preempted_run(tmp_path, monkeypatch, accounted: str, queued: str) -> status.RunState:
    """run_state of a Slurm run whose summary says preempted, with sacct and squeue saying these."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"status": "preempted"}))
    monkeypatch.setattr(status, "sacct_state", lambda run: accounted)
    monkeypatch.setattr(status, "squeue_state", lambda job_id: queued)
    run = {"num": 0, "overrides": ["seed=5"], "run_dir": str(run_dir), "job_id": "41"}
    return run_state(run | {"submitit_folder": str(tmp_path / "submitit")}, "slurm")


def test_a_preempted_run_whose_job_is_queued_again_is_pending_not_failed(tmp_path, monkeypatch):
    """The window: sacct reads the first allocation, CANCELLED; squeue lists the job, pending."""
    state = preempted_run(tmp_path, monkeypatch, "CANCELLED by 0", "PENDING")
    assert (state.state, state.detail) == ("pending", "PENDING")


def test_a_preempted_run_whose_old_allocation_is_completing_is_pending(tmp_path, monkeypatch):
    state = preempted_run(tmp_path, monkeypatch, "CANCELLED by 0", "COMPLETING")
    assert (state.state, state.detail) == ("pending", "COMPLETING")


def test_a_preempted_run_whose_job_left_the_queue_is_failed_not_requeued(tmp_path, monkeypatch):
    state = preempted_run(tmp_path, monkeypatch, "CANCELLED by 0", "")
    assert (state.state, state.detail) == ("failed", "preempted; job 41 was not requeued (CANCELLED)")


def test_a_preempted_run_whose_requeued_job_runs_is_running(tmp_path, monkeypatch):
    state = preempted_run(tmp_path, monkeypatch, "RUNNING", "")
    assert (state.state, state.detail) == ("running", "RUNNING")


def test_a_preempted_run_is_not_called_failed_when_squeue_cannot_answer(tmp_path, monkeypatch):
    state = preempted_run(tmp_path, monkeypatch, "CANCELLED by 0", "UNKNOWN")
    assert (state.state, state.detail) == ("pending", "UNKNOWN")


class Finished:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.mark.parametrize(
    "finished, state",
    [
        (Finished(0, "PENDING\n", ""), "PENDING"),
        (Finished(1, "", "slurm_load_jobs error: Invalid job id specified\n"), ""),  # gone from the queue
        (Finished(1, "", "slurm_load_jobs error: Socket timed out on send/recv operation\n"), "UNKNOWN"),
    ],
)
def test_squeue_state_reads_the_queue_and_tells_a_gone_job_from_a_failed_call(finished, state, monkeypatch):
    import subprocess

    asked = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: asked.append(cmd) or finished)
    assert status.squeue_state("41") == state
    assert asked == [["squeue", "-h", "-j", "41", "-o", "%T"]]
