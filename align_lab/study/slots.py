"""At most N runs of a local sweep at once: each job holds one of N lock files while it runs. Kept free of
torch and align_lab imports, so that a job waiting for its slot holds little memory."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def hold_slot(folder: Path, slots: int, poll_s: float = 0.5):
    """Waits until one of `slots` lock files in `folder` is free and holds it for the body: at most
    `slots` holders at once across processes. The OS frees a dead holder's lock (flock)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for i in range(slots):
            f = open(folder / f"slot-{i}.lock", "a")  # noqa: SIM115 - held across the yield
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            try:
                yield i
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
                f.close()
            return
        time.sleep(poll_s)
