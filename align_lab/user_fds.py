"""The run's file descriptors through a call of the user's code (a reward, verifier or environment, beside
user_modes.py modes_kept: `fds_kept`). A reward that closed every descriptor past 2 (`os.closerange(3,
4096)`, as a daemonizing helper does) took the run's signal pipe, its log and its ranks' sockets: 99 lines
and five tracebacks, a first line guessing a SIGKILL, and under hardware=cpu_ddp gloo's abort in C with
summary.json left `running` (thirty-eighth hunt, cases 13 and 44).

Through a call, to the call's own thread and the threads it starts, the descriptors open as it began that
its code did not open look closed: `os.close` of one raises EBADF (as a second close of the user's own
would), `os.closerange` passes over them, `os.dup2` onto one and `os.ftruncate` or `os.truncate` of one
raise; said once. One the call closed
another way (in C, or a file object on it) that the run holds for good (its signal pipe, `hold`; its
log's) fails the call in one line (RunFdsLost): the run cannot go on without it."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

log = logging.getLogger("align_lab")
T = TypeVar("T")
_SAID: set = set()  # the calls already warned, once a process
USERS: set = set()  # (fd, identity) of the descriptors the user's code opened in its calls and imports
HELD: dict[int, str] = {}  # the run's descriptors for good, what each is (train/preemption.py's pipe)


class RunFdsLost(Exception):
    """A call of the user's code closed a descriptor the run holds, outside Python's os functions; its
    message is the whole line."""


def identity(fd: int) -> tuple[int, int, int] | None:
    """What file `fd` is open on (device, inode, special device), or None where it is closed."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_rdev


def open_fds() -> dict[int, tuple]:
    """The process's open descriptors and what each is open on ({} where /proc cannot say, or the call left
    no descriptor free to read it: its RLIMIT_NOFILE, put back after it by user_limits.py)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return {}
    found = {int(name): identity(int(name)) for name in names if name.isdigit()}
    return {fd: file for fd, file in found.items() if file is not None}


def what(fd: int) -> str:
    """`fd 7 (pipe:[123])`: a descriptor as /proc names what it is open on."""
    try:
        return f"fd {fd} ({HELD.get(fd) or os.readlink(f'/proc/self/fd/{fd}')})"
    except OSError:
        return f"fd {fd}"


def hold(name: str, *fds: int) -> None:
    HELD.update(dict.fromkeys(fds, name))


def held_since(before: dict[int, tuple], name: str) -> None:
    """hold(name, ...) of the descriptors opened since `before` (open_fds()): a library's sockets."""
    hold(name, *(fd for fd, file in open_fds().items() if before.get(fd) != file))


def let_go(*fds: int) -> None:
    for fd in fds:
        HELD.pop(fd, None)


def let_go_named(name: str) -> None:
    """let_go of every descriptor held as `name` (a closed group's sockets: left held, a later run in the
    process would take a descriptor of its own that reuses one of their numbers for the run's)."""
    let_go(*(fd for fd, what in list(HELD.items()) if what == name))


def logs_fds() -> dict[int, str]:
    """The descriptors the run's logging writes to past fd 2 (its app.log)."""
    found = {}
    for handler in logging.getLogger().handlers + log.handlers:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            fd = handler.stream.fileno()
            if fd > 2:
                found[fd] = f"log {getattr(handler, 'baseFilename', '')}".strip()
    return found


def users_own(make: Callable[[], T], yours: bool) -> T:
    """make(); where it builds a class of the user's (an environment's, set by `env._target_`), the
    descriptors it opened are the user's code's, which its calls may close."""
    before = open_fds() if yours else {}
    made = make()
    if yours:
        USERS.update((fd, file) for fd, file in open_fds().items() if before.get(fd) != file)
    return made


class Guard:
    """os.close, os.closerange and os.dup2 through a call: the descriptors `kept` look closed to the
    call's thread and the threads started in it, in this process (a fork's child closes what it likes)."""

    def __init__(self, kept: dict[int, tuple]) -> None:
        self.kept, self.tried, self.on = kept, {}, True  # fd: what the call tried (close, truncate)
        self.pid, self.thread = os.getpid(), threading.current_thread()
        self.others = set(threading.enumerate()) - {self.thread}  # the run's threads: not the call's
        self.real = os.close, os.closerange, os.dup2, os.ftruncate, os.truncate

    def guarding(self, fd: int, verb: str = "close") -> bool:
        here = threading.current_thread()
        ours = self.on and os.getpid() == self.pid and (here is self.thread or here not in self.others)
        if ours and fd in self.kept and identity(fd) == self.kept[fd]:
            self.tried.setdefault(fd, verb)
            return True
        return False

    def refused(self, fd: int, code: int = errno.EBADF) -> OSError:
        return OSError(code, f"{os.strerror(code)}: {what(fd)} is the run's, not your code's")

    def close(self, fd: int) -> None:
        if self.guarding(fd):
            raise self.refused(fd)
        self.real[0](fd)

    def closerange(self, low: int, high: int) -> None:
        kept = [fd for fd in sorted(self.kept) if low <= fd < high and self.guarding(fd)]
        edges = [low, *(x for fd in kept for x in (fd, fd + 1))]
        for start, end in zip(edges[::2], [*edges[1::2], high], strict=True):
            if start < end:
                self.real[1](start, end)

    def dup2(self, fd: int, fd2: int, inheritable: bool = True) -> int:
        if self.guarding(fd2):
            raise self.refused(fd2)
        return self.real[2](fd, fd2, inheritable)

    def ftruncate(self, fd: int, length: int) -> None:
        """A truncation of the run's metrics.jsonl (through /proc/self/fd) left 1 of its 6 step lines,
        the run completed, no line (forty-third hunt, case 13)."""
        if self.guarding(fd, "truncate"):
            raise self.refused(fd, errno.EPERM)
        self.real[3](fd, length)

    def truncate(self, path, length: int) -> None:
        if isinstance(path, int):
            return self.ftruncate(path, length)
        try:
            st = os.stat(path)
        except OSError:
            return self.real[4](path, length)
        for fd, file in self.kept.items():
            if file[:2] == (st.st_dev, st.st_ino) and self.guarding(fd, "truncate"):
                raise self.refused(fd, errno.EPERM)
        return self.real[4](path, length)

    @contextmanager
    def installed(self) -> Iterator[None]:
        mine = self.close, self.closerange, self.dup2, self.ftruncate, self.truncate
        os.close, os.closerange, os.dup2, os.ftruncate, os.truncate = mine
        try:
            yield
        finally:
            self.on = False  # one left installed by calls that ended out of order passes through
            if os.close == self.close:
                os.close, os.closerange, os.dup2, os.ftruncate, os.truncate = self.real


@contextmanager
def fds_kept(where: str) -> Iterator[None]:
    """Around a call of the user's code named `where` (`reward.path=mod:fn`): the run's descriptors past fd 2
    (fd 1 and 2: user_modes.py Streams) kept open through it, a try to close one said once; one it closed
    all the same that the run holds for good, a RunFdsLost."""
    before = open_fds()
    guard = Guard(
        {fd: file for fd, file in before.items() if fd > 2 and ((fd, file) not in USERS or fd in HELD)}
    )
    failed = True
    try:
        with guard.installed():
            yield
        failed = False
    finally:
        if os.getpid() == guard.pid:
            if after := open_fds():
                USERS.update((fd, file) for fd, file in after.items() if before.get(fd) != file)
                USERS.intersection_update(after.items())  # closed: the number may be the run's next
            lost(where, guard.kept)
            for verb in ("close", "truncate"):
                tried = [fd for fd, did in guard.tried.items() if did == verb]
                if tried and not failed:
                    said_tried(where, sorted(tried, key=lambda fd: (fd not in HELD, fd)), verb)  # held first


KEPT = {"close": "they are kept open (close only", "truncate": "they are kept whole (truncate only"}


def said_tried(where: str, tried: list[int], verb: str = "close") -> None:
    """The warning, once a call, for the run's descriptors a call of the user's tried to close, or to
    truncate (forty-fourth hunt, case 9: a truncation was said as a close)."""
    if (where, "fds", verb) in _SAID:
        return
    _SAID.add((where, "fds", verb))
    names = [what(fd) for fd in tried]
    named = ", ".join(names) if len(names) <= 5 else f"{', '.join(names[:4])} and {len(names) - 4} more"
    log.warning(f"warning: {where} tried to {verb} the run's {named}; {KEPT[verb]} what your code opened)")


def lost(where: str, kept: dict[int, tuple]) -> None:
    """RunFdsLost for a descriptor the run holds for good that the call closed or replaced."""
    held = HELD | logs_fds()
    gone = sorted(fd for fd in held if fd in kept and identity(fd) != kept[fd])
    if gone:
        kinds = {held[fd]: [str(n) for n in gone if held[n] == held[fd]] for fd in gone}
        names = ", ".join(f"fd {', '.join(fds)} ({kind})" for kind, fds in kinds.items())
        raise RunFdsLost(
            f"{where}: closed the run's {names} (not through os.close: in C, or a file object on it); the "
            "run cannot go on without it: close only what your code opened"
        )
