"""A process that holds a file lock until told to let go: multiprocessing's spawn imports the module of
its target in the new interpreter, and this one imports filelock alone (a test module imports torch)."""

from __future__ import annotations


def hold_lock(path, ready, done):
    from filelock import FileLock

    with FileLock(path):
        ready.set()
        done.wait(60)
