"""A rank's place in os.environ, as torchrun sets it (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), and
what else joining a process group set there: put by train/distributed.py as a rank joins, taken back
(never a value the user set) as it leaves."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from align_lab.user_fds import let_go_named

OWN_ENV: dict[str, str] = {}  # what joining a group set in os.environ, which leaving takes back


def own_env(name: str, value: str) -> None:
    """os.environ[name] = value where it is not set, remembered: a run's group puts it there for the run,
    not for the children the process starts after it (a LOCAL_RANK left by a DeepSpeed run makes
    accelerate in a later TRL child wait for a process group). One it set itself it may set again."""
    if name not in os.environ or os.environ[name] == OWN_ENV.get(name):
        os.environ[name] = OWN_ENV[name] = value


def own_place(rank: int, size: int, local_rank: int, local_size: int | None = None) -> None:
    """RANK, WORLD_SIZE, LOCAL_RANK (and LOCAL_WORLD_SIZE where known), as torchrun sets them, for the
    run's own code (a reward that shards its judge by rank; the sixteenth hunt's notes: a spawned rank had
    none)."""
    for name, value in zip(PLACE, (rank, size, local_rank, local_size), strict=True):
        if value is not None:
            own_env(name, str(value))


PLACE = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


@contextmanager
def placed_env(rank: int, size: int) -> Iterator[None]:
    """os.environ with the place of rank `rank` of `size` on this node while a process is started, which
    inherits it (own_place's values, not a value the user set), then as it was."""
    before = {name: os.environ.get(name) for name in PLACE}
    for name, value in zip(PLACE, (rank, size, rank, size), strict=True):
        if name not in os.environ or os.environ[name] == OWN_ENV.get(name):
            os.environ[name] = str(value)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def forget_env() -> None:
    """Takes back what own_env set (and nothing the user set since), and the hold on the group's
    connections (user_fds.py): called once the group is gone, or was never joined."""
    for name, value in OWN_ENV.items():
        if os.environ.get(name) == value:
            del os.environ[name]
    OWN_ENV.clear()
    let_go_named(CONNECTIONS)


CONNECTIONS = "the ranks' connections"  # what user_fds.py calls the group's sockets
