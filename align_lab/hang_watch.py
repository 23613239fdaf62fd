"""The one line for a call of the user's code stuck in C past its bound (user_timeouts.py): a regex
backtracking for ever holds Python's lock, so no handler, thread or `finally` of the run's process runs;
faulthandler's C thread writes where it is into a file and ends the process (exit status 1). This small
process (`python -I -S hang_watch.py <file> <pid>`, the standard library only, nothing of align_lab) reads
the bounded call it was told of on its stdin, a JSON line an arming (`{}`: the call returned); once the
run's process has gone in a call, it writes summary.json `failed` and says the line (twenty-eighth hunt,
case 3: a 25-line dump, no key, summary `running`): stuck (the file holds faulthandler's timeout
traceback), crashed (os.abort, a segfault in C) or ended with no word (a SIGKILL). With the run's pulse on
(user_pulse.py), a process silent past its seconds outside a call is ended as held (33rd hunt, case 64)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import signal
import struct
import sys
import termios
import time

FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')


def user_frame(dump: str, library: list[str], own: bool = False) -> str:
    """`file:line` of the innermost frame of the dump that is the user's (not under `library`: the
    interpreter's own folders and align_lab's), else the innermost frame; "an unknown line" for none
    (`own`: "" for both)."""
    frames = [(m["file"], m["line"]) for m in map(FRAME.match, dump.splitlines()) if m]
    for file, line in frames:  # faulthandler lists the most recent call first
        if not file.startswith("<") and not any(file.startswith(folder) for folder in library):
            return f"{file}:{line}"
    if own:
        return ""
    return f"{frames[0][0]}:{frames[0][1]}" if frames else "an unknown line"


def stuck_line(call: dict, where: str) -> str:
    """The run's one line, as a call stopped at its bound says it (value_checks.timed_out), naming why it
    took longer to stop."""
    key = call["key"]
    bound = f"{key}={call['timeout_s']:g} s" if key else f"{call['timeout_s']:g} s"
    line = (  # or the handler's exception caught: `except BaseException: pass` (fourth hunt of 2026-12-04)
        f"{call['where']}: no answer in {bound}, stuck at {where} in a call that holds Python's lock (no "
        "signal reaches it) or that caught the timeout raised in it (except BaseException, or a bare "
        f"except): the process was ended {call['grace_s']:g} s later"
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


def watch(dump_path: str, run_pid: int) -> None:
    """Reads the armings until the run's process is gone; then, where it ended in the dump, says so. With
    the run's pulse on (user_pulse.py), a silence that held() finds too long ends the process first."""
    call, pulse, heard_at, held, warned = {}, {}, time.monotonic(), "", False
    dump_file = opened_and_removed(dump_path)
    for message in messages(sys.stdin.fileno()):
        if message is None:  # a second's silence
            held = held or ended_held(pulse, call, time.monotonic() - heard_at, run_pid)
            warned = warned or held_in_a_call(pulse, call, time.monotonic() - heard_at, run_pid)
            continue
        heard_at = time.monotonic()
        if message == "":  # a pulse
            continue
        if "pulse" in message:
            pulse = message if message["pulse"] else {}
        elif "signals" in message:
            pulse = pulse and {**pulse, "signals": message["signals"]}
        else:
            call = message
    if call and not gone(run_pid):  # its end of the pipe closed by a call of the user's (user_fds.py)
        closed_in_a_call(call, run_pid)
        return
    dump = dump_file.read() if dump_file else ""  # from its start: what faulthandler wrote
    if held:
        said(pulse, resumable(pulse, held.format(where=user_frame(dump, pulse.get("library", [])))), dump)
    elif not call and (where := crashed_in_a_thread(pulse, dump)):
        said(pulse, resumable(pulse, where), dump)
    elif not call:  # no call of the user's under way: a dump of align_lab's own crash is shown as it was
        if dump.strip():
            os.write(2, dump.encode())
    elif dump.startswith("Timeout ("):  # faulthandler's dump_traceback_later: stuck past its bound
        said(call, stuck_line(call, user_frame(dump, call.get("library", []))), dump)
    else:
        said(call, ended_line(call, dump, call.get("library", [])), dump)


def opened_and_removed(path: str):
    """The dump file opened, then removed: killed with the run (a kill -9 of its group), nothing of it is
    left in the temp folder, where an empty file was (68 in a day of tests); None where it cannot be read."""
    try:
        dump_file = open(path, errors="replace")  # noqa: SIM115 (read as the run has gone)
    except OSError:
        return None
    with contextlib.suppress(OSError):
        os.unlink(path)
    return dump_file


def gone(run_pid: int) -> bool:
    """The run's process is ending or has ended as its end of the pipe closed: its descriptors are let go
    before its end (a process still holding some closed the pipe itself: a call of the user's did)."""
    try:
        return os.getppid() != run_pid or not os.listdir(f"/proc/{run_pid}/fd")
    except OSError:
        return True


def closed_in_a_call(call: dict, run_pid: int) -> None:
    """A call closed this watch's pipe (in C: user_fds.py): said by the run where it ends on its own; here
    where what it broke ended it (gloo: rc 134, summary.json `running`; thirty-eighth hunt, case 44)."""
    while not gone(run_pid):
        time.sleep(0.2)
    ended = not (call.get("run") or {}).get("said_to")  # a rank's: said by rank 0
    with contextlib.suppress(KeyError, TypeError, OSError, ValueError), open(call["run"]["summary"]) as f:
        ended = json.load(f).get("status") != "running"
    what = "closed the run's file descriptors (in C, or a file object on one), and the process ended with no"
    why = "a library whose socket or pipe it closed, as torch.distributed's, ended it"
    line = f"{call['where']}: {what} word from Python ({why}): close only what your code opened"
    _ = ended or said(call, resumable(call, line), "(no traceback: the call closed faulthandler's file)")


def crashed_in_a_thread(pulse: dict, dump: str) -> str:
    """In a run (its pulse on), a crash outside any call whose dump has a frame of the user's (a thread a
    reward module started at import, crashing in C): its line, where a 125-line dump, no key and a summary
    left `running` were all (thirty-fourth hunt, case 86); "" for none (align_lab's own: its dump)."""
    fatal = re.match(r"Fatal Python error: (?P<what>[^\n]+)", dump)
    where = user_frame(dump, pulse.get("library", []), own=True) if pulse and fatal else None
    if not where:
        return ""
    return (
        f"the process crashed ({fatal['what'].strip()}) outside any call of align_lab's to your code, in a "
        f"thread at {where} (one your code started?)"
    )


def messages(fd: int):
    """The JSON messages read from `fd` until it ends; "" for each empty line (a pulse), None for each
    second with nothing read; {} for a line that is not JSON (a call returned)."""
    buffer = b""
    while True:
        if not select.select([fd], [], [], 1.0)[0]:
            yield None
            continue
        data = os.read(fd, 65536)
        if not data:
            return
        *lines, buffer = (buffer + data).split(b"\n")
        for text in lines:
            if not text.strip():
                yield ""
                continue
            try:
                yield json.loads(text)
            except ValueError:
                yield {}


SIGNAL_S = 10.0  # a signal unread this long, and as long a silence: the process is held


def ended_held(pulse: dict, call: dict, silence: float, run_pid: int) -> str:
    """The line (its `{where}` to fill from the dump) for a run's process that has said nothing for its
    pulse's seconds, outside a bounded call (whose own bound ends it), or for SIGNAL_S with a signal
    unread (a SIGTERM: no thread of the run's could take Python's lock to read it); the process is then
    ended (a SIGABRT: faulthandler writes where each thread is). "" for none; nothing while it is
    stopped (a SIGSTOP, a Ctrl-Z: the pulse waits with it)."""
    if not pulse or silence < min(SIGNAL_S, pulse["pulse"]) or stopped(run_pid):
        return ""
    signum = unread(run_pid, pulse.get("signals"))
    if signum:
        what = f"a {signal.Signals(signum).name if signum in signal.valid_signals() else signum} came"
        silent = f"(none has for {silence:.0f} s)"
        line = f"{what} while no thread of the run's could run Python to answer it {silent}"
    elif silence > pulse["pulse"] and not call:
        line = f"no thread of the run's has run Python for {pulse['pulse']:g} s"
    else:
        return ""
    with contextlib.suppress(OSError):
        os.kill(run_pid, signal.SIGABRT)
    return (
        f"{line}: Python's lock is held, by a thread stuck at {{where}} (one your code started, or a call of "
        "it), so no signal reaches the run: the process was ended"
        + ("" if signum else f" ({HELD}={pulse['pulse']:g}; raise it if that wait is meant)")
    )


HELD = "ALIGN_LAB_HELD_S"  # user_pulse.py reads it
SAY_AFTER_S = 60.0  # a bounded call's silence, said once (as user_timeouts.py says a slow call)


def held_in_a_call(pulse: dict, call: dict, silence: float, run_pid: int) -> bool:
    """In a bounded call, a silence of SAY_AFTER_S said (True) in one warning line: its own bound ends it,
    or a signal (thirty-third hunt, case 64: a run that hung with no line)."""
    if not pulse or not call or silence < SAY_AFTER_S or stopped(run_pid):
        return False
    bound = f"{call['key'] or 'its bound'}={call['timeout_s']:g} s"
    said = (
        f"align_lab: warning: {call['where']}: no thread of the run's has run Python for {silence:.0f} s "
        f"(Python's lock is held in C); the run waits up to {bound}, then stops in one line; a SIGTERM "
        "stops it now\n"
    )
    os.write(2, said.encode())
    return True


def stopped(pid: int) -> bool:
    """The process is stopped (a SIGSTOP, a Ctrl-Z)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def unread(pid: int, fd: int | None) -> int:
    """The number of a signal that waits, unread, in the run's wakeup pipe (`fd`, its write end in the
    process: train/preemption.py's watcher reads it once it has Python's lock); 0 for none."""
    if fd is None:
        return 0
    try:
        pipe = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        waiting = struct.unpack("i", fcntl.ioctl(pipe, termios.FIONREAD, b"\0" * 4))[0]
        return os.read(pipe, 1)[0] if waiting > 0 else 0  # the process is ended: nobody else reads it
    except OSError:
        return 0
    finally:
        os.close(pipe)


def said(call: dict, line: str, dump: str) -> None:
    """The line in the run's summary.json (`failed`, with the dump) and on stderr; a spawned rank's, in
    the file rank 0 reads it from."""
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
    if summary:  # and in the run's app.log, as the run's own last line is (35th hunt, case 12)
        with contextlib.suppress(OSError):
            log = os.path.join(os.path.dirname(summary), "app.log")
            if os.path.isfile(log):
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                with open(log, "a") as f:
                    f.write(f"[{stamp},000][ERROR] align_lab: error: {line}\n")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the run's to say (its group gets it too)
    watch(sys.argv[1], int(sys.argv[2]))  # the run's pid: this one's parent, which may be gone already
