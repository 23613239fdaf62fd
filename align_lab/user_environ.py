"""The environment variables the user's code reads, and whose code a call is: a watched os.environ (and
os.environb) notes each variable the user's code reads by name (a digest, never the value), each one the
run itself sets as it goes (counted as it was before), and whether the code read them all or started a
command (user_reads.py: what a checkpoint keeps, a resume checks). Standard library only."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from align_lab.user_code import CHECKOUT, PACKAGE, installed

_CODE: dict[str, str | None] = {}  # a frame's file -> whose code it is (_whose)
_RUN_SET: dict[
    str, str | None
] = {}  # a variable the run set as it went (its code, a library it called) -> before


def users_call(frame) -> bool:
    """The call under way at `frame` was made by the user's code: from there outwards, a frame of the
    user's comes before one of align_lab's (its own reads: a checkpoint, a model, under a user's script
    too)."""
    while frame is not None:
        whose = frame_of(frame.f_code.co_filename)
        if whose is not None:
            return whose == "user"
        frame = frame.f_back
    return False


def frame_of(filename: str) -> str | None:
    """A frame's file: "align_lab" (the package), "user" (a .py file neither align_lab's checkout's nor
    installed) or None (the standard library, site-packages, the checkout's tests and scripts, frozen)."""
    if filename not in _CODE:
        path = Path(filename).resolve() if filename.endswith(".py") else None
        if path is None or any(path.is_relative_to(d) for d in CHECKOUT):
            _CODE[filename] = None
        elif path.is_relative_to(PACKAGE):
            _CODE[filename] = "align_lab"
        else:
            _CODE[filename] = None if installed(path) else "user"
    return _CODE[filename]


_READ_ENV: dict[str, None] = {}  # environment variables the user's code read by name, set or not
# set by a launcher or scheduler for each process or requeue, not a setting of the user's code
LAUNCHERS = ("SLURM_", "SUBMITIT_", "TORCHELASTIC_", "OMPI_", "PMI_", "PMIX_")
PER_PROCESS = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR"}
PER_PROCESS |= {"MASTER_PORT", "CUDA_VISIBLE_DEVICES", "HOSTNAME", "PWD", "OLDPWD", "SHLVL", "_"}
PER_PROCESS |= {"TMPDIR", "TMP", "TEMP"}  # a job's scratch folder (Slurm: per job; eleventh hunt, a requeue)
ONE_READ = ("get", "getenv", "getenvb")  # the standard library's reads of one variable by name


class _WatchedEnviron(os._Environ):  # noqa: SLF001
    """os.environ (and os.environb), which notes each variable the user's code reads (`os.environ[...]`,
    `.get`, `os.getenv`, `in`): eighth hunt, a helper chosen by `os.environ["HELPER"]`, another value on
    resume."""

    def __getitem__(self, key):
        _note_env(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        _note_env(key)
        return super().__contains__(key)

    def __setitem__(self, key, value):
        _note_set(key)
        super().__setitem__(key, value)

    def __delitem__(self, key):
        _note_set(key)
        super().__delitem__(key)

    def __iter__(self):
        """A read of every variable (`dict(os.environ)`, `{**os.environ}`, `.copy()`, `.items()`: a
        subprocess's environment) is no setting: the frames iterating now are marked, and the reads they
        make as they iterate are not noted (_bulk_read)."""
        _BULK.clear()
        frame = sys._getframe(1)
        if not _WHOLE_ENV and users_call(frame):  # the user's code reads every variable
            _WHOLE_ENV.append(True)
        for _ in range(4):
            if frame is None:
                break
            _BULK[id(frame)] = frame.f_lasti
            frame = frame.f_back
        yield from super().__iter__()


_BULK: dict[int, int] = {}  # the frames that last iterated os.environ -> their instruction then
_WHOLE_ENV: list[bool] = []  # the user's code read every variable, or started a command
# a shell session's own, which differ between two shells and no code's result depends on: whole names, and
# prefixes only where a family is the session's (tenth hunt: "WINDOW" as a prefix hid $WINDOW_SIZE)
SESSION_NAMES = {"TERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "COLORTERM", "DISPLAY", "WINDOW", "WINDOWID"}
SESSION_NAMES |= {
    "STY",
    "COLUMNS",
    "LINES",
    "PS1",
    "PS2",
    "PS4",
    "PROMPT_COMMAND",
    "LS_COLORS",
    "MAIL",
    "LESS",
}
SESSION_NAMES |= {
    "LESSOPEN",
    "LESSCLOSE",
    "HISTFILE",
    "HISTSIZE",
    "HISTFILESIZE",
    "HISTCONTROL",
    "KRB5CCNAME",
}
SESSION_NAMES |= {"TMUX", "TMUX_PANE", "LC_TERMINAL", "LC_TERMINAL_VERSION", "MOTD_SHOWN"}
SESSION = ("SSH_", "XDG_", "DBUS_", "GPG_", "VSCODE_", "PYTEST_")


def whole_environment() -> dict[str, str] | None:
    """{name: sha256 (16 hex)} of every variable (less a launcher's and a shell session's), where the
    user's code read them all or started a command, which may read any (a resume's warning names those
    that changed: ninth hunt); else None."""
    return environment_digests() if _WHOLE_ENV else None


def environment_digests() -> dict[str, str]:
    """{name: sha256 (16 hex)} of every variable set now, less a launcher's and a shell session's."""
    skip = LAUNCHERS + SESSION
    names = set(os.environ.copy()) - {n for n, v in _RUN_SET.items() if v is None} | {
        n for n, v in _RUN_SET.items() if v
    }
    names = [n for n in sorted(names) if not n.startswith(skip) and n not in PER_PROCESS | SESSION_NAMES]
    return {n: env_digest(n) for n in sorted(names)}


def _bulk_read(caller) -> bool:
    """A read made as a frame iterates os.environ: a C loop (`dict(...)`) still at that instruction, or a
    Python one of the standard library's (ItemsView)."""
    lasti = _BULK.get(id(caller))
    if lasti is None:
        return False
    return lasti == caller.f_lasti or frame_of(caller.f_code.co_filename) != "user"


def _note_set(key) -> None:
    """A variable set or removed by align_lab's code or a library under it (an align_lab frame on the
    stack): its value before the first such change is what the run's command began with."""
    try:
        key = os.fsdecode(key) if isinstance(key, bytes) else key
        if key in _RUN_SET or not isinstance(key, str):
            return
        frame = sys._getframe(2)
        while frame is not None and frame_of(frame.f_code.co_filename) != "align_lab":
            frame = frame.f_back
        if frame is not None:
            _RUN_SET[key] = os.environ.get(key)  # align_lab's own read: not noted
    except Exception:
        return


def _note_env(key) -> None:
    """Notes variable `key` read by the user's code itself (not by a library it calls: tempfile's TMPDIR,
    expanduser's HOME, which a scheduler may set for each job)."""
    try:
        key = os.fsdecode(key) if isinstance(key, bytes) else key
        if not isinstance(key, str) or key in _READ_ENV or key.startswith(LAUNCHERS) or key in PER_PROCESS:
            return
        caller = sys._getframe(2)
        while (
            caller is not None
            and caller.f_code.co_name in ONE_READ
            and not frame_of(caller.f_code.co_filename)
        ):
            caller = caller.f_back  # os.environ.get (Mapping.get), os.getenv: the user's code called them
        if caller is not None and not _bulk_read(caller) and frame_of(caller.f_code.co_filename) == "user":
            _READ_ENV[key] = None
    except Exception:  # as the audit hook: never the read's own failure
        return


def env_digest(name: str) -> str:
    """sha256 (16 hex) of an environment variable's value (never the value: it may be a secret), or
    `unset`."""
    # a variable the run set as it went (DS_ACCELERATOR, by DeepSpeed under align_lab's call): its value
    # before, which a resume's fresh process has too (tenth hunt)
    value = env_value(name)
    return "unset" if value is None else hashlib.sha256(value.encode()).hexdigest()[:16]


def env_value(name: str) -> str | None:
    """A variable's value as the run read it: one the run set as it went, its value before."""
    return _RUN_SET[name] if name in _RUN_SET else os.environ.get(name)  # align_lab's own read: not noted


def install() -> None:
    """os.environ and os.environb watched from now on (once a process: user_reads.watch)."""
    for environ in (os.environ, getattr(os, "environb", None)):
        if type(environ) is os._Environ:  # noqa: SLF001
            environ.__class__ = _WatchedEnviron


def note_command() -> None:
    """The user's code started a command, which may read any variable it inherits."""
    if not _WHOLE_ENV:
        _WHOLE_ENV.append(True)


def read_whole() -> bool:
    """The user's code read every variable (`dict(os.environ)`, `.copy()`) or started a command."""
    return bool(_WHOLE_ENV)


def read_by_name() -> list[str]:
    """The variables the user's code read by name, in order."""
    return list(_READ_ENV)
