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


def test_a_signal_after_every_run_completed_ends_the_sweep_with_their_lines(tmp_path, capsys):
    """Twenty-fourth hunt, case 43: SIGTERM to a local sweep in the second after both runs completed (their
    jobs not yet reporting): "2 unfinished runs stop once their steps under way are done" and a resume
    command for a finished sweep, the runs' figures never said."""
    import os
    import signal

    from hydra.core.utils import JobReturn

    class Reporting(EndedJob):  # its run completed; the job ends as the signal comes
        def done(self) -> bool:
            if not self.asked:
                self.asked = -1
                os.kill(os.getpid(), signal.SIGTERM)
            return False

        def results(self):
            return [JobReturn(overrides=["seed=0"], status=JobStatus.COMPLETED, _return_value=0.5)]

    run_dir = tmp_path / "0_grpo_seed0"
    run_dir.mkdir()
    summary = {"algo": "grpo", "seed": 0, "status": "completed", "eval/gold_reward": 0.5}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    run = {"num": 0, "overrides": ["seed=0"], "run_dir": str(run_dir)}
    launcher = StudyLauncher.__new__(StudyLauncher)
    launcher._EXECUTOR = "local"
    [ret] = launcher._wait({0: Reporting(tmp_path)}, [run], tmp_path, poll_s=0.05)
    assert ret.status == JobStatus.COMPLETED
    out, err = capsys.readouterr()
    assert err.strip() == "align_lab: SIGTERM: every run had completed; the sweep ends", err
    assert (
        "align_lab: run #0 (seed=0): grpo seed 0 completed" not in out
        and "completed: gold reward 0.500" in out
    ), out


def test_a_sweep_whose_run_failed_in_the_users_code_says_the_rerun_that_resumes_it_once_fixed(
    tmp_path, capsys
):
    """Forty-fourth hunt's oddity: the sweep's "to rerun only the others" command lacked
    resume_changed_inputs=true, which the failed run's own line names: once the reward was fixed, the
    printed command was refused (its inputs changed)."""
    line = (
        "error: reward.path=r:f: raised ValueError: bad at r.py:3; fix it, then resume from step 2 with: "
        "cd /x && python -m align_lab seed=0 resume_changed_inputs=true"
    )
    job, run = ended_run(tmp_path, {"status": "failed", "error": line})
    outcomes = Outcomes([run], tmp_path)
    outcomes.failed(run, line)
    with pytest.raises(SystemExit):
        outcomes.finish()
    said = capsys.readouterr().err.splitlines()[-1]
    assert said.startswith("  completed runs are kept; to rerun only the others, once your code is fixed: ")
    assert said.endswith(" resume_changed_inputs=true"), said
