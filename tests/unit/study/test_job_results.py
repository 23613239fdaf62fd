"""The launcher's reading of an ended job (hydra_plugins/align_lab_launcher/launcher.py `_result`): a
job whose run said in its folder how it ended without completing (stopped, failed, killed) leaves no
result file, and submitit's `results()` waits 15 s for one, a job at a time: after a SIGTERM and a kill -9
in one local sweep the command sat silent 31 s before its lines (twenty-third hunt's notes, cases 4 and
9). Those are read from the folder at once; a completed or preempted run's job is still asked for its
result."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.core.utils import JobStatus

from align_lab.study.outcome import Outcomes
from hydra_plugins.align_lab_launcher.launcher import StudyLauncher


class EndedJob:
    """A submitit job that has ended without writing its result file."""

    def __init__(self, folder: Path) -> None:
        self.job_id = "4242"
        self.paths = SimpleNamespace(folder=folder, result_pickle=folder / "4242_0_result.pkl")
        self.asked = 0

    def stderr(self) -> str:
        return ""

    def results(self):
        self.asked += 1
        raise RuntimeError("Job 4242 (task: 0) has not produced any output (state: FINISHED)")


def ended_run(tmp_path: Path, summary: dict) -> tuple[EndedJob, dict]:
    run_dir = tmp_path / "0_grpo_seed0"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"algo": "grpo", "seed": 0, **summary}))
    return EndedJob(tmp_path), {"num": 0, "overrides": ["seed=0"], "run_dir": str(run_dir)}


def test_a_stopped_runs_job_is_read_from_its_folder_without_waiting_for_a_result(tmp_path, capsys):
    line = "interrupted by SIGTERM; resume from step 3 with: cd /x && python -m align_lab -m seed=0"
    job, run = ended_run(tmp_path, {"status": "interrupted", "error": line})
    ret = StudyLauncher._result(job, run, Outcomes([run], tmp_path))
    assert ret.status == JobStatus.FAILED and job.asked == 0
    assert f"align_lab: run #0 (seed=0): failed: {line}" in capsys.readouterr().out


@pytest.mark.parametrize("status", ["completed", "preempted"])
def test_a_completed_or_preempted_runs_job_is_still_asked_for_its_result(tmp_path, status):
    job, run = ended_run(tmp_path, {"status": status, "error": "preempted by signal 12: checkpointed"})
    ret = StudyLauncher._result(job, run, Outcomes([run], tmp_path))
    assert job.asked == 1 and ret.status == JobStatus.FAILED  # (its result file never came)
