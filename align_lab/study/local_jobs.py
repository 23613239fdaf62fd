"""A local sweep's jobs (submitit's local executor) as the launcher's wait and `study resume --wait` see
them: their runs (the processes each job's controller started, read from /proc) stopped, killed, and how
each ended."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# what reaches a whole process group: a terminal's Ctrl-C and hangup, `kill -- -<pgid>`, a service's stop
TO_THE_GROUP = {signal.SIGINT, signal.SIGHUP, signal.SIGTERM}


@contextmanager
def deaf_to_the_group() -> Iterator[None]:
    """While local jobs are submitted: SIGINT, SIGHUP and SIGTERM blocked, which each job's controller
    (submitit's) keeps across exec, and its run from it. A terminal's Ctrl-C reaches the whole process
    group: each controller printed its KeyboardInterrupt traceback and killed its run a second later,
    mid-step (twenty-first hunt, case 9); the terminal closed, SIGHUP ended each controller, and the
    command, which finds a job's run as its controller's child, stopped none: they trained on, orphaned,
    "stopped"; a controller passes SIGTERM on to its run, a second signal to it beside the command's.
    A signal that comes meanwhile waits, pending, for the block's end."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, TO_THE_GROUP)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


@contextmanager
def detached_output() -> Iterator[None]:
    """While local jobs are submitted by a command that does not wait for them: its stdout and stderr on
    /dev/null, which each job's controller keeps (its run writes to `.submitit/`): `cmd | grep` blocked
    until every run had ended, though the command said it was not waiting (twenty-second hunt, case 33)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def sheltered() -> None:
    """A local job's run, as it starts: in a process group of its own, out of the terminal's reach, with
    SIGINT back (blocked since its submission; ignored where the command was started so: `nohup ... &`),
    SIGHUP and SIGTERM unblocked. The command alone stops it, with one SIGINT (interrupted_runs): the
    terminal's Ctrl-C and the command's made two, and a second stops a run at once, its step lost."""
    try:
        os.setpgid(0, 0)
    except PermissionError:  # a process group's or session's leader already
        pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, TO_THE_GROUP)


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
    try:
        line = next(
            x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("SigIgn:")
        )
    except (OSError, StopIteration):
        return False
    return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)


def interrupted_runs(pid: int, told: set[int]) -> None:
    """SIGINT to the runs of the local job whose controller is `pid` not `told` yet (then told); SIGKILL to
    those that ignore it (their own code's doing, or one not yet sheltered in a command started with
    SIGINT ignored)."""
    for task in set(started_by(pid)) - told:
        told.add(task)
        try:
            os.kill(task, signal.SIGKILL if ignores_sigint(task) else signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            pass


def killed(pid: int) -> None:
    """SIGKILL to a local job's runs and its controller."""
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


def ended(jobs: list, wait_s: float | None, each=None) -> list:
    """Waits up to `wait_s` (None: as long as it takes) for `jobs` to end, calling `each` as it polls (a
    job's run that starts meanwhile told to stop: its controller had only just started it, twenty-second
    hunt, case 44); those still running."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while any(not job.done() for job in jobs) and (deadline is None or time.monotonic() < deadline):
        if each is not None:
            each()
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


def lost_runs(pairs: list) -> list[Path]:
    """The run folders of (job, manifest entry) `pairs` whose job has ended while its run trains on, held
    by a process of this machine: its controller was killed (twenty-third hunt, case 39: the command's
    stop missed it, orphaned, and said "1 unfinished runs stopped")."""
    from align_lab.folder import LOCK, holder

    lost = []
    for job, run in pairs:
        run_dir = Path(run["run_dir"])
        if job.done() and holder(run_dir) is not None and lock_pid(run_dir / LOCK) is not None:
            lost.append(run_dir)
    return lost


def lock_pid(path: Path) -> int | None:
    """The pid in a run.lock written on this machine, else None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    here = isinstance(record, dict) and record.get("host") == socket.gethostname()
    return record["pid"] if here and isinstance(record.get("pid"), int) else None


def stop_run(run_dir: Path, again: bool = False) -> None:
    """SIGINT to the run holding `run_dir` (SIGKILL where it ignores SIGINT, or `again` ran out)."""
    from align_lab.folder import LOCK

    pid = lock_pid(run_dir / LOCK)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL if again or ignores_sigint(pid) else signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            pass


def stopped_jobs(jobs: list, name: str, lost: list[Path] = ()) -> list:
    """After the signal `name`, the runs of local `jobs` (and the `lost` runs, whose jobs ended without
    them) told to stop at their steps' end, said at once (a real model's step takes a minute; each run's
    own line is in its job's log); the signal again: told again (now), and any still going 10 s later
    killed. Returns the jobs that had not ended even then."""
    from align_lab.folder import holder
    from align_lab.train.preemption import Interrupted, Interruption

    told: set[int] = set()  # the runs told; a job's run that starts later is told as it appears
    tell = lambda: [interrupted_runs(int(job.job_id), told) for job in jobs]  # noqa: E731
    tell()
    for run_dir in lost:
        stop_run(run_dir)
    n = len(jobs) + len(lost)
    runs = "1 unfinished run stops once its" if n == 1 else f"{n} unfinished runs stop once their"
    said = f"{runs} steps under way are done and checkpointed"
    print(f"align_lab: {name}: {said} ({name} again: they stop now)", file=sys.stderr, flush=True)
    going = lambda: [d for d in lost if holder(d) is not None]  # noqa: E731
    try:
        with Interruption():
            left = ended(jobs, None, tell)
            while going():
                time.sleep(0.2)
            return left
    except Interrupted:
        for job in jobs:
            interrupted_runs(int(job.job_id), set())
        for job in ended(jobs, 10):
            killed(int(job.job_id))
        for run_dir in going():
            stop_run(run_dir, again=True)
        return ended(jobs, 10)
