"""The file a benchmark writes its result to (`--json`), checked before any run: each benchmark takes
minutes, and a name that cannot be written failed only after them (the twelfth hunt: /proc/x.json), or
waited for ever (a named pipe: fifth hunt of 2026-12-04); and a default name no other result holds."""

from __future__ import annotations

from pathlib import Path


def json_problem(value: str) -> str | None:
    """Why `--json value` cannot take the result, in words ending with what to do; None: it can."""
    path = Path(value)
    if not value.strip():
        why = "is empty"
    elif path.is_dir():
        why = "is a folder"
    elif not path.parent.is_dir():
        why = f"names a folder that does not exist ({path.parent})"
    else:
        why = f"cannot be written ({said})" if (said := unwritable(path)) else None
    return f"{why}; give a file to write the result to" if why else None


def unwritable(path: Path) -> str | None:
    """Why `path` cannot be written (opened to append, a new one removed again), or None. A named pipe's
    open waited for a reader, for ever: said, not opened."""
    from align_lab.file_kinds import special

    if kind := special(path):
        return f"{kind}, not a file"
    existed = path.exists()
    try:
        with open(path, "a"):
            pass
    except OSError as e:
        return e.strerror or type(e).__name__
    if not existed:
        path.unlink()
    return None


def fresh(folder: Path, stem: str) -> Path:
    """`folder/stem.json`, made empty for the result, or `stem-2.json`, `stem-3.json`... where a result
    has that name: two benchmarks started in one second (their default names, to the second) wrote one
    file, the first's result lost with no word (seventh hunt of 2026-12-04, b15); a second acceptance run
    of a day replaced the first's record (g5)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = folder / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
        try:
            with open(path, "x"):
                return path
        except FileExistsError:
            n += 1
