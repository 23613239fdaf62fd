"""What the user's code reads as a run goes, which no config value names: the files it opens (a JSON of
settings, a helper run with runpy), the folders it lists (a glob), the files it hands to a command (a
script a subprocess runs) and the environment variables it reads by name. Noted from the process's start
by an audit hook (sys.addaudithook) and a watched os.environ, kept in each checkpoint with the modules it
imported (user_code.py), and digested again on resume (run/inputs.py). Standard library only."""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from pathlib import Path

from align_lab.user_code import CHECKOUT, INSTALLED, PACKAGE, file_digest, imported_modules
from align_lab.user_folders import snapshot

_OPENED: dict[str, str] = {}  # a file the user's code read (abspath, a link kept a link) -> its kind
_LISTED: dict[str, None] = {}  # folders the user's code listed
_RELATIVE: dict[str, str] = {}  # a file the user's code named relative to the working folder -> that name
_USER_CHDIR: list[bool] = []  # the user's code changed the working folder (os.chdir)
_RUN_SET: dict[
    str, str | None
] = {}  # a variable the run set as it went (its code, a library it called) -> before
_WRITTEN: dict[str, None] = {}  # files this process opened to write (any code's): its outputs, no inputs
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND  # os.open's flags that write
SYSTEM = ("/proc/", "/sys/", "/dev/", "/usr/", "/bin/", "/lib", "/etc/", "/sbin/")
FILES_UNDER_DEV = ("/dev/shm/",)  # files of the user's in a memory-backed folder, not devices
_CODE: dict[str, str | None] = {}  # a frame's file -> whose code it is (_whose)
_HOOKED: list[bool] = []


def watch() -> None:
    """From now on, note what the user's code reads (this module's docstring). Once a process, as early as
    the command begins (a module's top level reads as it is imported, at admission), never removed: like
    sys.modules, the notes are the process's (a sweep's runs in one process share them)."""
    if _HOOKED:
        return
    _HOOKED.append(True)
    sys.addaudithook(_on_audit)
    for environ in (os.environ, getattr(os, "environb", None)):
        if type(environ) is os._Environ:  # noqa: SLF001
            environ.__class__ = _WatchedEnviron


def _on_audit(event: str, args: tuple) -> None:
    try:
        if event == "open":
            _opened(*args[:3])
        elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], (str, Path)):
            if _users_call(sys._getframe(1)):
                _LISTED.setdefault(os.path.abspath(args[0]), None)
        elif event == "os.chdir" and not _USER_CHDIR and _users_call(sys._getframe(1)):
            _USER_CHDIR.append(True)  # a relative name is then the code's folder's, not the resume's
        elif event == "subprocess.Popen" and _users_call(sys._getframe(1)):
            _ran(*args[:3])
            if not _WHOLE_ENV:  # the command inherits, or is given, the environment: reads it at will
                _WHOLE_ENV.append(True)
    except Exception:  # an audit hook that raises would fail the call itself
        return


def _opened(path, mode, flags) -> None:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        return
    named, path = path, os.path.abspath(path)  # the same file, however the code named it; a link stays
    if mode is None and isinstance(flags, int) and flags & WRITES or mode and any(c in mode for c in "wax+"):
        _WRITTEN[path] = None  # a temporary file read back is the run's own
        return
    if path in _OPENED or path.endswith(".pyc") or system_file(path):
        return
    if _users_call(sys._getframe(2)):  # 0: here, 1: the hook, 2: the code that called open
        _OPENED[path] = "opened"
        if not os.path.isabs(named) and not _USER_CHDIR:  # read again from the folder a
            _RELATIVE[path] = named  # resume runs in (ninth hunt); not after the code changed folder (tenth)


def system_file(path: str) -> bool:
    return path.startswith(SYSTEM) and not path.startswith(FILES_UNDER_DEV)


def _ran(executable, args, cwd) -> None:
    """A command the user's code started (subprocess): each of its words that is a file (`python
    <script>`, `cat w.txt`) is a file it read, outside the system's and Python's own."""
    words = shlex.split(args) if isinstance(args, str) else [os.fsdecode(a) for a in args or ()]
    here = Path(os.fsdecode(cwd)) if cwd else Path.cwd()
    for word in words:
        path = os.path.abspath(here / word)
        if system_file(path) or any(Path(path).is_relative_to(p) for p in INSTALLED):
            continue
        if path not in _OPENED and Path(path).is_file():
            _OPENED[path] = "passed to a command"


def _users_call(frame) -> bool:
    """The call under way at `frame` was made by the user's code: from there outwards, a frame of the
    user's comes before one of align_lab's (its own reads: a checkpoint, a model, under a user's script
    too)."""
    while frame is not None:
        whose = _frame_of(frame.f_code.co_filename)
        if whose is not None:
            return whose == "user"
        frame = frame.f_back
    return False


def _frame_of(filename: str) -> str | None:
    """A frame's file: "align_lab" (the package), "user" (a .py file neither align_lab's checkout's nor
    installed) or None (the standard library, site-packages, the checkout's tests and scripts, frozen)."""
    if filename not in _CODE:
        path = Path(filename).resolve() if filename.endswith(".py") else None
        if path is None or any(path.is_relative_to(d) for d in CHECKOUT):
            _CODE[filename] = None
        elif path.is_relative_to(PACKAGE):
            _CODE[filename] = "align_lab"
        elif "site-packages" in path.parts or "dist-packages" in path.parts:
            _CODE[filename] = None
        else:
            _CODE[filename] = None if any(path.is_relative_to(p) for p in INSTALLED) else "user"
    return _CODE[filename]


_READ_ENV: dict[str, None] = {}  # environment variables the user's code read by name, set or not
# set by a launcher or scheduler for each process or requeue, not a setting of the user's code
LAUNCHERS = ("SLURM_", "SUBMITIT_", "TORCHELASTIC_", "OMPI_", "PMI_", "PMIX_")
PER_PROCESS = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR"}
PER_PROCESS |= {"MASTER_PORT", "CUDA_VISIBLE_DEVICES", "HOSTNAME", "PWD", "OLDPWD", "SHLVL", "_"}
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
        if not _WHOLE_ENV and _users_call(frame):  # the user's code reads every variable
            _WHOLE_ENV.append(True)
        for _ in range(4):
            if frame is None:
                break
            _BULK[id(frame)] = frame.f_lasti
            frame = frame.f_back
        yield from super().__iter__()


_BULK: dict[int, int] = {}  # the frames that last iterated os.environ -> their instruction then
_WHOLE_ENV: list[bool] = []  # the user's code read every variable, or started a command
# a shell session's own, which differ between two shells and no code's result depends on
SESSION = ("SSH_", "TERM", "DISPLAY", "XDG_", "TMUX", "STY", "WINDOW", "COLUMNS", "LINES", "PS1", "PS2")
SESSION += ("PROMPT_", "LS_COLORS", "MAIL", "HIST", "LESS", "DBUS_", "GPG_", "KRB5", "COLORTERM", "VSCODE_")
SESSION += ("PYTEST_", "LC_TERMINAL")


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
    names = [n for n in sorted(names) if not n.startswith(skip) and n not in PER_PROCESS]
    return {n: env_digest(n) for n in sorted(names)}


def _bulk_read(caller) -> bool:
    """A read made as a frame iterates os.environ: a C loop (`dict(...)`) still at that instruction, or a
    Python one of the standard library's (ItemsView)."""
    lasti = _BULK.get(id(caller))
    if lasti is None:
        return False
    return lasti == caller.f_lasti or _frame_of(caller.f_code.co_filename) != "user"


def _note_set(key) -> None:
    """A variable set or removed by align_lab's code or a library under it (an align_lab frame on the
    stack): its value before the first such change is what the run's command began with."""
    try:
        key = os.fsdecode(key) if isinstance(key, bytes) else key
        if key in _RUN_SET or not isinstance(key, str):
            return
        frame = sys._getframe(2)
        while frame is not None and _frame_of(frame.f_code.co_filename) != "align_lab":
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
            and not _frame_of(caller.f_code.co_filename)
        ):
            caller = caller.f_back  # os.environ.get (Mapping.get), os.getenv: the user's code called them
        if caller is not None and not _bulk_read(caller) and _frame_of(caller.f_code.co_filename) == "user":
            _READ_ENV[key] = None
    except Exception:  # as the audit hook: never the read's own failure
        return


def env_digest(name: str) -> str:
    """sha256 (16 hex) of an environment variable's value (never the value: it may be a secret), or
    `unset`."""
    # a variable the run set as it went (DS_ACCELERATOR, by DeepSpeed under align_lab's call): its value
    # before, which a resume's fresh process has too (tenth hunt)
    value = _RUN_SET[name] if name in _RUN_SET else os.environ.get(name)  # align_lab's own read: not noted
    return "unset" if value is None else hashlib.sha256(value.encode()).hexdigest()[:16]


def listing_digest(folder: str) -> str | None:
    """sha256 (16 hex) of a folder's entries' names (a file added or removed); None: no folder."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def used_by_user_code() -> dict[str, dict]:
    """What each checkpoint keeps of the user's code's own inputs, each {file, sha256}: the modules
    imported by now (`module <name>`), the other files it read (`file <path>`: opened, or `arg <path>`:
    passed to a command), the folders it listed (`folder <path>`, less those the process writes into) and
    the environment variables it read (`env <name>`, its file `$<name>`)."""
    found = imported_modules()
    known = {v["file"] for v in found.values()}
    for name, kind in list(_OPENED.items()):
        if name in _WRITTEN or os.path.realpath(name) in known:
            continue
        digest = file_digest(Path(name)) if os.path.isfile(name) else None
        if digest is not None:
            record = {"file": name, "sha256": digest} | (
                {"relative": _RELATIVE[name]} if name in _RELATIVE else {}
            )
            found[f"{'file' if kind == 'opened' else 'arg'} {name}"] = record
    outputs = {os.path.dirname(w) for w in _WRITTEN}
    for name in list(_LISTED):
        digest = listing_digest(name) if name not in outputs else None
        if digest is not None:
            found[f"folder {name}"] = {"file": name, "sha256": digest}
    for name in list(_READ_ENV):
        found[f"env {name}"] = {"file": f"${name}", "sha256": env_digest(name)}
    return found


def folders_beside(used: dict[str, dict]) -> dict:
    """user_folders.snapshot of the folders of what the user's code used (`used`: used_by_user_code),
    its modules' and the files it read, and of the folders it listed."""
    files = [v["file"] for k, v in used.items() if not k.startswith(("env ", "folder "))]
    folders = [os.path.dirname(f) for f in files] + [
        v["file"] for k, v in used.items() if k.startswith("folder ")
    ]
    return snapshot(folders, _WRITTEN)


def where_now(record: dict) -> str:
    """The file a record names for this process: a name relative to the working folder, from here."""
    return os.path.abspath(record["relative"]) if "relative" in record else record["file"]


def digest_now(key: str, record: dict) -> str:
    """What a checkpoint's record of the user's code's input (used_by_user_code) digests to now; `gone`:
    the file or folder was deleted, `unset`: the variable."""
    if key.startswith("env "):
        return env_digest(key.removeprefix("env "))
    if key.startswith("folder "):
        return listing_digest(record["file"]) or "gone"
    return file_digest(Path(where_now(record))) or "gone"  # a relative name: from this working folder


LABELS = {  # how a resume's refusal names each kind (run/inputs.py describe_change)
    "file": "a file your code opened",
    "arg": "a file your code passed to a command",
    "folder": "a folder your code listed",
    "env": "an environment variable your code read",
}
