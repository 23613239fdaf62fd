"""A sweep's job that ended without a result (submitit could not write it, or the job died): the line
the launcher says for it (hydra_plugins/align_lab_launcher/launcher.py unreturned)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from hydra_plugins.align_lab_launcher.job_ends import FAILED_RUN, said_in_log, unreturned

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


def folder(tmp_path: Path, status: str, error: str | None = None, steps: int = 0) -> Path:
    import json

    run = tmp_path / "0_reinforce_pp_seed0"
    run.mkdir()
    summary = {"status": status, "config_digest": "0123456789abcdef"} | ({"error": error} if error else {})
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "run.lock").write_text('{"pid": 1, "host": "elsewhere"}')  # a lock nobody holds
    (run / "metrics.jsonl").write_text("".join(f'{{"step": {i}}}\n' for i in range(1, steps + 1)))
    return run


def test_a_run_stopped_by_a_signal_says_its_own_line(tmp_path) -> None:
    """Twenty-second hunt, case 36: `kill -TERM` of a local sweep's run: "job 26434 ended without a result:
    align_lab: interrupted by SIGTERM; ..." (submitit's last line, the run's prefix in it)."""
    line = "interrupted by SIGTERM; resume from step 63 with: python -m align_lab -m seed=0,1"
    run = folder(tmp_path, "interrupted", line)
    assert unreturned(job("align_lab: " + line), RuntimeError("align_lab: " + line), run) == line


def test_a_killed_run_is_named_killed_at_its_last_step(tmp_path) -> None:
    """Twenty-second hunt, case 34: a run SIGKILLed (as by the out-of-memory killer): "job 20747 ended
    without a result: policy optimisation: 120/300 reward 1.858, ..." (a progress line read as the error)."""
    run = folder(tmp_path, "running", steps=144)
    said = unreturned(job(""), RuntimeError("policy optimisation: 120/300 reward 1.858"), run)
    assert said == (
        "its process ended without a word after 144 logged steps (killed: kill -9, or out of memory?); it "
        "resumes from its last checkpoint"
    )


def test_a_slurm_job_that_reached_its_time_limit_says_so_not_killed(tmp_path) -> None:
    """Twenty-fourth hunt, case 18: a Slurm job that reached its time limit as it built its stages (sacct
    TIMEOUT): "its process ended without a word after 0 logged steps (killed: kill -9, or out of memory?)"."""

    class SlurmJob(SimpleNamespace):  # submitit's, as the launcher holds it: its state is sacct's
        pass

    run = folder(tmp_path, "running")
    timed_out = SlurmJob(**vars(job("")), state="TIMEOUT")
    assert unreturned(timed_out, RuntimeError("no result"), run) == (
        "its process ended without a word after 0 logged steps (its job reached its Slurm time limit "
        "(TIMEOUT; hardware.resources.timeout_min)); it resumes from its last checkpoint"
    )
    assert "(killed: kill -9, or out of memory?)" in unreturned(
        SlurmJob(**vars(job("")), state="COMPLETED"), "", run
    )


def test_a_full_disk_named_anywhere_in_the_jobs_error_is_said_as_one(tmp_path) -> None:
    """A local sweep on a full disk (a race the full-disk test met in 2026-11-30's session): the job's log
    unwritten, submitit's error ending on its own "Submitted job triggered an exception" line, the ENOSPC
    above it: "job 31743 ended without a result: submitit ERROR (...) - Submitted job triggered ..."."""
    error = RuntimeError(
        "OSError: [Errno 28] No space left on device\nsubmitit ERROR - Submitted job triggered an exception"
    )
    assert unreturned(job(""), error).startswith(
        "no space left on the device holding /d/sw/.submitit/31699: "
    )
