"""Checkpoint files: written atomically behind a `last` pointer, a full disk reported as ENOSPC naming
the file, and checked readable before a resume loads one."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from align_lab.cache import disk_full_error


class CheckpointError(Exception):
    """A checkpoint that cannot be read: one line naming it and what to do."""


def save_or_enospc(obj, path: Path) -> None:
    """torch.save, where a full disk is the OSError(ENOSPC) naming `path` that the rest of the code
    reports in one line: torch raises a RuntimeError for it ("PytorchStreamWriter failed writing
    file", "[enforce fail at inline_container.cc] unexpected pos"), told apart by the free space left."""
    try:
        torch.save(obj, path)
    except RuntimeError as e:
        full = disk_full_error(e, path)
        if full is not None:
            raise full from e
        raise


def save_checkpoint(folder: Path, state: dict) -> None:
    """Writes `state-<step>.pt`, then atomically points `last` at it: a kill at any moment leaves a
    complete checkpoint whose step and contents agree."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"state-{state['step']:08d}.pt"
    try:
        save_or_enospc(state, folder / (name + ".tmp"))
        os.replace(folder / (name + ".tmp"), folder / name)
        (folder / "last.tmp").write_text(name)
        os.replace(folder / "last.tmp", folder / "last")
    except BaseException:  # a full disk or a signal: no half-written file stays behind
        for tmp in (folder / (name + ".tmp"), folder / "last.tmp"):
            tmp.unlink(missing_ok=True)
        raise
    for old in folder.glob("state-*.pt"):
        if old.name != name:
            old.unlink()


def checkpoint_step(folder: Path) -> int:
    """The step of the last checkpoint in `folder` (0 if none), read from its pointer."""
    pointer = folder / "last"
    return int(pointer.read_text().split("-")[1].split(".")[0]) if pointer.exists() else 0


def checkpoint_file(folder: Path, advice: str | None = None) -> Path | None:
    """The file `last` points at, checked readable without loading it (its zip records and CRCs);
    None if there is no checkpoint; CheckpointError if it is missing or damaged, with `advice` (default:
    delete the folder to start the run again; never for a folder of another run's, e.g. a teacher's)."""
    import zipfile

    pointer = folder / "last"
    if not pointer.exists():
        return None
    path = folder / pointer.read_text().strip()
    advice = advice or f"delete {folder} to start the run again from step 0"
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} (named by {pointer}) is missing; {advice}")
    if path.is_dir():  # a DeepSpeed checkpoint folder: its engine checks it
        return path
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({e}); {advice}") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path} is damaged ({bad} fails its CRC); {advice}")
    return path


def load_checkpoint(folder: Path, advice: str | None = None) -> dict | None:
    path = checkpoint_file(folder, advice)
    if path is None:
        return None
    try:
        return torch.load(path, weights_only=False)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e})") from None
