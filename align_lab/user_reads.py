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

from align_lab.user_code import INSTALLED, PACKAGE, file_digest, imported_modules, installed
from align_lab.user_environ import env_digest, env_value, install, note_command, read_by_name, users_call
from align_lab.user_folders import (
    changed_beside,
    folders_in_globals,
    folders_in_settings,
    folders_in_values,
    named_folders,
    snapshot,
)

_OPENED: dict[str, str] = {}  # a file the user's code read (abspath, a link kept a link) -> its kind
_LISTED: dict[str, None] = {}  # folders the user's code listed
_RELATIVE: dict[str, str] = {}  # a file the user's code named relative to the working folder -> that name
_USER_CHDIR: list[bool] = []  # the user's code changed the working folder (os.chdir)
_WRITTEN: dict[str, None] = {}  # files this process opened to write (any code's): its outputs, no inputs
_AS_OPENED: dict[str, str | None] = {}  # a file the user's code read -> its digest as it was first opened
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND  # os.open's flags that write
SYSTEM = ("/proc/", "/sys/", "/dev/", "/usr/", "/bin/", "/lib", "/etc/", "/sbin/")
FILES_UNDER_DEV = ("/dev/shm/",)  # files of the user's in a memory-backed folder, not devices
_CONNECTED: dict[str, None] = {}  # database files the user's code opened with sqlite3 (_connected)
_HOOKED: list[bool] = []


def watch() -> None:
    """From now on, note what the user's code reads (this module's docstring). Once a process, as early as
    the command begins (a module's top level reads as it is imported, at admission), never removed: like
    sys.modules, the notes are the process's (a sweep's runs in one process share them)."""
    if _HOOKED:
        return
    _HOOKED.append(True)
    sys.addaudithook(_on_audit)
    install()


def _on_audit(event: str, args: tuple) -> None:
    try:
        if event == "open":
            _opened(*args[:3])
        elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], (str, Path)):
            folder = os.path.abspath(args[0])  # not /proc/self/fd, which a leak check lists (39th hunt, 41)
            if (
                users_call(sys._getframe(1))
                and not _importing(sys._getframe(1))
                and not system_file(f"{folder}/")
            ):
                _LISTED.setdefault(folder, None)
        elif event == "os.chdir" and not _USER_CHDIR and users_call(sys._getframe(1)):
            _USER_CHDIR.append(True)  # a relative name is then the code's folder's, not the resume's
        elif event == "sqlite3.connect" and args and users_call(sys._getframe(1)):
            _connected(args[0])
        elif event == "subprocess.Popen" and users_call(sys._getframe(1)):
            _ran(*args[:3])
            note_command()  # the command inherits, or is given, the environment: reads it at will
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
    if users_call(sys._getframe(2)) and not ours_or_installed(path):  # 2: the code that called open
        _OPENED[path] = "opened"
        _AS_OPENED[path] = file_digest(Path(path))  # what this process read (spawned ranks compare it)
        if not os.path.isabs(named) and not _USER_CHDIR:  # read again from the folder a
            _RELATIVE[path] = named  # resume runs in (ninth hunt); not after the code changed folder (tenth)


def _connected(database) -> None:
    """A database file the user's code opened with sqlite3 (read in C: no `open` event): its folder is
    watched as a read file's is (folders_beside), so that a table edited between a kill and the resume is
    said, where it trained on the edit in silence (thirty-fourth hunt, case 21: a reward's weights read
    from a database its settings file names); a warning, as a database the code writes (a cache) is one."""
    if isinstance(database, bytes | os.PathLike):
        database = os.fsdecode(database)
    if isinstance(database, str) and os.path.isfile(database):
        _CONNECTED.setdefault(os.path.abspath(database), None)


def _importing(frame) -> bool:
    """The call was the import system's (a folder on sys.path listed to find a module: the module found is
    the input, user_code.py), not the code's that imports."""
    return frame.f_code.co_filename.startswith("<frozen importlib")


def ours_or_installed(path: str) -> bool:
    """A file of align_lab's (its code's digest covers it), of Python's or of an installed distribution
    (user_code.installed): none is an input of the user's code, though it reads one (a module's source
    read by an import hook, a package's own template)."""
    return Path(path).is_relative_to(PACKAGE) or installed(Path(path))


def system_file(path: str) -> bool:
    return path.startswith(SYSTEM) and not path.startswith(FILES_UNDER_DEV)


def _ran(executable, args, cwd) -> None:
    """A command the user's code started (subprocess): each of its words that is a file (`python
    <script>`, `cat w.txt`) is a file it read, outside the system's and Python's own."""
    words = shlex.split(args) if isinstance(args, str) else [os.fsdecode(a) for a in args or ()]
    if len(words) >= 3 and os.path.basename(words[0]) in SHELLS and words[1] == "-c":  # shell=True:
        words += shell_words(words[2])  # `sh scale.sh` is one word of [/bin/sh, -c, ...] (31st hunt, 38)
    here = Path(os.fsdecode(cwd)) if cwd else Path.cwd()
    for word in words:
        path = os.path.abspath(here / word)
        if system_file(path) or installed(Path(path)):
            continue
        if path not in _OPENED and Path(path).is_file():
            _OPENED[path] = "passed to a command"


SHELLS = ("sh", "bash", "dash", "zsh")


def shell_words(command: str) -> list[str]:
    """The words of a shell command line (`sh scale.sh && cat w.txt`), as far as shlex reads them."""
    try:
        return shlex.split(command)
    except ValueError:  # an unclosed quote: the shell's to say
        return command.split()


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
    for name in read_by_name():
        named = env_file_digest(name)  # a settings file: a copy of it at another path is the same input
        found[f"env {name}"] = {"file": f"${name}", "sha256": env_digest(name)} | (
            {"names": named} if named else {}
        )
    return found


def set_env_read() -> list[str]:
    """The environment variables the user's code read by name that are set (used_by_user_code records
    them: a resume checks each), less a launcher's (PYTHONPATH: the resume command's own)."""
    return [name for name in read_by_name() if env_value(name) is not None and name != "PYTHONPATH"]


def as_opened() -> dict[str, str]:
    """{path: digest} of each file the user's code has read by now, as it was when first opened (a spawned
    rank reads them again: run/inputs.py check_same_reads)."""
    return {path: digest for path, digest in _AS_OPENED.items() if digest is not None}


def env_file_digest(name: str) -> str | None:
    """The digest of the file a variable names (its value a path), or None."""
    value = env_value(name)
    return file_digest(Path(value)) if value and os.path.isfile(value) else None


def folders_beside(used: dict[str, dict]) -> dict:
    """user_folders.snapshot of the folders of what the user's code used (`used`: used_by_user_code),
    its modules' and the files it read, of the folders it listed and of those its modules name."""
    files = [v["file"] for k, v in used.items() if not k.startswith(("env ", "folder "))]
    folders = [os.path.dirname(f) for f in [*files, *_CONNECTED]] + [
        v["file"] for k, v in used.items() if k.startswith("folder ")
    ]
    modules = [v["file"] for k, v in used.items() if k.startswith("module ") and v["file"].endswith(".py")]
    skip = [*map(str, INSTALLED), str(PACKAGE)]
    folders += folders_in_values([env_value(name) or "" for name in read_by_name()], skip)  # DATA=/data/x
    folders += named_folders(modules, skip)  # the paths written in its modules, and those made as they ran
    folders += folders_in_globals(modules, skip)
    return snapshot(folders + folders_in_settings(files, skip), _WRITTEN)


def where_now(record: dict) -> str:
    """The file a record names for this process: a name relative to the working folder, from here."""
    return os.path.abspath(record["relative"]) if "relative" in record else record["file"]


def digest_now(key: str, record: dict) -> str:
    """What a checkpoint's record of the user's code's input (used_by_user_code) digests to now; `gone`:
    the file or folder was deleted, `unset`: the variable."""
    if key.startswith("env "):  # another path to a file of the same content: the same (fifteenth hunt)
        now, name = env_digest(key.removeprefix("env ")), key.removeprefix("env ")
        same_file = record.get("names") is not None and env_file_digest(name) == record["names"]
        return record["sha256"] if same_file else now
    if key.startswith("folder "):
        return listing_digest(record["file"]) or "gone"
    return file_digest(Path(where_now(record))) or "gone"  # a relative name: from this working folder


LABELS = {  # how a resume's refusal names each kind (run/inputs.py describe_change)
    "file": "a file your code opened",
    "arg": "a file your code passed to a command",
    "folder": "a folder your code listed",
    "env": "an environment variable your code read",
}


_CHANGED_SAID: set[str] = set()


def changed_while_read(used: dict[str, dict]) -> list[str]:
    """The files the user's code opened that differ now from the version it first read (used_by_user_code's
    records against as_opened), each said once a process: a settings file edited while the run went on
    trained it on two versions with no line (thirtieth hunt, case 7)."""
    first, found = as_opened(), []
    for key, record in used.items():
        path = record.get("file", "")
        then = first.get(path)
        if key.startswith("file ") and then and record.get("sha256") != then and path not in _CHANGED_SAID:
            _CHANGED_SAID.add(path)
            found.append(
                f"a file your code opened: {path} (sha256 {then[:8]} when first read, now "
                f"{str(record.get('sha256'))[:8]}) changed while the run went on"
            )
    return found


_BESIDE: dict[str, dict] = {}  # the files beside the user's code as last seen (changed_beside_since)
_BESIDE_SAID: set[str] = set()


def beside_from_here() -> None:
    """The files beside the user's code as they are now: what changed_beside_since compares with (a run's
    start: begin; a sweep's later run in the process of the one before sees that run's reads too)."""
    _BESIDE.clear()
    _BESIDE.update(folders_beside(used_by_user_code()))


def changed_beside_since(used: dict[str, dict], beside: dict) -> list[str]:
    """`<file> (changed|new|gone)` for each file beside the user's code (`beside`: folders_beside(used)
    now) that differs from when last seen, each said once a process, less those checked by their digest
    (changed_while_read's): a parquet pyarrow reads in C++, rewritten as a sweep's next run started in its
    process, trained that run on another table, no line, and compare pooled the two (thirty-seventh
    hunt, case 29)."""
    known = [v["file"] for k, v in used.items() if k.startswith("file ")]
    seen = {f: files for f, files in _BESIDE.items() if f in beside}
    found = [line for line in changed_beside(seen, beside, known) if line not in _BESIDE_SAID]
    _BESIDE_SAID.update(found)
    _BESIDE.update(beside)
    return found
