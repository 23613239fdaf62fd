"""What of the process's the run's numbers and lines depend on, put back after each call of the user's code
(a reward, verifier or environment, beside user_signals.py run_signals_kept: `modes_kept`): torch's grad
mode, threads, default dtype and global random state, Python's recursion limit, logging's switch, levels
and root handlers."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
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
        }
        if torch is not None:
            found |= {
                "grad mode": torch.is_grad_enabled(),
                "thread count": torch.get_num_threads(),
                "default dtype": torch.get_default_dtype(),
                "default device": torch.get_default_device(),
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
        }
        if torch is not None:
            setters |= {
                "grad mode": torch.set_grad_enabled,
                "thread count": torch.set_num_threads,
                "default dtype": torch.set_default_dtype,
                "default device": torch.set_default_device,
                RANDOM: RandomState.put_back,
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
    were before it, put back after it (Modes), the first change said once; not in a fork of it."""
    pid, modes = os.getpid(), Modes()
    try:
        yield
    finally:
        if os.getpid() == pid:
            modes.back(where)
