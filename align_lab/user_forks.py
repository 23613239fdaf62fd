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
    mine = _command_line(os.getpid())
    return [pid for pid in _children() if mine is not None and _command_line(pid) == mine]


def _children() -> list[int]:
    """This process's children, from /proc (none where it has none)."""
    me, children = os.getpid(), set()
    try:
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{me}/task/{task}/children") as f:
                children |= {int(pid) for pid in f.read().split()}
        except OSError:
            continue
    return sorted(children)


# what runs beside a run that is the platform's or its libraries': its watcher (hang_watch), a sweep's job
# controllers, spawned ranks and their resource tracker, W&B's service, vLLM's workers
OURS = (b"align_lab", b"submitit", b"multiprocessing", b"wandb", b"vllm", b"torch")


def programs_left() -> list[tuple[int, str]]:
    """The programs the user's code started and left running (a `sleep`, a scorer's server), alive as the
    command ends: their pids and command lines. Not forks (end_forks ends those), not the platform's."""
    mine = _command_line(os.getpid())
    left = []
    for pid in _children():
        line = _command_line(pid)
        if line is None or line == mine or any(name in line for name in OURS):
            continue
        left.append((pid, line.replace(b"\0", b" ").decode(errors="replace").strip()))
    return left


def say_programs_left() -> None:
    """One line naming the programs the user's code left running: they hold the command's output open
    (`... | tee log` waited 5 minutes for a reward's `sleep 300` after the run completed, no line:
    thirty-second hunt, case 54); not ended, as a server of theirs may be meant to outlive the run."""
    left = programs_left()
    if left:
        named = ", ".join(f"{pid} ({line[:60]})" for pid, line in left)
        holds = any(_holds_output(pid) for pid, _ in left)
        print(
            f"align_lab: warning: the command ends leaving process {named} running, which code it ran "
            "started (a reward, verifier or environment of yours?)"
            + ("; it holds this command's output open until it ends" if holds else "")
            + ": end it in your code",
            file=sys.stderr,
            flush=True,
        )


def _holds_output(pid: int) -> bool:
    """`pid` has this process's stdout or stderr open (a pipe's reader waits for it to end too)."""
    for fd in (1, 2):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == os.readlink(f"/proc/self/fd/{fd}"):
                return True
        except OSError:
            continue
    return False


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
