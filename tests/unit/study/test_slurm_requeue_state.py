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
