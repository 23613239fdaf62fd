"""The state of every run of a study, from its manifest, run folders and submitit's job files."""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from align_lab.folder import holder
from align_lab.results.manifest import MANIFEST, load_manifest

TERMINAL_SLURM = {
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "COMPLETED",
}


@dataclass(frozen=True)
class RunState:
    num: int
    overrides: list[str]
    run_dir: str
    job_id: str | None
    # pending | running | done | interrupted (a signal stopped it, checkpointed) | failed | died (summary
    # says running, nobody holds run.lock)
    state: str
    detail: str  # the error of a failed run, the scheduler state otherwise


DIED = (
    "its process ended without finishing (nobody holds run.lock); rerun its command, or "
    "python -m align_lab.study resume, to continue from its last checkpoint"
)


def died_alone(run_dir: Path) -> str:
    """DIED for a run without a study manifest (a single run, a sweep run in process): `study resume`
    resubmits a manifest's jobs only, so the hint is the command that resumes this run."""
    from align_lab.rerun import resume_command

    return (
        "its process ended without finishing (nobody holds run.lock); to continue from its last "
        f"checkpoint: {resume_command(run_dir)}"
    )


def died(run_dir: Path, summary: dict | None) -> bool:
    """The summary says running but no live process holds the run's lock (SIGKILL, out of memory, a lost
    node). A folder without run.lock (written before the lock existed) is never called died."""
    from align_lab.folder import LOCK, holder

    return (
        bool(summary)
        and summary.get("status") == "running"
        and (run_dir / LOCK).exists()
        and holder(run_dir) is None
        # read again once the lock is free: a run that completed (and let go of it) since `summary` was
        # read is not died (twenty-second hunt, case 12: `died`, with a resume hint, for half a second)
        and (_summary(run_dir) or {}).get("status") == "running"
    )


def _summary(run_dir: Path) -> dict | None:
    """The run's summary.json; None when missing, torn, not a JSON object (a list: read as a mapping, a
    traceback) or holding a field of another type than align_lab writes (folder.py summary_problem)."""
    from align_lab.folder import read_summary

    try:
        return read_summary(run_dir / "summary.json")
    except (OSError, ValueError):  # torn, a folder (eighteenth hunt: a traceback), unreadable, or a field
        return None  # of another type than align_lab writes


def _job_result(run: dict) -> tuple[str, str] | None:
    """("success"|"error", text) from submitit's result pickle, if the job wrote one; a job whose run
    failed or was refused (Hydra's JobReturn, FAILED: its exception) is an "error" with the run's line
    (twenty-second hunt: a resumed run refused for a changed reward module read "job ended (FINISHED)
    before the run completed")."""
    if not run.get("job_id"):
        return None
    path = Path(run["submitit_folder"]) / f"{run['job_id']}_0_result.pkl"
    if not path.exists():
        return None
    with open(path, "rb") as f:
        outcome, value = pickle.load(f)
    error = getattr(value, "_return_value", None)
    if outcome == "success" and getattr(getattr(value, "status", None), "name", None) == "FAILED":
        from align_lab.study.outcome import last_line

        return "error", last_line(error) if isinstance(error, BaseException) else "failed"
    return outcome, str(value)


def sacct_state(run: dict) -> str:
    """Slurm's accounting state of the run's job (sacct, through submitit), e.g. "CANCELLED by 0"."""
    import submitit

    return submitit.SlurmJob(folder=run["submitit_folder"], job_id=run["job_id"]).state


def squeue_state(job_id: str) -> str:
    """The job's state in Slurm's queue (squeue), "" when it is not in the queue (squeue: "Invalid job
    id"); "UNKNOWN" when squeue fails otherwise (slurmctld busy): not a word that the job ended."""
    import subprocess

    queued = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    if queued.returncode != 0 and "invalid job id" not in queued.stderr.lower():
        return "UNKNOWN"
    return queued.stdout.strip()


def slurm_state(accounted: str, queued: Callable[[], str]) -> str:
    """A Slurm job's state: sacct's (`accounted`), unless it says the job ended (or has no record) while
    squeue (`queued()`, "" when not queued) still lists it. A job requeued after a preemption (USR2) is
    in the queue again before its new allocation starts, while sacct still reads the first allocation,
    CANCELLED: the queue is asked before a job is called ended (issue 59)."""
    if accounted.split()[0] not in TERMINAL_SLURM | {"UNKNOWN"}:
        return accounted
    in_queue = queued().split()
    # squeue -j also lists a job that ended within MinJobAge (COMPLETED, CANCELLED, ...): not queued
    if in_queue and in_queue[0] not in TERMINAL_SLURM:
        return in_queue[0]
    return "CANCELLED" if accounted == "UNKNOWN" else accounted  # UNKNOWN: cancelled while pending


def _scheduler_state(run: dict, cluster: str) -> str:
    """Slurm's state (slurm_state); for local jobs, whether the process lives."""
    if cluster == "slurm":
        return slurm_state(sacct_state(run), lambda: squeue_state(run["job_id"]))
    try:
        os.kill(int(run["job_id"]), 0)
        return "RUNNING"
    except (ProcessLookupError, ValueError):
        return "FINISHED"


def submitted_since(run: dict) -> bool:
    """The run's job (the manifest's) was submitted after its summary.json was last written."""
    if not run.get("job_id") or not run.get("submitit_folder"):
        return False
    try:
        submitted = (Path(run["submitit_folder"]) / f"{run['job_id']}_submitted.pkl").stat().st_mtime
        return submitted > (Path(run["run_dir"]) / "summary.json").stat().st_mtime
    except OSError:
        return False


def _ended(run: dict, cluster: str) -> bool:
    state = _scheduler_state(run, cluster).split()[0]
    return state in TERMINAL_SLURM or state == "FINISHED"


def run_state(run: dict, cluster: str) -> RunState:
    """Completed only on a completed summary; failed on an error, or on a job that ended without one."""
    summary = _summary(Path(run["run_dir"]))
    make = lambda state, detail: RunState(  # noqa: E731
        run["num"], run["overrides"], run["run_dir"], run.get("job_id"), state, detail
    )
    if summary and summary.get("status") == "completed":
        return make("done", "completed")
    result = _job_result(run)
    if summary and not result and submitted_since(run) and not _ended(run, cluster):
        # its summary is an earlier segment's: a run submitted again, its job not started (or its run
        # not yet begun), is pending (twenty-fourth hunt, case 34: `interrupted`, and resumed twice)
        return make("pending", f"job {run['job_id']} submitted again: it resumes from its checkpoint")
    if summary and summary.get("status") == "failed":
        return make("failed", summary.get("error", "failed"))
    if result and result[0] == "error":
        return make("failed", result[1].strip().splitlines()[-1])
    if summary and summary.get("status") == "interrupted":  # the run's own line: where, and how to resume
        return make("interrupted", summary.get("error", "interrupted"))
    if not run.get("job_id"):
        return make("died", DIED) if died(Path(run["run_dir"]), summary) else make("pending", "not submitted")
    state = _scheduler_state(run, cluster).split()[0]  # sacct says e.g. "CANCELLED by 0"
    ended = state in TERMINAL_SLURM or state == "FINISHED"  # and, on Slurm, not in the queue
    if summary and summary.get("status") == "preempted":
        if ended:
            return make("failed", f"preempted; job {run['job_id']} was not requeued ({state})")
        # requeued: in the queue (PENDING, REQUEUED, the old allocation COMPLETING) until it runs again
        return make("running" if state == "RUNNING" else "pending", state)
    if ended and died(Path(run["run_dir"]), summary):  # killed (kill -9, out of memory) mid-run: resumable
        return make("died", DIED)  # (twenty-third hunt, case 9: "job ended (FINISHED)" read as a normal end)
    if ended and cluster == "local" and (held := holder(Path(run["run_dir"]))):  # its controller killed
        return make("running", f"job {run['job_id']} ended, its run trains on ({held})")  # (24th hunt, 14)
    # stopped waiting for its slot (twenty-third hunt, 55), or a Slurm job cancelled before its run began
    # (twenty-sixth hunt, case 45: `failed`, where nothing failed)
    if ended and result and not Path(run["run_dir"]).exists():  # its job returned: the run ran, its folder
        # was deleted since ("job ended before the run started": fifth hunt of 2026-12-04)
        return make(
            "interrupted", f"job {run['job_id']} ran it, its run folder is gone: resume runs it again"
        )
    if ended and not summary and (cluster == "local" or state == "CANCELLED"):
        said = "" if cluster == "local" else f" ({state})"
        return make(
            "interrupted", f"job {run['job_id']} ended{said} before the run started; resume starts it"
        )
    if ended:  # the scheduler's word first: it says why
        return make("failed", f"job {run['job_id']} ended ({state}) before the run completed")
    requeued = state in ("PENDING", "REQUEUED", "REQUEUE_HOLD")
    if not requeued and died(Path(run["run_dir"]), summary):  # its process gone, the job not ended
        return make("died", DIED)
    if state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "UNKNOWN") and not summary:
        return make("pending", state)
    return make("running", state)


def folder_state(num: int, run_dir: Path) -> RunState:
    """A run folder's state from its summary and lock alone (a sweep run in process has no manifest)."""

    summary, path = _summary(run_dir) or {}, run_dir / "summary.json"
    damaged = not summary and (path.exists() or path.is_symlink())
    try:
        import yaml

        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, ValueError):
        overrides = []
    make = lambda state, detail: RunState(num, overrides, str(run_dir), None, state, detail)  # noqa: E731
    status = summary.get("status")
    if damaged:
        kind = " (a folder, not a file)" if path.is_dir() else ""
        return make("failed", f"{path}: cannot be read as a run summary{kind}")
    if status == "completed":
        return make("done", "completed")
    if status == "interrupted":
        return make("interrupted", summary.get("error", status))
    if status in ("failed", "preempted"):
        return make("failed", summary.get("error", status))
    if died(run_dir, summary):
        return make("died", died_alone(run_dir))
    if status == "running":
        return make("running", holder(run_dir) or "running")
    return make("pending", "not started")


def run_folders(root: Path) -> list[Path]:
    """root itself when it is a run folder, else the run folders below it (not searched inside)."""
    is_run = lambda p: (p / "summary.json").is_file() or (p / ".hydra" / "config.yaml").is_file()  # noqa: E731
    if is_run(root):
        return [root]
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if is_run(here):
            found.append(here)
            dirnames[:] = []
        else:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "compare")
    return sorted(found)


def study_states(study_dir: Path) -> list[RunState]:
    """From the study manifest (submitit sweeps); without one, from the run folders below study_dir."""
    if not (Path(study_dir) / MANIFEST).exists():
        folders = run_folders(Path(study_dir))
        if not folders:
            load_manifest(study_dir)  # raises: neither a sweep folder nor a run folder
        return [folder_state(i, d) for i, d in enumerate(folders)]
    manifest = load_manifest(study_dir)
    states = [run_state(run, manifest["cluster"]) for run in manifest["runs"]]
    if manifest.get("moved_from"):  # each run's resume command names the folder the sweep is in now
        from align_lab.rerun import where_the_sweep_is

        states = [dataclasses.replace(s, detail=where_the_sweep_is(s.detail, study_dir)) for s in states]
    return [
        dataclasses.replace(s, detail=died_in_study(study_dir)) if s.detail == DIED else s for s in states
    ]


def died_in_study(study_dir: Path) -> str:
    """DIED with the command that resubmits it, this study's folder named and quoted."""
    from align_lab.rerun import shell_command

    resume = shell_command("align_lab.study", "resume", Path(study_dir))
    return (
        "its process ended without finishing (nobody holds run.lock); to continue from its last "
        f"checkpoint: {resume}"
    )
