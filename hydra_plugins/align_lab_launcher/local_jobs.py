"""A local sweep's jobs (submitit's local executor) as the launcher's wait sees them: their runs (the
processes each job's controller started, read from /proc) stopped, killed, and how each ended."""

from __future__ import annotations

import time
from pathlib import Path


def started_by(pid: int) -> list[int]:
    """The processes `pid` started (a local job's controller: its tasks, the runs), from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(pid):  # its parent
                children.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return children


def ignores_sigint(pid: int) -> bool:
    import signal

    try:
        line = next(
            x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("SigIgn:")
        )
    except (OSError, StopIteration):
        return False
    return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)


def interrupted_runs(pid: int) -> None:
    """SIGINT to the runs of the local job whose controller is `pid`; SIGKILL to those that ignore it."""
    import os
    import signal

    for task in started_by(pid):
        try:
            os.kill(task, signal.SIGKILL if ignores_sigint(task) else signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            pass


def killed(pid: int) -> None:
    """SIGKILL to a local job's runs and its controller."""
    import os
    import signal

    for each in [*started_by(pid), pid]:
        try:
            os.kill(each, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def completed_run(run: dict) -> bool:
    from align_lab.folder import read_summary

    try:
        return read_summary(Path(run["run_dir"]) / "summary.json").get("status") == "completed"
    except (OSError, ValueError):
        return False


def ended(jobs: list, wait_s: float | None) -> list:
    """Waits up to `wait_s` (None: as long as it takes) for `jobs` to end; those still running."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while any(not job.done() for job in jobs) and (deadline is None or time.monotonic() < deadline):
        time.sleep(0.2)
    return [job for job in jobs if not job.done()]


def found(run: dict) -> str:
    """A completed run's result lines (run/summary.py result_lines) after its label; `completed` alone
    where its summary.json cannot be read."""
    from align_lab.folder import read_summary
    from align_lab.run.summary import result_lines

    try:
        summary = read_summary(Path(run["run_dir"]) / "summary.json")
    except (OSError, ValueError):
        return "completed"
    first, *rest = result_lines(summary, Path(run["run_dir"]))
    return "\n".join(
        [first.removeprefix(f"align_lab: {summary.get('algo')} seed {summary.get('seed')} "), *rest]
    )
