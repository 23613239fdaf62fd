"""The one line for a call of the user's code stuck in C past its bound (user_timeouts.py): a regex
backtracking for ever holds Python's lock, so no handler, thread or `finally` of the run's process runs;
faulthandler's C thread writes where it is into a file and ends the process (exit status 1). This small
process, started beside the run's with only the standard library (`python -I -S hang_watch.py <file>`),
reads the bounded call it was told of on its stdin, one JSON line an arming (`{}`: the call returned);
once the run's process has gone (its stdin ends) in a call, it writes the run's summary.json `failed`
with the line and says the line, where a 25-line dump with no key and a summary left `running` was all
(twenty-eighth hunt, case 3): stuck (the file holds faulthandler's timeout traceback), crashed (its fatal
signal's: os.abort, a segfault in C) or ended with no word at all (a SIGKILL). Imports nothing of
align_lab."""

from __future__ import annotations

import json
import os
import re
import sys

FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')


def user_frame(dump: str, library: list[str]) -> str:
    """`file:line` of the innermost frame of the dump that is the user's (not under `library`: the
    interpreter's own folders and align_lab's), else the innermost frame; "an unknown line" for none."""
    frames = [(m["file"], m["line"]) for m in map(FRAME.match, dump.splitlines()) if m]
    for file, line in frames:  # faulthandler lists the most recent call first
        if not file.startswith("<") and not any(file.startswith(folder) for folder in library):
            return f"{file}:{line}"
    return f"{frames[0][0]}:{frames[0][1]}" if frames else "an unknown line"


def stuck_line(call: dict, where: str) -> str:
    """The run's one line, as a call stopped at its bound says it (value_checks.timed_out), naming why it
    took longer to stop."""
    key = call["key"]
    bound = f"{key}={call['timeout_s']:g} s" if key else f"{call['timeout_s']:g} s"
    line = (
        f"{call['where']}: no answer in {bound}, stuck at {where} in a call that holds Python's lock (no "
        f"signal reaches it): the process was ended {call['grace_s']:g} s later"
        + (f" (raise {key} if it needs longer)" if key else "")
    )
    return resumable(call, line)


def ended_line(call: dict, dump: str, library: list[str]) -> str:
    """The run's one line for a process that ended in the call with no exception: a fatal signal
    faulthandler wrote (`Fatal Python error: Aborted`: os.abort, a crash in C) or none at all (a SIGKILL,
    an exit in C), where rc 137 or 134 and no line were all (thirtieth hunt, case 2: a module that kills
    its own process as it is imported)."""
    fatal = re.match(r"Fatal Python error: (?P<what>[^\n]+)", dump)
    if fatal:
        what = f"crashed ({fatal['what'].strip()}) in this call, at {user_frame(dump, library)}"
        return resumable(call, f"{call['where']}: the process {what}")
    # most often from outside (an OOM kill): nothing of the code's to fix (31st hunt, case 69)
    return resumable(call, f"{call['where']}: the process {KILLED}: {KILLED_WHY}", fixed=False)


FIXED = " resume_changed_inputs=true"  # a resume once the user's code is fixed (run/inputs.py)
KILLED = "was killed in this call with no word from Python"  # the one end whose resume is as it was
KILLED_WHY = (  # what may have ended it, where faulthandler wrote nothing
    "SIGKILL (the system's out-of-memory killer, a kill -9, or the call's own os.kill), or an exit that "
    "skips Python's (os._exit in a thread, exit in C)"
)


def resumable(call: dict, line: str, fixed: bool = True) -> str:
    """The line and, in a run, the command that resumes it from its checkpoint: `fixed`, once the user's
    code is fixed (a file a resume checks changed: FIXED says it is meant), else as it was."""
    run = call.get("run") or {}
    if not run.get("command"):  # a call outside a run (a stage's, a test's)
        return line
    if not fixed:
        return f"{line}; resume from step {step(run['pointer'])} with: {run['command']}"
    return f"{line}; fix it, then resume from step {step(run['pointer'])} with: {run['command']}{FIXED}"


def step(pointer: str) -> int:
    """The step of the checkpoint `checkpoints/last` names (train/checkpoint_io.py), 0 for none."""
    try:
        with open(pointer) as f:
            found = re.fullmatch(r"state-(\d+)\.pt", f.read().strip())
    except (OSError, UnicodeDecodeError):
        return 0
    return int(found.group(1)) if found else 0


def said_in_summary(path: str, line: str, dump: str) -> None:
    """summary.json `failed` with the line and the dump, written whole (a temporary file renamed)."""
    try:
        with open(path) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        summary = {}
    summary.update(status="failed", error=line, traceback=dump)
    tmp = f"{path}.hang.tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def watch(dump_path: str) -> None:
    """Reads the armings until the run's process is gone; then, where it ended in the dump, says so."""
    call: dict = {}
    for text in sys.stdin:
        try:
            call = json.loads(text)
        except ValueError:
            call = {}
    try:
        with open(dump_path) as f:
            dump = f.read()
    except OSError:
        dump = ""
    finally:
        try:
            os.unlink(dump_path)
        except OSError:
            pass
    if not call:  # no call of the user's under way: a dump of align_lab's own crash is shown as it was
        if dump.strip():
            os.write(2, dump.encode())
        return
    library = call.get("library", [])
    if dump.startswith("Timeout ("):  # faulthandler's dump_traceback_later: stuck past its bound
        line = stuck_line(call, user_frame(dump, library))
    else:
        line = ended_line(call, dump, library)
    said_to = (call.get("run") or {}).get("said_to")
    if said_to:  # a spawned rank's: rank 0 says it, in the run's line (train/rank_ends.py)
        with open(f"{said_to}.tmp", "w") as f:
            f.write(line)
        os.replace(f"{said_to}.tmp", said_to)
        return
    summary = (call.get("run") or {}).get("summary")
    if summary and dump.strip():  # killed with no dump: as any kill -9, summary.json `running` (died)
        try:
            said_in_summary(summary, line, dump)
        except OSError as e:
            line += f" (its summary.json not written: {e.strerror})"
    os.write(2, f"align_lab: error: {line}\n".encode())


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the run's to say (its group gets it too)
    watch(sys.argv[1])
