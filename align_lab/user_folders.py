"""The files beside the user's code: what each checkpoint keeps of the folders its modules and the files
it read lie in (each file's size and time), so that a resume can say which changed since, whether or not
align_lab saw the code read them (a parquet file pyarrow reads in C++, a flag tested with os.path.exists,
a file a command reads by itself: ninth hunt, each resumed in silence). A warning, never a refusal:
align_lab cannot tell whether the code reads them. Standard library only."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterable, Iterator

SKIPPED = (".pyc", ".out", ".err", ".log", ".swp", "~")  # logs a job writes beside its code, editors' files
MAX_FILES = 2000  # a folder with more (a home folder, a dataset's) is not listed at each checkpoint
NOT_WATCHED = ("/proc", "/sys", "/dev", "/usr", "/bin", "/lib", "/etc", "/sbin", "/opt", "/var")
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
        try:
            with os.scandir(folder) as entries:
                files = [e for e in entries if not e.name.startswith(".") and not e.name.endswith(SKIPPED)]
            if len(files) > MAX_FILES:
                continue
            found[folder] = {e.name: _size_and_time(e, mine, streams) for e in files if e.is_file()}
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
        key = (os.path.abspath(module), stat.st_size, stat.st_mtime_ns, skipped, os.getcwd())
        if key not in _NAMED:
            _NAMED[key] = _folders_named(module, skipped)
        found += _NAMED[key]
    return found


def _folders_named(module: str, skip: tuple[str, ...]) -> list[str]:
    try:
        with open(module, "rb") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return []
    here = os.path.dirname(os.path.abspath(module))
    # its folder's parent too: `Path(__file__).parent.parent / "data"`, a project's src/ beside its data/
    bases = (here, os.path.dirname(here), os.getcwd())
    folders = set()
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) else None
        if not isinstance(text, str) or not 0 < len(text) < 1024 or "\n" in text or "\0" in text:
            continue
        text = os.path.expanduser(text)  # "~/data/w.parquet" (thirty-sixth hunt, case 33)
        for path in [text] if os.path.isabs(text) else [os.path.join(b, text) for b in bases]:
            if (folder := _folder_of(path, skip)) is not None:
                folders.add(folder)
    return sorted(folders)


def folders_in_values(values: Iterable[str], skip: Iterable[str] = ()) -> list[str]:
    """The folders absolute paths among `values` name (the environment variables the user's code read:
    `DATA=/data/w.parquet`, thirty-sixth hunt, case 31), as a module's constants are read."""
    skipped = tuple(os.path.abspath(s) for s in skip)
    paths = [os.path.expanduser(v) for v in values if v and len(v) < 1024 and "\0" not in v]
    found = {_folder_of(p, skipped) for p in paths if os.path.isabs(p)}
    return sorted(f for f in found if f is not None)


def _folder_of(path: str, skip: tuple[str, ...]) -> str | None:
    """The folder `path` names (itself, or a file's), where it exists and is watched."""
    path = os.path.abspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(path) if os.path.isfile(path) else None
    return folder if folder and _watchable(folder, skip) else None


def folders_in_settings(files: Iterable[str], skip: Iterable[str] = ()) -> list[str]:
    """The folders the JSON files the user's code read name in their strings, as a module's constants are
    read (named_folders): a settings file naming the parquet a reward reads with pyarrow (in C: no open
    for the audit hook), edited between a kill and the resume, trained on in silence (thirty-fifth hunt,
    case 29). Files over a MiB, or that do not parse, are passed over."""
    skipped = tuple(os.path.abspath(s) for s in skip)
    found: set[str] = set()
    for file in files:
        try:
            if not file.endswith(".json") or os.path.getsize(file) > 2**20:
                continue
            with open(file, "rb") as f:
                texts = list(_strings(json.load(f)))
        except (OSError, ValueError, RecursionError):
            continue
        for text in texts:  # an absolute one as it is
            if (folder := _folder_of(os.path.join(os.path.dirname(file), text), skipped)) is not None:
                found.add(folder)
    return sorted(found)


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
            if path in skip or (name in files and files[name] is None):
                continue
            if name not in mine:
                lines.append(f"{path} (gone)")
            elif name not in files:
                lines.append(f"{path} (new)")
            elif mine[name] is not None and list(mine[name]) != list(files[name]):
                lines.append(f"{path} (changed)")
    return lines


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
