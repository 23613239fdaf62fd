"""Around the build (or load) of a DeepSpeed op that torch compiles on first use: torch makes the build
folder's `lock` file (torch.utils.file_baton, O_EXCL) and every later load waits, forever, for it to go;
a process killed while it builds never removes it, and every DeepSpeed run on the machine then waited
in silence (seventeenth hunt). A process of ours notes itself in that folder as it loads the op
(`align_lab.building.<pid>`): a lock whose every noter has died is theirs, and is removed with a
warning; a lock none of ours made (another program's build of it) is waited for, said after
LOCK_SAID_S, and refused after LOCK_WAIT_S."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from align_lab.value_checks import ConfigError

log = logging.getLogger("align_lab")
NOTE = "align_lab.building."  # + the pid of a process of ours loading the op
LOCK_SAID_S = 10.0
LOCK_WAIT_S = 600.0  # a cold build of DeepSpeed's CPU comm op takes about a minute on 2 cores


def build_folder(name: str) -> Path:
    """Where torch builds (and caches) extension `name`: TORCH_EXTENSIONS_DIR's, as torch names it."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(name, verbose=False))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def stale(folder: Path) -> list[Path]:
    """The notes of ours whose processes have died, where the build's lock is theirs: every note in the
    folder is of a dead process (none: not ours, or not stale)."""
    notes = list(folder.glob(f"{NOTE}*"))
    pids = [int(n.name.removeprefix(NOTE)) for n in notes if n.name.removeprefix(NOTE).isdigit()]
    return notes if notes and not any(_alive(pid) for pid in pids) else []


def noted(folder: Path, note: Path, say: bool = True, clock=time.monotonic) -> None:
    """Makes `note` once `folder`'s lock is gone or was a dead process of ours' (removed, with a warning);
    another's lock is waited for, said after LOCK_SAID_S, and refused (ConfigError) after LOCK_WAIT_S.
    Each look is under a file lock of ours (the kernel's, let go with the process), so that two processes
    finding one stale lock never take a live one for it."""
    lock, begun, said = folder / "lock", clock(), False
    while True:
        with _flocked(folder.parent / f"{folder.name}.align_lab"):
            dead = stale(folder) if lock.exists() else []
            if dead:
                for gone in [lock, *dead]:
                    gone.unlink(missing_ok=True)
                if say:
                    log.warning(f"warning: {lock}: left by a build of the op that was killed; removed")
            if not lock.exists():
                note.touch()
                return
        waited = clock() - begun
        if waited > LOCK_WAIT_S:
            raise ConfigError(
                f"{lock}: DeepSpeed's op build has waited {waited:.0f} s for it to go: if no build of the op "
                f"runs (`ps aux | grep ninja`), one that was killed left it: delete it, then rerun"
            )
        if waited > LOCK_SAID_S and not said and say:
            said = True
            log.warning(
                f"warning: DeepSpeed's op build waits for {lock} (another build of the op under way); "
                f"if none runs, one that was killed left it: delete it"
            )
        time.sleep(0.2)


@contextmanager
def _flocked(path: Path) -> Iterator[None]:
    import fcntl

    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


@contextmanager
def op_build(name: str, say: bool = True) -> Iterator[None]:
    """The block loads extension `name` (a DeepSpeed op, which torch may compile first), noted as ours."""
    folder = build_folder(name)
    folder.mkdir(parents=True, exist_ok=True)
    note = folder / f"{NOTE}{os.getpid()}"
    noted(folder, note, say)
    building = threading.Timer(BUILD_SAID_S, _say_building, (name, folder)) if say else None
    if building is not None:
        building.daemon = True
        building.start()
    try:
        yield
    finally:
        note.unlink(missing_ok=True)
        if building is not None:
            building.cancel()


BUILD_SAID_S = 5.0  # a cached op loads in 2-3 s; past this, torch compiles it (eighteenth hunt: ~35 s unsaid)


def _say_building(name: str, folder: Path) -> None:
    log.warning(
        f"DeepSpeed: compiling its op {name} in {folder} (about a minute on 2 cores; again whenever another "
        "venv or torch built the cached one: docs/backends.md)"
    )


@contextmanager
def comm_op_build(say: bool = True) -> Iterator[None]:
    """Around deepspeed.init_distributed, which loads (on CPU: builds once) DeepSpeed's shared-memory
    comm op (deepspeed.comm.torch.build_shm_op); an accelerator without it has nothing to guard."""
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is None:
        yield
        return
    with op_build(builder.name, say):
        yield
