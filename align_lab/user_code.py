"""The user's own modules: which ones a process imported, where `import name` would find one, the files
and environment variables their code read, and their digests. Standard library only, below every floor, so
that the training loop's checkpoint can record what the user's code used as it ran (run/inputs.py: the
inputs a resume checks)."""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # align_lab's own code: the training code's digest, not an input
INSTALLED = {
    Path(p).resolve() for k, p in sysconfig.get_paths().items() if k in ("stdlib", "purelib", "platlib")
}


def user_module_file(name: str) -> Path | None:
    """The source file of module `name` if it is the user's: already imported by the run's build, and
    neither align_lab's nor installed (the standard library, site-packages). Else None. A module not yet
    imported (one a function imports in its body, at its first call) is found where it would be imported
    from, without running it (issue 73 fourth hunt: such a helper, edited, was resumed on in silence)."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None) if module is not None else unimported_file(name)
    if not file:
        return None
    path = Path(file).resolve()
    if path.is_relative_to(PACKAGE) or "site-packages" in path.parts or "dist-packages" in path.parts:
        return None
    if any(path.is_relative_to(p) for p in INSTALLED):
        return None
    # a module imported from a zip on PYTHONPATH (<lib>.zip/mod.py): the archive is the file (eighth hunt:
    # reading the path as a file said "is a file, not a folder; choose another hydra.run.dir")
    return next((p for p in (path, *path.parents) if p.is_file()), None)


def unimported_file(name: str) -> str | None:
    """The source file `import name` would load, found on sys.path without importing anything; None if
    none (a built-in module, a name nothing provides)."""
    from importlib.machinery import PathFinder

    spec, search = None, None
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        if depth > 1 and search is None:  # a parent that is a module, not a package
            return None
        spec = PathFinder.find_spec(".".join(parts[:depth]), search)
        if spec is None:
            return None
        search = spec.submodule_search_locations
    return spec.origin if spec.has_location else None


CHECKOUT = tuple(PACKAGE.parent / d for d in ("benchmarks", "tests", "scripts", "hydra_plugins"))
_USERS: dict[tuple[str, str], Path | None] = {}  # (module, file) -> the file where it is the user's
_DIGESTS: dict[tuple[str, int, int], str] = {}  # (file, size, mtime_ns) -> sha256: a checkpoint re-reads none


def imported_modules() -> dict[str, dict]:
    """{`module <name>`: {file, sha256}} of every module of the user's this process has imported by now,
    kept in each checkpoint: a helper a reward imports by a name it computes, or one found on a sys.path
    it changed at run time, which no config value names (issue 73 seventh hunt: such a helper, edited
    between a kill and the resume, went on in silence). align_lab's checkout (its tests, benchmarks,
    scripts, Hydra plugins) is the code's, not the user's."""
    found = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or name == "__main__" or not file.endswith(".py"):
            continue
        if (name, file) not in _USERS:  # each module classified once a process (thousands: torch's)
            path = user_module_file(name)
            ours = path is None or any(path.is_relative_to(d) for d in CHECKOUT)
            _USERS[name, file] = None if ours else path
        path = _USERS[name, file]
        if path is None:
            continue
        digest = file_digest(path)
        if digest is not None:
            found[f"module {name}"] = {"file": str(path), "sha256": digest}
    return found


HASH_LIMIT = 64 << 20  # a file above it is known by its size and time, not read whole at each checkpoint


def file_digest(path: Path) -> str | None:
    """sha256 (16 hex) of a file, read again only when its size or time changed (one above HASH_LIMIT:
    of its size and time); None: gone, or no regular file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        try:
            data = path.read_bytes() if stat.st_size <= HASH_LIMIT else f"{key[1:]}".encode()
        except OSError:
            return None
        _DIGESTS[key] = hashlib.sha256(data).hexdigest()[:16]
    return _DIGESTS[key]


_OPENED: dict[str, None] = {}  # files the user's code opened to read, in order (watch_opened)
_WRITTEN: dict[str, None] = {}  # files this process opened to write (any code)
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND  # os.open's flags that write
_CODE: dict[str, str | None] = {}  # a frame's file -> whose code it is (_whose)


def watch_opened() -> None:
    """From now on, note each file this process opens to read while code of the user's is running (a
    JSON of settings a reward reads, a helper it runs with runpy or loads with spec_from_file_location:
    eighth hunt), for opened_files. An audit hook (sys.addaudithook): once a process, never removed; each
    run calls it as it begins, forgetting the files of any run before it in this process (a sweep's)."""
    _OPENED.clear()
    _WRITTEN.clear()
    _READ_ENV.clear()
    if not _HOOKED:
        _HOOKED.append(True)
        sys.addaudithook(_on_audit)
        if type(os.environ) is os._Environ:  # noqa: SLF001 (its reads, as _WatchedEnviron notes them)
            os.environ.__class__ = _WatchedEnviron


_HOOKED: list[bool] = []


def _on_audit(event: str, args: tuple) -> None:
    if event != "open":
        return
    try:
        path, mode, flags = args[0], args[1], args[2]
        if not isinstance(path, str):
            return
        path = os.path.abspath(path)  # the same file, however the code named it
        if (
            mode is None
            and isinstance(flags, int)
            and flags & WRITES
            or mode
            and any(c in mode for c in "wax+")
        ):
            _WRITTEN[path] = None  # this process's own output (a temporary file read back): no input
            return
        if path.endswith(".pyc") or path.startswith(("/proc/", "/sys/", "/dev/")) or path in _OPENED:
            return
        if _users_call(sys._getframe(1)):
            _OPENED[path] = None
    except Exception:  # an audit hook that raises would fail the open itself
        return


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
    """_whose(filename), once a process for each file."""
    if filename not in _CODE:
        _CODE[filename] = _whose(filename)
    return _CODE[filename]


_READ_ENV: dict[str, None] = {}  # environment variables the user's code read, set or not (watch_opened)
# set by a launcher or scheduler for each process or requeue, not a setting of the user's code
LAUNCHERS = ("SLURM_", "SUBMITIT_", "TORCHELASTIC_", "OMPI_", "PMI_", "PMIX_")
PER_PROCESS = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR"}
PER_PROCESS |= {"MASTER_PORT", "CUDA_VISIBLE_DEVICES", "HOSTNAME", "PWD", "OLDPWD", "SHLVL", "_"}


class _WatchedEnviron(os._Environ):  # noqa: SLF001
    """os.environ, which notes each variable the user's code reads (`os.environ[...]`, `.get`,
    `os.getenv`, `in`): eighth hunt, a helper chosen by `os.environ["HELPER"]`, another value on resume."""

    def __getitem__(self, key):
        _note_env(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        _note_env(key)
        return super().__contains__(key)

    def __iter__(self):
        """A read of every variable (`dict(os.environ)`, `{**os.environ}`, `.copy()`, `.items()`: a
        subprocess's environment) is no setting: the frames iterating now are marked, and the reads they
        make as they iterate are not noted (_bulk_read)."""
        _BULK.clear()
        frame = sys._getframe(1)
        for _ in range(4):
            if frame is None:
                break
            _BULK[id(frame)] = frame.f_lasti
            frame = frame.f_back
        yield from super().__iter__()


_BULK: dict[int, int] = {}  # the frames that last iterated os.environ -> their instruction then


def _bulk_read(caller) -> bool:
    """A read made as a frame iterates os.environ: a C loop (`dict(...)`) still at that instruction, or a
    Python one of the standard library's (ItemsView)."""
    lasti = _BULK.get(id(caller))
    if lasti is None:
        return False
    return lasti == caller.f_lasti or _frame_of(caller.f_code.co_filename) != "user"


ONE_READ = ("get", "getenv")  # the standard library's reads of one variable by name


def _note_env(key) -> None:
    """Notes variable `key` read by the user's code itself (not by a library it calls: tempfile's TMPDIR,
    expanduser's HOME, which a scheduler may set for each job)."""
    try:
        if not isinstance(key, str) or key in _READ_ENV or key.startswith(LAUNCHERS) or key in PER_PROCESS:
            return
        caller = sys._getframe(2)
        while (
            caller is not None
            and caller.f_code.co_name in ONE_READ
            and _frame_of(caller.f_code.co_filename) is None
        ):
            caller = caller.f_back  # os.environ.get (Mapping.get), os.getenv: the user's code called them
        if caller is not None and not _bulk_read(caller) and _frame_of(caller.f_code.co_filename) == "user":
            _READ_ENV[key] = None
    except Exception:  # as the audit hook: never the read's own failure
        return


def env_digest(name: str) -> str:
    """sha256 (16 hex) of an environment variable's value (never the value: it may be a secret), or
    `unset`."""
    value = os.environ.get(name)  # align_lab's own read: not noted
    return "unset" if value is None else hashlib.sha256(value.encode()).hexdigest()[:16]


def _whose(filename: str) -> str | None:
    """A frame's file: "align_lab" (the package), "user" (a .py file neither align_lab's checkout's nor
    installed) or None (the standard library, site-packages, the checkout's tests and scripts, frozen)."""
    if not filename.endswith(".py"):
        return None
    path = Path(filename).resolve()
    if path.is_relative_to(PACKAGE):
        return "align_lab"
    if any(path.is_relative_to(d) for d in CHECKOUT):
        return None
    if "site-packages" in path.parts or "dist-packages" in path.parts:
        return None
    return None if any(path.is_relative_to(p) for p in INSTALLED) else "user"


def used_by_user_code() -> dict[str, dict]:
    """What each checkpoint keeps of the user's code's own inputs: the modules imported by now
    (`module <name>`), the other files it opened to read (`file <path>`) and the environment variables it
    read (`env <name>`, its file `$<name>`), each {file, sha256}."""
    found = imported_modules()
    known = {v["file"] for v in found.values()}
    for name in list(_OPENED):
        if name in _WRITTEN:
            continue
        path = Path(name).resolve()
        digest = file_digest(path) if str(path) not in known and path.is_file() else None
        if digest is not None:
            found[f"file {path}"] = {"file": str(path), "sha256": digest}
    for name in list(_READ_ENV):
        found[f"env {name}"] = {"file": f"${name}", "sha256": env_digest(name)}
    return found


def digest_now(key: str, record: dict) -> str:
    """What a checkpoint's record of the user's code's input (used_by_user_code: `module`, `file`, `env`)
    digests to now; `gone`: the file was deleted."""
    if key.startswith("env "):
        return env_digest(key.removeprefix("env "))
    return file_digest(Path(record["file"])) or "gone"
