"""A sweep's job that ended without a result (submitit could not write it, or the job died): the line
the launcher says for it (hydra_plugins/align_lab_launcher/launcher.py unreturned)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from hydra_plugins.align_lab_launcher.launcher import FAILED_RUN, said_in_log, unreturned

ENOSPC = "submitit ERROR - Submitted job triggered an exception\nOSError: [Errno 28] No space left on device"


def job(log: str | None) -> SimpleNamespace:
    return SimpleNamespace(
        job_id="31699", paths=SimpleNamespace(folder=Path("/d/sw/.submitit/31699")), stderr=lambda: log
    )


def test_the_runs_own_line_from_the_jobs_log_is_said() -> None:
    line = "no space left on the device writing /d/x.pt.tmp; free space"
    log = f"policy optimisation: 1/3\n{FAILED_RUN}{line}\nJob completed successfully"
    assert unreturned(job(log), RuntimeError(ENOSPC)) == line


def test_a_full_disk_that_kept_the_line_out_of_the_log_names_the_jobs_folder() -> None:
    """Twenty-first hunt, case 22: "RuntimeError: job 31699 ended without a result: OSError: [Errno 28] No
    space left on device" named no disk."""
    said = unreturned(job(""), RuntimeError(ENOSPC))
    assert (
        said
        == "no space left on the device holding /d/sw/.submitit/31699: job 31699 could not write its result "
        "there"
    )
    assert unreturned(job(None), RuntimeError(ENOSPC)) == said  # no log file at all


def test_any_other_end_is_submitits_last_line() -> None:
    said = unreturned(
        job(""),
        RuntimeError("Job 31699 (task: 0) with path ...\nhas not produced any output (state: KILLED)"),
    )
    assert said == "job 31699 ended without a result: has not produced any output (state: KILLED)"


def test_a_failed_run_says_its_line_in_the_jobs_log(capsys) -> None:
    from align_lab.run.summary import RunStopped

    said_in_log(RunStopped("no space left on the device writing /d/x.pt.tmp"))
    assert capsys.readouterr().err == f"{FAILED_RUN}no space left on the device writing /d/x.pt.tmp\n"
