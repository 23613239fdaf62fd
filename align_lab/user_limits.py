"""The process's resource limits through a call of the user's code (a reward, verifier or environment, beside
user_modes.py modes_kept: `limits_kept`). A call may lower a soft limit (`resource.setrlimit`): put back
after it, said once. It may not lower a hard one: only a privileged process raises a hard limit again, and
a container's root usually is not one (no CAP_SYS_RESOURCE), so a reward's `setrlimit(RLIMIT_FSIZE, (1000,
1000))` left every later write of the run failing at 1000 bytes: metrics.jsonl torn, a traceback, its output
file cut mid-line, summary.json `running`, after a warning that said the limit was put back (fortieth hunt,
cases 10-11). Through a call, `resource.setrlimit` and `resource.prlimit` of the run's own process keep the
hard limit the run had; one lowered in C all the same, and not put back, fails the call in one line
(RunLimitsLost). A thread (or process) a call starts may lower one after the call returned, outside its
guard: the hard limits are kept from the first call on, and the limits are checked between calls too
(`held`, as each call begins and at each step's end; forty-first hunt, cases 49 and 52: a 362-line
traceback, and "the reward raised OSError" at align_lab's own line)."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("align_lab")
_SAID: set = set()  # the components already named, once a process
_HARD_ASKED: set = set()  # the limits whose hard value a call asked to lower (kept as the run's)
_RUN: dict = {}  # {pid: the process's limits as the first call of the user's code began}
AT_EACH = "as each call begins and at each step's end"
_CALLED: dict = {}  # the keys of the user's code called so far (an ordered set), named by `held`

# the limits a call may lower: a file-size limit made the next checkpoint's write a 63-line traceback, an
# open-files limit a 75-line one (thirty-seventh hunt, cases 19-20)
LIMITS = ("FSIZE", "NOFILE", "AS", "DATA", "STACK", "CPU", "CORE", "NPROC", "MEMLOCK")


class RunLimitsLost(Exception):
    """A call of the user's code lowered a limit the run cannot put back; its message is the whole line,
    `what` the part after the call's name."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where} {what}")
        self.what = what


class Limit(tuple):
    """A resource limit (soft, hard), said as `20000 (hard unlimited)`."""

    def __str__(self) -> str:
        import resource

        said = ["unlimited" if v == resource.RLIM_INFINITY else str(v) for v in self]
        return said[0] if said[0] == said[1] else f"{said[0]} (hard {said[1]})"


def read() -> dict[str, Limit]:
    """{`RLIMIT_FSIZE limit`: Limit} for each of LIMITS this system has."""
    import resource

    names = [n for n in LIMITS if hasattr(resource, f"RLIMIT_{n}")]
    return {f"RLIMIT_{n} limit": Limit(resource.getrlimit(getattr(resource, f"RLIMIT_{n}"))) for n in names}


def size(value: int) -> float:
    """A limit's value as a number, RLIM_INFINITY the largest."""
    import resource

    return float("inf") if value == resource.RLIM_INFINITY else value


def put_back(name: str, value: Limit) -> None:
    """The limit `name` as `value`: its soft limit as far as the hard one now allows."""
    import resource

    which = getattr(resource, name.removesuffix(" limit"))
    try:
        resource.setrlimit(which, value)
    except (ValueError, OSError):  # a hard limit lowered in C: the soft one as high as it lets it
        hard = resource.getrlimit(which)[1]
        resource.setrlimit(which, (value[0] if size(value[0]) <= size(hard) else hard, hard))


def lost(was: dict, now: dict) -> list[str]:
    """The limits whose soft value is below the run's (a core file's size aside: nothing of the run's
    hangs on it), said `RLIMIT_FSIZE limit unlimited -> 1000`."""
    kept = [n for n in now if n in was and n != "RLIMIT_CORE limit"]
    return [f"{n} {was[n]} -> {now[n]}" for n in kept if size(now[n][0]) < size(was[n][0])]


def _hard_kept(real, pid: int, which: int, limits: tuple) -> None:
    """resource.setrlimit in a call: the soft limit as asked, the hard one no lower than the run's."""
    import resource

    soft, hard = limits
    if os.getpid() == pid and size(hard) < size(resource.getrlimit(which)[1]):
        hard = resource.getrlimit(which)[1]
        _HARD_ASKED.add(which)
    return real(which, (soft, hard))


def _prlimit_kept(real, pid: int, target: int, which: int, *limits):
    """resource.prlimit in a call: of the run's own process, as setrlimit is; of another, as asked."""
    import resource

    if limits and target in (0, pid) and os.getpid() == pid:
        old = resource.getrlimit(which)
        _hard_kept(resource.setrlimit, pid, which, limits[0])
        return old
    return real(target, which, *limits)


def _keep_hard_ones(pid: int) -> None:
    """resource.setrlimit and prlimit keep the process's hard limits from now on, whoever calls them (a
    thread a call started, after it returned); once a process."""
    import resource

    if getattr(resource.setrlimit, "func", None) is not _hard_kept:
        resource.setrlimit = functools.partial(_hard_kept, resource.setrlimit, pid)
        resource.prlimit = functools.partial(_prlimit_kept, resource.prlimit, pid)


@contextmanager
def limits_kept(where: str) -> Iterator[None]:
    """Around a call of the user's code named `where` (`reward.path=mod:fn`): the run's hard limits kept
    through it, its soft ones put back after it, said once; a limit the run cannot put back,
    RunLimitsLost. What code an earlier call left running lowered since is checked first (`held`). Not in
    a fork of it."""
    pid = os.getpid()
    held()
    was = read()
    _RUN.setdefault(pid, was)
    _CALLED[where] = None
    _keep_hard_ones(pid)
    try:
        yield
    finally:
        if os.getpid() == pid:
            _back(where, was)


def held() -> None:
    """The limits the first call of the user's code found, where code a call left running (a thread, a
    process) lowered one since: put back, said once, or RunLimitsLost where it lowered a hard one for
    good. Nothing before the first call."""
    was = _RUN.get(os.getpid())
    if was is None:
        return
    now = read()
    lowered = {n: v for n, v in was.items() if n in now and size(now[n][0]) < size(v[0])}
    if lowered:
        names = " or ".join(_CALLED)
        _back(f"{names} left code running (a thread or process of its) that", lowered, AT_EACH)


def held_at_the_end() -> None:
    """`held` as a run ends, before its summary.json: where nothing can stop any more, a hard limit lost is
    a warning (forty-fourth hunt, case 10: a thread's after the last step failed the final writes)."""
    try:
        held()
    except RunLimitsLost as e:
        log.warning(f"warning: {e}")


def _back(where: str, was: dict, when: str = "after each call") -> None:
    now = read()
    changed = [name for name, value in was.items() if now.get(name, value) != value]
    for name in changed:
        put_back(name, was[name])
    gone = lost(was, read())
    if gone:  # every file past the limit now fails to grow: a library's log handler (wandb's debug.log)
        logging.raiseExceptions = False  # printed 264 lines of its errors before this one (41st hunt, 50)
        raise RunLimitsLost(
            where,
            f"lowered the process's hard {', '.join(gone)} for good (raising a hard limit again takes "
            "a privilege, CAP_SYS_RESOURCE, this process lacks): the run cannot go on under it; take the "
            "setrlimit call out",
        )
    if changed and where not in _SAID:
        _SAID.add(where)
        what = ", ".join(f"{name} {was[name]} -> {now[name]}" for name in changed)
        kept = " (setrlimit lowers a soft limit only here: the hard ones asked were kept)"
        hard = kept if _HARD_ASKED else ""
        log.warning(
            f"warning: {where} changed the process's {what}{hard}; the run's are put back {when} "
            "(its numbers, its own code and its lines depend on them)"
        )
    _HARD_ASKED.clear()
