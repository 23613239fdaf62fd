"""What of the process's the run's numbers and lines depend on, put back after each call of the user's code
(a reward, verifier or environment, beside user_signals.py run_signals_kept: `modes_kept`): torch's grad
mode, threads, default dtype, autocast and global random state, Python's recursion limit, logging's
switch, levels and root handlers, the process's umask, and the run's output (Streams: fd 1 and 2,
sys.stdout and sys.stderr). Its resource limits: user_limits.py limits_kept, entered beside it."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("align_lab")
_SAID: set = set()  # the components already named, once a process
RANDOM = "torch random state (seeded or drawn from)"


class RandomState:
    """torch's global generator's state (the one the rollout samples from), compared whole and said by a
    digest of it."""

    def __init__(self, state: bytes) -> None:
        self.state = state

    def __eq__(self, other) -> bool:
        return isinstance(other, RandomState) and self.state == other.state

    def __str__(self) -> str:
        return f"sha256 {hashlib.sha256(self.state).hexdigest()[:8]}"

    @staticmethod
    def read(torch) -> RandomState:
        return RandomState(torch.get_rng_state().numpy().tobytes())

    def put_back(self) -> None:
        import torch

        torch.set_rng_state(torch.frombuffer(bytearray(self.state), dtype=torch.uint8))


AUTOCAST = ("cpu", "cuda")  # torch's autocast, a thread's: one entered and never left in a call (an
# autocast(...).__enter__()) trained the rest of a run under bf16, other numbers, no line (37th hunt, 42)


class Autocast(tuple):
    """(enabled, dtype) of torch's autocast on a device type, said as `on (torch.bfloat16)` or `off`."""

    def __str__(self) -> str:
        return f"on ({self[1]})" if self[0] else "off"

    @staticmethod
    def read(torch, device: str) -> Autocast:
        return Autocast((torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)))

    @staticmethod
    def setter(torch, device: str):
        def put_back(value: Autocast) -> None:
            torch.set_autocast_enabled(device, value[0])
            torch.set_autocast_dtype(device, value[1])

        return put_back


class Umask(int):
    """The process's file creation mask, said in octal (thirty-ninth hunt, case 55: a reward's
    os.umask(0o277) left every later file 0400 and checkpoints/ 0500, unwritable but by root, no line)."""

    def __str__(self) -> str:
        return f"{int(self):#o}"

    @staticmethod
    def read() -> Umask:
        mask = os.umask(0o022)  # read by setting it: put straight back
        os.umask(mask)
        return Umask(mask)


class WarningFilters(tuple):
    """Python's warnings filters, said by their first (the one added last). A reward module's
    `warnings.filterwarnings("error")` at import made every later warning an exception: align_lab's and
    the libraries' own (transformers' FutureWarning, a ResourceWarning at exit) then printed tracebacks,
    or stopped the run in one (fifty-third hunt's session)."""

    def __str__(self) -> str:
        action, _, category, _, _ = self[0] if self else ("none", None, Warning, None, 0)
        return f"[{action} {category.__name__}, ... {len(self)} filters]"

    @staticmethod
    def read() -> WarningFilters:
        return WarningFilters(warnings.filters)

    @staticmethod
    def put_back(filters: tuple) -> None:
        warnings.filters[:] = list(filters)
        warnings._filters_mutated()  # the module's cache of what each warning met is stale now


def _root_handlers(handlers: tuple) -> None:
    logging.getLogger().handlers = list(handlers)


def _handler_levels(levels: tuple) -> None:
    """The root handlers' levels as they were (the handlers themselves are put back first)."""
    for handler, level in zip(logging.getLogger().handlers, levels, strict=False):
        handler.setLevel(level)


class Modes:
    """What of the process's the run's numbers depend on, as it was before a call of the user's code:
    torch's grad mode (a reward's torch.set_grad_enabled(False) failed the next update in a 55-line
    traceback: thirty-first hunt, case 8), its thread count, default dtype and default device (a reward's
    `torch.set_default_device("cuda")`, as one that loads its own scorer would: the run's next tensor
    there, 54 lines: thirty-third hunt, case 46), Python's recursion limit (lowered at import, a 198-line
    RecursionError in Hydra: case 19); logging's switch, root level and root handlers, through which every
    line of the run passes, align_lab's logger's level, switch, propagation and filters and the root
    handlers' levels (`logging.disable(logging.CRITICAL)` at import, or `.disabled = True` on align_lab's
    logger in a call: not one line, its end's neither; thirty-second hunt, case 52, thirty-third, 63);
    and torch's global random state, from which the rollout samples (a reward's `torch.manual_seed(0)` in
    each call made every step sample the same stream, whatever `seed=` said: thirty-third hunt, case 27).
    torch is read where it is loaded."""

    def __init__(self) -> None:
        self.was = self.now()

    @staticmethod
    def now() -> dict:
        torch = sys.modules.get("torch")
        root = logging.getLogger()
        found = {
            "recursion limit": sys.getrecursionlimit(),
            "logging.disable level": logging.root.manager.disable,
            "root logger's level": root.level,
            "root logger's handlers": tuple(root.handlers),
            "align_lab logger's level": log.level,
            "align_lab logger's switch (disabled)": log.disabled,
            "align_lab logger's propagation": log.propagate,
            "align_lab logger's filters": tuple(log.filters),
            "root handlers' levels": tuple(h.level for h in root.handlers),
            "file creation mask (umask)": Umask.read(),  # 0o277: the next checkpoint's folder 0500
            "warnings filters": WarningFilters.read(),
        }
        if torch is not None:
            found |= {
                "grad mode": torch.is_grad_enabled(),
                "thread count": torch.get_num_threads(),
                "default dtype": torch.get_default_dtype(),
                "default device": torch.get_default_device(),
                **{f"{d} autocast": Autocast.read(torch, d) for d in AUTOCAST},
            }
        if torch is not None and threading.current_thread() is threading.main_thread():  # not another
            found[RANDOM] = RandomState.read(torch)  # thread's draws, which a put-back would replay
        return found

    def back(self, where: str) -> None:
        """Puts back what the call changed; the first time `where` did, a warning names it."""
        now, torch = self.now(), sys.modules.get("torch")
        changed = [name for name, value in self.was.items() if now.get(name, value) != value]
        setters = {
            "recursion limit": sys.setrecursionlimit,
            "logging.disable level": logging.disable,
            "root logger's level": logging.getLogger().setLevel,
            "root logger's handlers": _root_handlers,
            "align_lab logger's level": log.setLevel,
            "align_lab logger's switch (disabled)": lambda v: setattr(log, "disabled", v),
            "align_lab logger's propagation": lambda v: setattr(log, "propagate", v),
            "align_lab logger's filters": lambda v: setattr(log, "filters", list(v)),
            "root handlers' levels": _handler_levels,
            "file creation mask (umask)": os.umask,
            "warnings filters": WarningFilters.put_back,
        }
        if torch is not None:
            setters |= {
                "grad mode": torch.set_grad_enabled,
                "thread count": torch.set_num_threads,
                "default dtype": torch.set_default_dtype,
                "default device": torch.set_default_device,
                RANDOM: RandomState.put_back,
                **{f"{d} autocast": Autocast.setter(torch, d) for d in AUTOCAST},
            }
        for name in changed:
            setters[name](self.was[name])
        if changed and (where, "modes") not in _SAID:
            _SAID.add((where, "modes"))
            what = ", ".join(f"{name} {self.was[name]} -> {now[name]}" for name in changed)
            log.warning(
                f"warning: {where} changed the process's {what}; the run's are put back after each call "
                "(its numbers, its own code and its lines depend on them)"
            )


@contextmanager
def modes_kept(where: str) -> Iterator[None]:
    """Around a call of the user's code named `where` (`reward.path=mod:fn`): the process's modes as they
    were before it and its output (Streams), put back after it, the first change said once; not in a fork
    of it."""
    pid, modes, streams = os.getpid(), Modes(), Streams()
    try:
        yield
    finally:
        if os.getpid() == pid:
            modes.back(where)
            streams.back(where)


# The run's output: a reward that closed sys.stderr left the run in 6 lines of CPython's "lost sys.stderr"
# noise and a ValueError with no file:line (twenty-third hunt, case 13); one that closed fd 2 lost every line
# after it, the run's last words among them, rc 0 (case 14).
FDS = {"stdout": 1, "stderr": 2}


def identity(fd: int) -> tuple[int, int, int] | None:
    """What file `fd` is open on (device, inode, special device), or None where it is closed."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_rdev


def closed(stream) -> bool:
    try:
        return bool(stream.closed)
    except (AttributeError, ValueError):
        return False


class Streams:
    """fd 1 and 2 and sys.stdout and sys.stderr as they were before a call of the user's code."""

    def __init__(self) -> None:
        self.files = {fd: identity(fd) for fd in FDS.values()}
        self.saved = {fd: os.dup(fd) for fd, file in self.files.items() if file is not None}
        self.objects = {name: getattr(sys, name) for name in FDS}

    def back(self, where: str) -> None:
        """Puts back what the call closed or replaced; the first time `where` did, a warning names it."""
        taken = []
        for fd, saved in self.saved.items():
            with contextlib.suppress(OSError):  # the copy closed in C: user_fds.py says it
                if identity(fd) != self.files[fd]:  # closed, or another file made fd `fd` (dup2, a reuse)
                    os.dup2(saved, fd)
                    taken.append(f"fd {fd}")
                os.close(saved)
        for name, stream in self.objects.items():
            if getattr(sys, name) is stream and not closed(stream):
                continue
            kept = reopened(stream, FDS[name]) if closed(stream) else stream
            setattr(sys, name, kept)
            handlers_to(stream, kept)
            taken.append(f"sys.{name}")
        if taken and (where, "streams") not in _SAID:
            _SAID.add((where, "streams"))
            log.warning(
                f"warning: {where} closed or replaced the run's {' and '.join(taken)}; the run's are put "
                "back after each call, so that its lines (and its last: what it found, and where) reach you"
            )


def reopened(stream, fd: int):
    """A text stream on `fd` in place of `stream`, which the user's code closed (the fd stays the run's)."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return open(fd, "w", buffering=1, encoding=encoding, errors="backslashreplace", closefd=False)  # noqa: SIM115


def handlers_to(old, new) -> None:
    """The logging handlers that wrote to `old` write to `new` (set as is: setStream flushes a closed one)."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    if old is new:  # sys.stderr replaced, not closed: put back as it was, its handlers with it
        return
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                with handler.lock, contextlib.suppress(AttributeError):  # logging's lastResort: a
                    handler.stream = new  # property reading sys.stderr (twenty-fourth hunt, case 7)
