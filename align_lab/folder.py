"""A run folder belongs to one run: a lock held for the run's life, and no files align_lab did not write.

The lock is an flock on the run folder itself and on `<run folder>/run.lock`, which holds the holder's pid
and host: deleting run.lock frees nothing. The OS frees both as the holder's process ends however it ends,
so "the summary says running and nobody holds the lock" means the run's process died. fcntl rather than
filelock: the holder's pid lives in the lock file, and a probe (`holder`) neither makes nor deletes it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import time
from pathlib import Path

from align_lab.file_kinds import special, special_inside
from align_lab.user_fds import hold, let_go
from align_lab.value_checks import ConfigError

LOCK = "run.lock"
SUMMARY = "summary.json"  # written by run/run_folder.py RunFolder alone
PROBES_FILE = "probes.json"  # a run's scorers' last rows and scores as it ended (run/start.py leave)
# what align_lab, Hydra, W&B, compare write in a run folder; a name starting "." is never counted (.hydra/)
OURS = {
    LOCK,
    SUMMARY,
    PROBES_FILE,
    "metrics.jsonl",
    "eval_samples.jsonl",
    "config.resolved.yaml",
    "checkpoints",
    "wandb",
    "wandb_run_id.txt",
    "compare",
}
STATUSES = {"running", "completed", "failed", "interrupted", "preempted"}
# the rest a run writes there, which foreign_files never counts: Hydra's log and the run's .hydra/ (a
# folder at any of these trained, then failed at its first log line or at the .hydra/ it writes)
WRITTEN = {"app.log", ".hydra", ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"}
FOLDERS = {"checkpoints", "wandb", "compare", ".hydra"}  # of OURS and WRITTEN, the folders; the others files
# summary.json's fields that its readers act on, with the types align_lab writes (None: unset); a summary
# whose JSON parses but holds another type there is damaged as a torn one is (issue 73)
NUMBER = (int, float)
SUMMARY_FIELDS = {
    "status": str,
    "error": str,
    "algo": str,
    "seed": int,
    "config_digest": str,
    "same_run": str,
    "train_ends": dict,
    "names": dict,
    "started": NUMBER,
    "checkpoint": str,
    "threads": int,
    "stage_threads": int,
    "sampling_threads": int,
    "segment_threads": list,
    "segments_s": list,
    "stopped": dict,
    "inputs": dict,
    "changed_inputs": list,
    "defaults_from": dict,
    "pythonpath": str,
}
TYPE_NAMES = {str: "a string", int: "an integer", dict: "a mapping", list: "a list", NUMBER: "a number"}


def summary_problem(data) -> str | None:
    """Why parsed summary.json `data` is not a run's summary (not a mapping, or a field of another type than
    align_lab writes: `status is 5, not a string`), or None."""
    if not isinstance(data, dict):
        return f"not a mapping (a {type(data).__name__})"
    for key, kind in SUMMARY_FIELDS.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not str):
            return f"{key} is {json.dumps(value)[:40]}, not {TYPE_NAMES[kind]}"
    seconds = [
        data.get("started"),
        *(data.get("segments_s") or []),
    ]  # ninth hunt: NaN made "completed in nan s"
    if (
        any(
            s is not None and not (isinstance(s, NUMBER) and not isinstance(s, bool) and 0 <= s < math.inf)
            for s in seconds
        )
        or sum(s for s in seconds[1:] if isinstance(s, NUMBER)) == math.inf
    ):  # tenth hunt: 1e308 + 1e308
        return f"started or segments_s is {json.dumps(seconds)[:60]}, not a time in seconds"
    return None


def read_summary(path: Path) -> dict:
    """A summary.json as a run's summary; ValueError (torn, not JSON, or summary_problem's why) else,
    OSError where it cannot be read."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    problem = summary_problem(data)
    if problem:
        raise ValueError(problem)
    return data


def changed_inputs_said(summary: dict) -> str | None:
    """`resumed on changed inputs at step 12 (task.path), ...` for a run that went on with some of its
    inputs changed (resume_changed_inputs=true: run/start.py inputs_record), or None: its end line and
    compare say so, not only the resume's warning in its log (twenty-third hunt's notes)."""
    said = [
        f"at step {c.get('step')} ({', '.join(map(str, c.get('inputs') or {}))})"
        for c in summary.get("changed_inputs") or []
        if isinstance(c, dict)
    ]
    if not said:
        return None
    return f"resumed on changed inputs {'; '.join(said)}: it trained on two versions of them"


def check_kinds(run_dir: Path) -> None:
    """Refuses (one line) a folder where align_lab writes a file (`metrics.jsonl/`), a file where it keeps a
    folder (`checkpoints`): the run would train, then fail writing it (issue 73); a link where it writes a
    file (`app.log -> q.jsonl`: its log appended to the user's data); a named pipe (file_kinds.py)."""
    inside = [f"checkpoints/{p.name}" for p in special_inside(run_dir / "checkpoints")]  # `last` (c70)
    for name in [*inside, *sorted(OURS | WRITTEN)]:
        path = run_dir / name
        if name in FOLDERS and (path.is_file() or path.is_symlink() and not path.is_dir()):
            kind, wants = "a file", "keeps a folder"
        elif name not in FOLDERS and path.is_dir():
            kind, wants = "a folder", "writes a file"
        elif name not in FOLDERS and path.is_symlink():  # the run would write into what it points at
            kind, wants = f"a link (to {os.readlink(path)})", "writes a file"
        elif name not in FOLDERS and path.is_file() and path.stat().st_nlink > 1:  # `ln q.jsonl app.log`
            kind, wants = f"a hard link ({path.stat().st_nlink} names of one file)", "writes a file"
        elif name not in FOLDERS and (kind := special(path)):  # metrics.jsonl a pipe: the run hung (c71)
            wants = "writes a file"
        else:
            continue
        raise ConfigError(
            f"hydra.run.dir={run_dir}: {path} is {kind} where align_lab {wants}; move it away, or choose "
            "another hydra.run.dir"
        )


def foreign_files(run_dir: Path) -> list[str]:
    """Names in run_dir that align_lab did not write (its own summary.json has a status and a digest)."""
    if not run_dir.is_dir():
        return []
    odd = sorted(
        p.name
        for p in run_dir.iterdir()
        if not (p.name.startswith(".") or p.name in OURS or p.suffix in (".log", ".tmp"))
    )
    summary = run_dir / SUMMARY
    if summary.is_file():
        try:
            data = read_summary(summary)
        except (OSError, ValueError) as e:
            odd.append(f"{DAMAGED} ({str(e).splitlines()[0][:80] if str(e) else type(e).__name__})")
            return odd
        if not (data and data.get("status") in STATUSES and "config_digest" in data):
            odd.append("summary.json (not one align_lab wrote)")
    return odd


DAMAGED = "summary.json damaged"


def check_owned(run_dir: Path) -> None:
    """Refuses (one line) a folder holding files align_lab did not write: it is not a run folder."""
    odd = foreign_files(run_dir)
    if len(odd) == 1 and odd[0].startswith(DAMAGED):  # a run's own summary, torn: its checkpoints resume
        raise ConfigError(
            f"hydra.run.dir={run_dir}: its {odd[0]}; move {run_dir / SUMMARY} away to resume the run from "
            "its checkpoints (a completed run's results are then written again), or choose another "
            "hydra.run.dir"
        )
    if odd:
        shown = ", ".join(odd[:3]) + (f" and {len(odd) - 3} more" if len(odd) > 3 else "")
        raise ConfigError(
            f"hydra.run.dir={run_dir}: holds files align_lab did not write ({shown}); "
            "choose an empty or new folder, or a run folder of align_lab's"
        )


def holder(run_dir: Path) -> str | None:
    """Who holds run_dir's lock ("pid 123 on host"), or None when nobody does. A probe: takes a shared lock
    for an instant, so it never blocks a run (`claim` retries briefly). The folder's own lock first (a
    deleted run.lock does not free it), then run.lock's (a run of an align_lab that locked the file only)."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(run_dir, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        return _read_holder(path) or _lock_owner(run_dir) or "another process"
    except OSError:
        pass  # a file system without folder locks: run.lock's alone
    finally:
        os.close(fd)
    try:
        f = open(path)  # noqa: SIM115
    except OSError:
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(f.read()) or "another process"
        except OSError:
            return None
        fcntl.flock(f, fcntl.LOCK_UN)
        return None


def _read_holder(path: Path) -> str:
    try:
        return _describe(path.read_text())
    except OSError:
        return ""


def _lock_owner(path: Path) -> str:
    """The pid that holds an flock on `path`, from the kernel's /proc/locks (Linux), for a run whose
    run.lock was deleted: "pid N on <this host>"; "" where the kernel does not say (another OS, NFS)."""
    try:
        st = os.stat(path)
        inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return ""
    for fields in (line.split() for line in lines):
        # "1: FLOCK  ADVISORY  WRITE <pid> <major>:<minor>:<inode> 0 EOF"; waiters' lines have "->"
        if "->" not in fields and fields[1:2] == ["FLOCK"] and fields[5:6] == [inode]:
            return f"pid {fields[4]} on {socket.gethostname()}"
    return ""


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']}"
    except (ValueError, KeyError, TypeError):
        return ""


class RunLock:
    """The run's lock, held from `claim` until `release` (or the process's end): an flock on the run
    folder itself (`folder`, a descriptor; None where the file system has no folder locks) and on its
    run.lock (`file`), which holds the holder's pid and host for the message of the one refused."""

    def __init__(self, run_dir: Path, file, folder: int | None = None) -> None:
        self.run_dir = run_dir
        self._file = file
        self._folder = folder
        self.fds = [fd for fd in (file and file.fileno(), folder) if fd is not None]
        hold("run folder's lock", *self.fds)  # a call of the user's code may not close them (user_fds.py)

    def release(self) -> None:
        let_go(*self.fds)
        for fd in self.fds:  # one a call of the user's closed in C was said then (user_fds.py)
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            _ = self._file is None or self._file.close()
            _ = self._folder is None or os.close(self._folder)
        self._file = self._folder = None


def _flock(target, run_dir: Path, wait_s: float) -> bool:
    """An exclusive flock on `target` (a file or a descriptor), retried for `wait_s`; False where the file
    system refuses it (no folder locks); a one-line ConfigError naming the holder when it is held."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(target, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            who = _read_holder(run_dir / LOCK) or _lock_owner(run_dir) or "another process"
            raise ConfigError(in_use(run_dir, who)) from None
        except OSError:
            return False


def claim(run_dir: Path, wait_s: float = 1.0) -> RunLock:
    """Takes run_dir's lock (making the folder), or refuses in one line naming the holder. Retries for
    `wait_s`, so a `holder` probe that holds the lock for an instant never refuses a run. The folder's own
    lock is what counts: deleting run.lock while a run holds the folder lets no second run in."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    folder = os.open(run_dir, os.O_RDONLY)
    try:
        if not _flock(folder, run_dir, wait_s):
            os.close(folder)
            folder = None
    except ConfigError:
        os.close(folder)
        raise
    f = open(run_dir / LOCK, "a+")  # noqa: SIM115 - held for the run's life; "a+": never truncate
    try:
        _flock(f, run_dir, wait_s)
    except ConfigError:
        f.close()
        RunLock(run_dir, None, folder).release()
        raise
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    f.flush()
    return RunLock(run_dir, f, folder)


def in_use(run_dir: Path, who: str) -> str:
    return f"hydra.run.dir={run_dir}: in use by a run of {who}; wait for it to end, or choose another folder"
