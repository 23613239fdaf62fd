"""What a path is where a run reads or writes one of its files, or a teacher's: a named pipe (mkfifo), a
socket or a device is none of a file, a folder or a link, and a read of a pipe waits for ever (hunt of
2026-12-04, c70-c72: a resume, a run and a student hung at admission with no line). Standard library only."""

from __future__ import annotations

import stat
from pathlib import Path

KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def special(path: Path) -> str | None:
    """ "a named pipe", "a socket" or "a device" for such a `path` (not followed where it is a link); None for
    a file, a folder, a link or nothing there."""
    try:
        mode = Path(path).lstat().st_mode
    except OSError:
        return None
    return next((kind for test, kind in KINDS if test(mode)), None)


def special_inside(folder: Path) -> list[Path]:
    """The entries of `folder` that are special files (`special`); [] where it is no folder."""
    try:
        return sorted(p for p in Path(folder).iterdir() if special(p))
    except OSError:
        return []
