"""The files beside the user's code: what each checkpoint keeps of the folders its modules and the files
it read lie in (each file's size and time), so that a resume can say which changed since, whether or not
align_lab saw the code read them (a parquet file pyarrow reads in C++, a flag tested with os.path.exists,
a file a command reads by itself: ninth hunt, each resumed in silence). A warning, never a refusal:
align_lab cannot tell whether the code reads them. Standard library and user_code.py only."""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator

from align_lab.user_code import working_folder

SKIPPED = (".pyc", ".out", ".err", ".log", ".swp", "~")  # logs a job writes beside its code, editors' files
MAX_FILES = 2000  # a folder with more (a home folder, a dataset's) is not listed at each checkpoint
# not /var/tmp nor /opt: data kept there is the code's too (39th hunt, case 17: a parquet there went unseen)
NOT_WATCHED = tuple("/proc /sys /dev /usr /bin /lib /etc /sbin /var/lib /var/log /var/cache".split())
_NAMED: dict[tuple, list[str]] = {}  # (module file, size, mtime_ns, skip) -> the folders it names


def snapshot(folders: Iterable[str], written: Iterable[str] = ()) -> dict[str, dict[str, list[int] | None]]:
    """{folder: {file name: [size, mtime_ns]}} of the regular files (a link by the file it points to) of
    each folder, less hidden and SKIPPED names; a file this process wrote, or its stdout or stderr, is kept
    as None (its output: no input, even if it changes). A folder that cannot be read, or holds more than
    MAX_FILES, is left out."""
    mine = {os.path.abspath(w) for w in written}
    streams = set()  # this process's stdout and stderr where they are files (`> run.txt 2>&1`: tenth hunt)
    for fd in (1, 2):
        try:
            stat = os.fstat(fd)
            streams.add((stat.st_dev, stat.st_ino))
        except OSError:
            continue
    found = {}
    for folder in sorted(set(folders)):
        if _within_a_run(folder):  # the code listed the run's own folder (44th hunt, case 23): its outputs
            continue
        try:
            files = _entries(folder, DEPTH)
        except OSError:
            continue
        if files is not None:
            found[folder] = {name: _size_and_time(e, mine, streams) for name, e in files}
    return found


DEPTH = 2  # levels of subfolders listed below a watched folder (`data/v2/w.parquet` beside the code:
# thirty-eighth hunt, case 6); not a run's folder under outputs/, whose files lie deeper
NOT_LISTED = ("__pycache__", "outputs", "multirun", "wandb", "checkpoints", "node_modules")  # outputs, tools
RAN = (".hydra", "run.lock", "study.json", "multirun.yaml")  # a run's or a sweep's folder holds one
OUR_CACHE = "# a stage cache of align_lab's"  # its CACHEDIR.TAG's line (cache.py): another tool's is no sign


def _ran(folder: str) -> bool:
    """A run's or a sweep's folder (hydra.run.dir beside the code), or a stage cache (cache_dir beside it:
    its lock files were said `new`): what it writes is no input, and a file it wrote after a checkpoint
    was said `new` on resume."""
    if any(os.path.lexists(os.path.join(folder, name)) for name in RAN):
        return True
    try:  # a download cache's tag (huggingface_hub writes one) says nothing of who wrote it: 39th hunt, 47
        with open(os.path.join(folder, "CACHEDIR.TAG"), encoding="utf-8", errors="replace") as tag:
            return OUR_CACHE in tag.read(4096)
    except OSError:
        return False


def _within_a_run(folder: str) -> bool:
    """A run's, a sweep's or a stage cache's folder, or one up to 3 levels below it: the run's outputs."""
    return any(_ran(os.path.abspath(os.path.join(folder, *[".."] * up))) for up in range(4))


def _entries(folder: str, depth: int, prefix: str = "", left: list | None = None) -> list | None:
    """(name relative to the watched folder, DirEntry) of its regular files and those `depth` levels of
    subfolders down, hidden and SKIPPED names aside; None where the folder holds more than MAX_FILES (a
    subfolder that does is left out: a dataset's, not the folder's own files; and once MAX_FILES entries
    of subfolders were read, the others)."""
    with os.scandir(folder) as entries:
        kept = [e for e in entries if not e.name.startswith(".") and not e.name.endswith(SKIPPED)]
    left = [MAX_FILES] if left is None else left
    if len(kept) > MAX_FILES or (prefix and left[0] < len(kept)):
        return None
    if prefix:
        left[0] -= len(kept)
    found = []
    for e in kept:
        if e.is_file():
            found.append((prefix + e.name, e))
        elif depth > 0 and e.name not in NOT_LISTED and e.is_dir(follow_symlinks=False) and not _ran(e.path):
            try:
                found += _entries(e.path, depth - 1, f"{prefix}{e.name}/", left) or []
            except OSError:
                continue
    return found


def named_folders(modules: Iterable[str], skip: Iterable[str] = ()) -> list[str]:
    """The folders the user's modules name in their string constants: a constant that names an existing
    file (absolute, or relative to its module's folder or the working folder) gives the file's folder, one
    that names a folder gives that folder (tenth hunt: a parquet file pyarrow reads in C++, kept one folder
    away from the code, edited between a kill and the resume, went on in silence). Not a top-level folder
    (/, /tmp, a home folder's parent), the system's, nor those under `skip` (installed code)."""
    found: list[str] = []
    for module in modules:
        try:
            stat = os.stat(module)
        except OSError:
            continue
        skipped = tuple(os.path.abspath(s) for s in skip)
        key = (os.path.abspath(module), stat.st_size, stat.st_mtime_ns, skipped, working_folder())
        found += _NAMED[key] if key in _NAMED else _NAMED.setdefault(key, _folders_named(module, skipped))
    return found


def _folders_named(module: str, skip: tuple[str, ...]) -> list[str]:
    try:
        with open(module, "rb") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return []
    texts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and _path_like(n.value)]
    return _folders_of(texts, _bases(module), skip)


def _bases(module: str) -> tuple[str, ...]:
    """The folders a relative name in `module` may be relative to: its own, its parent (`Path(__file__)
    .parent.parent / "data"`, a project's src/ beside its data/), the working folder and the home folder
    (`Path.home() / "d" / "w.parquet"`: thirty-seventh hunt, case 9)."""
    here = os.path.dirname(os.path.abspath(module))
    return here, os.path.dirname(here), working_folder(), os.path.expanduser("~")


def _path_like(text) -> bool:
    return isinstance(text, str) and 0 < len(text) < 1024 and "\n" not in text and "\0" not in text


def _folders_of(texts: Iterable[str], bases: tuple[str, ...], skip: tuple[str, ...]) -> list[str]:
    """The watched folders `texts` name: each absolute (`~` expanded: thirty-sixth hunt, case 33), or
    relative to one of `bases`."""
    folders = set()
    for text in dict.fromkeys(os.path.expanduser(t) for t in texts):
        for path in [text] if os.path.isabs(text) else [os.path.join(b, text) for b in bases]:
            if (folder := _folder_of(path, skip)) is not None:
                folders.add(folder)
    return sorted(folders)


def folders_in_globals(modules: Iterable[str], skip: Iterable[str] = ()) -> list[str]:
    """The folders the user's modules (their files) name in their globals as they are now: a path made as
    the module ran, not written in it (`Path.home() / "d" / "w.parquet"`, `os.environ["DATA"]`, a TOML
    setting's value: thirty-seventh hunt, cases 7-9, a parquet pyarrow reads in C++ resumed in silence),
    in a string, a path or a list, tuple, set or dict of them (MAX_VALUES at most a module)."""
    wanted = {os.path.abspath(m) for m in modules}
    skipped = tuple(os.path.abspath(s) for s in skip)
    found: set[str] = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.abspath(file) in wanted:
            values = _values(list(vars(module).items()), MAX_VALUES)
            found.update(_folders_of(values, _bases(file), skipped))
    return sorted(found)


MAX_VALUES = 2000  # strings followed in one module's globals (a vocabulary list: not a stat each)
# a copy of the environment's (`dict(os.environ)`) folders that are the shell's or the machine's, no input of
# the code's: $OLDPWD named another checkout "beside your code" (forty-third hunt, case 18)
SHELLS_OWN = {"OLDPWD", "PWD", "_", "HOME", "TMPDIR", "TMP", "TEMP", "VIRTUAL_ENV", "SHELL", "MAIL", "PATH"}
TOOLS = ("PIP_", "SSL_", "XDG_", "PYENV_", "CONDA_", "NVM_", "CARGO_", "RUSTUP_")  # tools' own settings


def _values(items: list, left: int, depth: int = 0) -> list[str]:
    """The path-like strings among a namespace's or container's values, its own names' (dunder) aside."""
    found: list[str] = []
    for name, value in items:
        if len(found) >= left:
            break
        if isinstance(name, str) and (name.startswith("__") or name in SHELLS_OWN or name.startswith(TOOLS)):
            continue
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if _path_like(value):
            found.append(value)
        elif depth < 3 and isinstance(value, dict):
            found += _values(list(value.items())[: left - len(found)], left - len(found), depth + 1)
        elif depth < 3 and isinstance(value, list | tuple | set | frozenset):
            found += _values(
                [(None, v) for v in list(value)[: left - len(found)]], left - len(found), depth + 1
            )
    return found


def folders_in_values(values: Iterable[str], skip: Iterable[str] = ()) -> list[str]:
    """The folders paths among `values` name (the environment variables the user's code read:
    `DATA=/data/w.parquet`, thirty-sixth hunt, case 31), absolute or relative to the working folder
    (`DATA=../d/w.parquet`: thirty-seventh hunt, case 7), as a module's constants are read."""
    skipped = tuple(os.path.abspath(s) for s in skip)
    return _folders_of([v for v in values if _path_like(v)], (working_folder(),), skipped)


def _folder_of(path: str, skip: tuple[str, ...]) -> str | None:
    """The folder `path` names (itself, or a file's), where it exists and is watched."""
    path = os.path.abspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(path) if os.path.isfile(path) else None
    return folder if folder and _watchable(folder, skip) else None


def folders_in_settings(files: Iterable[str], skip: Iterable[str] = ()) -> list[str]:
    """The folders the settings files the user's code read name, as a module's constants are read
    (named_folders): a JSON file's strings, and a TOML, YAML, INI or any other text file's quoted strings
    and words holding a `/` (a settings file naming the parquet a reward reads with pyarrow, in C: no open
    for the audit hook, edited between a kill and the resume, trained on in silence: thirty-fifth hunt,
    case 29, JSON; thirty-seventh, case 8, TOML), relative to the file's folder or the working folder.
    Files over a MiB, modules, and files that are not UTF-8 text (or JSON that does not parse) are
    passed over."""
    skipped = tuple(os.path.abspath(s) for s in skip)
    found: set[str] = set()
    for file in files:
        try:
            if file.endswith((".py", ".pyc", ".so")) or os.path.getsize(file) > 2**20:
                continue
            with open(file, "rb") as f:
                data = f.read()
            texts = list(_strings(json.loads(data))) if file.endswith(".json") else _words(data.decode())
        except (OSError, ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            continue
        found.update(_folders_of(texts[:MAX_VALUES], (os.path.dirname(file), working_folder()), skipped))
    return sorted(found)


QUOTED = re.compile(r"""["']([^"'\n]{1,1023})["']""")
WORD = re.compile(r"""[^\s"'=:,;\[\]{}()]+""")


def _words(text: str) -> list[str]:
    """A text's quoted strings, then its words that hold a `/` or start with `~` (a path unquoted)."""
    words = [w for w in WORD.findall(text) if "/" in w or w.startswith("~")]
    return [*dict.fromkeys([*QUOTED.findall(text), *words])]


def _strings(value) -> Iterator[str]:
    """Each string of a JSON value that could name a path (neither empty nor over 1 KiB, on one line)."""
    if isinstance(value, str) and 0 < len(value) < 1024 and "\n" not in value and "\0" not in value:
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _watchable(folder: str, skip: tuple[str, ...]) -> bool:
    parts = folder.strip(os.sep).split(os.sep)
    if len(parts) < 2 or not parts[0] or "site-packages" in parts or "dist-packages" in parts:
        return False
    return not any(folder == s or folder.startswith(s.rstrip(os.sep) + os.sep) for s in NOT_WATCHED + skip)


def _size_and_time(entry: os.DirEntry, written: set[str], streams: set) -> list[int] | None:
    if entry.path in written:
        return None
    stat = entry.stat()
    return None if (stat.st_dev, stat.st_ino) in streams else [stat.st_size, stat.st_mtime_ns]


def changed_beside(saved: dict, now: dict, known: Iterable[str] = ()) -> list[str]:
    """`<folder>/<name> (changed|new|gone)` for each file of a saved snapshot's folders that differs now,
    less the files in `known` (checked as inputs already, and said there) and those the run wrote."""
    skip = {os.path.abspath(k) for k in known}
    lines = []
    for folder, files in saved.items():
        mine = now.get(folder, {})
        for name in sorted(set(files) | set(mine)):
            path = os.path.join(folder, name)
            output = files.get(name, 0) is None or (name not in files and mine.get(name, 0) is None)
            if path in skip or output:  # the run's then, or new and its now (a resume's `> out2.txt`)
                continue
            if name not in mine:
                lines.append(f"{path} (gone)")
            elif name not in files:
                lines.append(f"{path} (new)")
            elif mine[name] is not None and list(mine[name]) != list(files[name]):
                lines.append(f"{path} (changed)")
    return list(dict.fromkeys(lines))  # a file under two watched folders (one below the other): once


def beside_warning(lines: list[str], checkpoint: str) -> str | None:
    """The resume's warning for the files changed beside the user's code, or None."""
    if not lines:
        return None
    shown = ", ".join(lines[:5]) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
    return (
        f"files beside your code changed since the checkpoint in {checkpoint} was written: {shown}; "
        "align_lab cannot tell whether your code reads them (a compiled reader, a command it runs, "
        "os.path.exists): if it does, the run resumes on other inputs than it trained on "
        "(docs/reproducibility.md)"
    )


def listing_digest(folder) -> str | None:
    """sha256 of the names, sizes and times of the files below `folder` (hidden ones aside), the digest a
    folder a config value names is checked by on resume; None past MAX_FILES of them (a dataset's tree)."""
    import hashlib
    from pathlib import Path

    files = []
    for f in Path(folder).rglob("*"):  # a walk cut short past MAX_FILES, not a home folder's whole tree
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts):
            files.append(f)
            if len(files) > MAX_FILES:
                return None
    digest = hashlib.sha256()
    for f in sorted(files):
        stat = f.stat()
        digest.update(f"{f.relative_to(folder)}\0{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()
