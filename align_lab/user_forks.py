"""The processes the user's code forks and leaves running as the command ends (a reward's fork
ProcessPoolExecutor or Pool kept across calls): orphaned at the run's os._exit end, for good, they are
ended with the command and named. Imports nothing of align_lab."""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def forks_left() -> list[int]:
    """This process's children that are forks of it (its command line: not a program they ran), alive."""
    me = os.getpid()
    try:
        mine = _command_line(me)
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:  # no /proc: nothing known
        return []
    children: set[int] = set()
    for task in tasks:
        try:
            with open(f"/proc/{me}/task/{task}/children") as f:
                children |= {int(pid) for pid in f.read().split()}
        except OSError:
            continue
    return sorted(pid for pid in children if _command_line(pid) == mine)


def _command_line(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() or None  # a zombie's is empty
    except OSError:
        return None


def end_forks(wait_s: float = 2.0) -> list[int]:
    """Ends the forks the user's code left running as the command ends (a reward's fork ProcessPoolExecutor
    or Pool kept across calls: orphaned at the run's os._exit end, 320 MB each, for good; twenty-fourth
    hunt, case 50): SIGTERM, then SIGKILL to those still there after `wait_s`; their pids, said once."""
    import time

    left = forks_left()
    if not left:
        return []
    _send(left, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while set(forks_left()) & set(left) and time.monotonic() < deadline:
        time.sleep(0.05)
    _send(sorted(set(forks_left()) & set(left)), signal.SIGKILL)
    print(
        f"align_lab: warning: the command ends processes {', '.join(map(str, left))}, which code it ran "
        "forked and left running (a reward's ProcessPoolExecutor or Pool kept across calls?); end them "
        "in your code",
        file=sys.stderr,
        flush=True,
    )
    return left


def _send(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)
