"""The user's own modules: which ones a process imported, where `import name` would find one, and their
digests. Standard library only, below every floor, so that the training loop's checkpoint can record the
modules the user's code imported as it ran (run/inputs.py: the inputs a resume checks; user_reads.py: the
files and variables it read)."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import sysconfig
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # align_lab's own code: the training code's digest, not an input
INSTALLED = {
    Path(p).resolve() for k, p in sysconfig.get_paths().items() if k in ("stdlib", "purelib", "platlib")
}


def user_module_file(name: str, as_imported: bool = False) -> Path | None:
    """The source file of module `name` if it is the user's: already imported by the run's build, and
    neither align_lab's nor installed (the standard library, site-packages). Else None. A module not yet
    imported (one a function imports in its body, at its first call) is found where it would be imported
    from, without running it (issue 73 fourth hunt: such a helper, edited, was resumed on in silence).
    `as_imported`: by the path Python imported it from, a link by its own name (51st hunt, case 32: a module
    replaced by a link to an identical copy elsewhere was "changed" on resume), else where links lead."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None) if module is not None else unimported_file(name)
    if not file:
        return None
    path = Path(file).resolve()
    if path.is_relative_to(PACKAGE) or installed(path):
        return None
    path = Path(os.path.abspath(file)) if as_imported else path
    # a module imported from a zip on PYTHONPATH (<lib>.zip/mod.py): the archive is the file (eighth hunt:
    # reading the path as a file said "is a file, not a folder; choose another hydra.run.dir")
    return next((p for p in (path, *path.parents) if p.is_file()), None)


def installed(path: Path) -> bool:
    """A file of Python's own or of an installed distribution: under the interpreter's library folders or
    a site-packages, or listed in the RECORD of a `*.dist-info` folder above it (`pip install --target DIR`
    on PYTHONPATH: the tests' openenv-core, whose modules and beartype's import hook were taken for the
    user's code and every file they read, a template or a module's source, for the run's inputs)."""
    if any(path.is_relative_to(p) for p in INSTALLED) or {"site-packages", "dist-packages"} & set(path.parts):
        return True
    return any(path.relative_to(folder).as_posix() in distributed(folder) for folder in path.parents)


_RECORDS: dict[Path, frozenset[str]] = {}  # a folder -> the files its distributions' RECORDs list


def installed_record(name: str) -> dict | None:
    """{file, sha256} of module `name` where a key names it (reward.path, task.verifier, a `_target_`) and
    it is installed, not the user's source (`pip install .` of a team's reward package): its distribution's
    RECORD, which lists each file's sha256 (reinstalled with other code between a kill and the resume, it
    was resumed on in silence: thirty-ninth hunt, case 12); None for Python's own, align_lab's, or none."""
    from importlib import metadata

    module = sys.modules.get(name)
    file = getattr(module, "__file__", None) if module is not None else unimported_file(name)
    path = Path(file).resolve() if file else None
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    if path is None or path.is_relative_to(PACKAGE) or path.is_relative_to(stdlib) or not installed(path):
        return None
    for dist in metadata.packages_distributions().get(name.partition(".")[0], []):
        record = metadata.distribution(dist).read_text("RECORD")
        if record:
            return {
                "file": f"{path} (installed: {dist})",
                "sha256": hashlib.sha256(record.encode()).hexdigest(),
            }
    return {"file": f"{path} (installed)", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def distributed(folder: Path) -> frozenset[str]:
    """The files (relative to `folder`) that the `*.dist-info` folders in `folder` say they installed."""
    if folder not in _RECORDS:
        try:
            infos = [e.path for e in os.scandir(folder) if e.name.endswith(".dist-info") and e.is_dir()]
        except OSError:
            infos = []
        files = set()
        for info in infos:
            try:
                files.update(line.split(",", 1)[0] for line in Path(info, "RECORD").read_text().splitlines())
            except (OSError, UnicodeDecodeError):
                continue
        _RECORDS[folder] = frozenset(files)
    return _RECORDS[folder]


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
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)  # a link: the file it points to now
    if key not in _DIGESTS:
        try:
            data = path.read_bytes() if stat.st_size <= HASH_LIMIT else f"{key[1:]}".encode()
        except OSError:
            return None
        _DIGESTS[key] = hashlib.sha256(data).hexdigest()[:16]
    return _DIGESTS[key]


@functools.lru_cache(maxsize=1 << 14)
def module_path(file: str) -> str:
    """The real path of a module's __file__, resolved once a process (it ran as imported from there): its
    imported modules are thousands, and each check read them all again (88 ms a call with 3,130)."""
    return os.path.realpath(file)


_FIRST_READ: dict[tuple[str, int], str] = {}  # (a module file of the user's, its module object) -> the
# file's sha256 when this process first digested it after importing it


def changed_since_imported(files: list[Path]) -> str | None:
    """The user's module files as this process first digested them after importing them: the line for
    one edited since (between the runs of a sweep in one process, Hydra's basic launcher), which runs as
    first imported while a digest of the file now would record code the run never ran (twenty-sixth hunt,
    case 34); None. A module imported again (a new module object) is digested anew."""
    loaded = {}
    for module in list(sys.modules.values()):
        if isinstance(getattr(module, "__file__", None), str):
            loaded[module_path(module.__file__)] = module
    for file in files:
        real = os.path.realpath(file)
        if real not in loaded:
            continue
        now = hashlib.sha256(file.read_bytes()).hexdigest()
        first = _FIRST_READ.setdefault((real, id(loaded[real])), now)
        if first != now:
            return (
                f"{file} changed since this process imported it (sha256 {first[:8]} then, {now[:8]} now): "
                f"its runs run {file.stem} as first imported; run a sweep's runs each in a process of its "
                "own (hardware=submitit_local) or put the file back as it was"
            )
    return None


def working_folder() -> str:
    """The folder the process runs in; where it was removed as the command ran, the path it had ($PWD):
    relative names then name files that do not exist, not os.getcwd()'s traceback (hunt of 2026-12-04)."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        return os.environ.get("PWD") or os.sep


def working_folder_removed() -> bool:
    """The folder the process runs in was removed: its path (os.getcwd's, else $PWD's) is no folder now;
    stat(".") cannot tell, it still reads the removed folder."""
    return not os.path.isdir(working_folder())


def importable(name: str) -> bool:
    """`import name` would find a module or a package with code, not a plain folder of that name (a namespace
    package: a ./vllm/ beside you passed rollout=vllm's check, then failed 34 s in: hunt of 2026-12-04)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    return spec is not None and spec.origin is not None


def why_not_found(error: ImportError) -> str:
    """An import's error as a line says it: where PYTHONSAFEPATH keeps the folder `python -m` runs in off
    sys.path and the module is there, that ("cannot import myrew (No module named 'myrew')" beside a
    ./myrew.py: hunt of 2026-12-04); else the error's own words."""
    top = (getattr(error, "name", None) or "").partition(".")[0]
    files = (f"{top}.py", os.path.join(top, "__init__.py"))
    here = next((f for f in files if top and os.path.isfile(f)), None)
    if not isinstance(error, ModuleNotFoundError) or not sys.flags.safe_path or here is None:
        return str(error)
    return (
        f"PYTHONSAFEPATH is set, so Python does not look in the folder you run in ({working_folder()}), "
        f"where ./{here} is: unset PYTHONSAFEPATH, or put the folder on PYTHONPATH"
    )
