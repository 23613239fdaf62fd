"""The exit handlers (atexit) of the code a command ran, run at its end within a bound: one that never
returned kept a completed run's command alive for ever with no line (thirty-seventh hunt, case 21). Each
registration is noted with the file and line that made it (`noting`), for the line that names them."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import warnings
from collections.abc import Callable

EXIT_HANDLERS_S = 60.0  # their time in all, as the command ends (W&B's and logging's take a second or two)
REGISTERED: list[tuple[Callable, str, int]] = []  # (handler, the file and line that registered it)


def noting() -> None:
    """From here on, atexit.register notes who registered each handler (its caller's file and line)."""
    real = atexit.register
    if getattr(real, "noting", False):
        return

    def register(func, *args, **kwargs):
        frame = sys._getframe(1)
        REGISTERED.append((func, frame.f_code.co_filename, frame.f_lineno))
        return real(func, *args, **kwargs)

    register.noting = True
    atexit.register = register


def run_within(code: int, real_exit: Callable[[int], None], bound_s: float = EXIT_HANDLERS_S) -> None:
    """atexit's handlers, run. Where they have not returned in `bound_s` and one of them is of the user's
    code, one line names those and the process ends with `code`; the handlers of installed code alone are
    waited for (a line said)."""
    done = threading.Event()

    def watch() -> None:
        if done.wait(bound_s):
            return
        from align_lab.user_threads import yours  # here: as __main__ starts, a user's module named signal

        theirs = [
            f"{name_of(func)} registered at {file}:{line}" for func, file, line in REGISTERED if yours(file)
        ]
        said = "align_lab: warning: the exit handlers (atexit) of the code the command ran have not returned "
        said += f"in {bound_s:g} s"
        if theirs:
            said += f" ({'; '.join(reversed(theirs[-3:]))}): the command ends without them (exit code {code})"
        else:
            said += " (installed code's): waiting for them (Ctrl-C ends the command)"
        os.write(2, f"{said}\n".encode())
        if theirs:
            real_exit(code)

    threading.Thread(target=watch, daemon=True, name="align_lab-exit-handlers").start()
    try:
        with warnings.catch_warnings():  # a library's temporary folder removed as the process ends (wandb's
            # for a logged table): 9 lines of "Exception ignored" under PYTHONWARNINGS=error (2026-12-04)
            warnings.filterwarnings("ignore", "Implicitly cleaning up", ResourceWarning)
            atexit._run_exitfuncs()
    finally:
        done.set()


def name_of(func) -> str:
    module = getattr(func, "__module__", None)
    name = getattr(func, "__qualname__", None) or repr(func)
    return f"{module}.{name}" if module and module != "builtins" else name
