"""How a sweep's job ended, where the job cannot say it: its run's line kept in the job's log, or read
from the run's folder (the launcher's `_result`, for a job that ended without a result)."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

from align_lab.study.outcome import last_line

FAILED_RUN = "align_lab: the run failed: "


def said_in_log(error) -> None:
    """A failed run's line in its job's log too (stderr), where the launcher finds it when the job
    cannot return it: its result file unwritten on a full disk (twenty-first hunt, case 22)."""
    try:
        print(f"{FAILED_RUN}{last_line(error)}", file=sys.stderr, flush=True)
    except OSError:
        pass


def unreturned(job, error: Exception, run_dir: Path | None = None) -> str:
    """Why a job ended without a result: its run's own line from the job's log; else the run's folder's
    word (its summary's line; a run whose process ended without one: killed); else a full disk named
    (was "RuntimeError: job 31699 ended without a result: OSError: [Errno 28] ...": which disk?); else
    submitit's last line (twenty-second hunt, case 34: a progress line read as the error)."""
    try:
        log = job.stderr() or ""
    except OSError:
        log = ""
    said = [line.removeprefix(FAILED_RUN) for line in log.splitlines() if line.startswith(FAILED_RUN)]
    if said:
        return said[-1]
    folder = run_dir and folders_word(run_dir, slurms_word(job))
    if folder:
        return folder
    text = last_line(str(error))
    if os.strerror(errno.ENOSPC) in str(error):  # anywhere in it: submitit's own line may come last
        where = job.paths.folder
        return (
            f"no space left on the device holding {where}: job {job.job_id} could not write its result there"
        )
    return f"job {job.job_id} ended without a result: {text}"


# what Slurm's end state of a job says of a run that ended without a word (twenty-fourth hunt, case 18: a
# job at its time limit was "killed: kill -9, or out of memory?")
SLURM_ENDS = {
    "TIMEOUT": "its job reached its Slurm time limit (TIMEOUT; hardware.resources.timeout_min)",
    "OUT_OF_MEMORY": "its job ran out of memory (Slurm OUT_OF_MEMORY; hardware.resources.mem_gb_per_model)",
    "NODE_FAIL": "its node failed (Slurm NODE_FAIL)",
    "PREEMPTED": "its job was preempted and not requeued (Slurm PREEMPTED)",
    "CANCELLED": "its job was cancelled (Slurm CANCELLED) before it could stop",
}
KILLED = "killed: kill -9, or out of memory?"


def slurms_word(job) -> str:
    """Why a Slurm job's run ended without a word, as Slurm's end state says (SLURM_ENDS), else KILLED."""
    try:
        state = str(job.state).split()[0] if type(job).__name__ == "SlurmJob" else ""
    except Exception:  # noqa: BLE001 - sacct unanswered: no word from Slurm
        state = ""
    return SLURM_ENDS.get(state, KILLED)


def folders_word(run_dir: Path, why: str = KILLED) -> str | None:
    """What the run's folder says of its end: a stopped or failed run's line (summary.json `error`); a
    run whose process ended with its summary saying running, nobody holding its lock: ended by `why` (kill
    -9, out of memory; what Slurm says) at its last logged step, resumable from its last checkpoint. None:
    nothing to say."""
    from align_lab.folder import read_summary
    from align_lab.study.status import died

    try:
        summary = read_summary(run_dir / "summary.json")
    except (OSError, ValueError):
        return None
    if summary.get("status") in ("interrupted", "failed", "preempted") and summary.get("error"):
        return str(summary["error"]).removeprefix("error: ")
    if died(run_dir, summary):
        try:
            steps = sum(1 for line in (run_dir / "metrics.jsonl").open() if line.strip())
        except OSError:
            steps = 0
        said = f"its process ended without a word after {steps} logged steps ({why})"
        return f"{said}; it resumes from its last checkpoint"
    return None


def said_its_end(run_dir: Path) -> bool:
    """The run's folder says it ended without completing (stopped, failed, killed), so its job, ended, leaves
    no result file to wait for; a preempted run's job may be requeued: not said here."""
    from align_lab.folder import read_summary

    try:
        preempted = read_summary(run_dir / "summary.json").get("status") == "preempted"
    except (OSError, ValueError):
        return False
    return not preempted and folders_word(run_dir) is not None


def half_written(folder: Path, before: set[Path]) -> str:
    """The pickle submitit was writing in `folder` when the disk filled (the newest it left), removed with
    any other it left; the folder where it left none (twenty-third hunt, case 24: a truncated pickle left,
    the line naming the folder)."""
    left = sorted(set(folder.glob("*.pkl")) - before, key=lambda p: p.stat().st_mtime)
    for path in left:
        path.unlink(missing_ok=True)
    return str(left[-1] if left else folder)
