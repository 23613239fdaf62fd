"""exit_handlers.py: the exit handlers of the code a command ran, run within a bound at its end."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

HANGS = """
import atexit, os, time
from align_lab import exit_handlers
exit_handlers.noting()
atexit.register(print, "theirs ran")  # registered first: run last, never reached
atexit.register(time.sleep, 10**5)  # HANGS_LINE
print("command done", flush=True)
exit_handlers.run_within(3, os._exit, {bound_s})
"""


def test_an_exit_handler_that_never_returns_is_named_and_the_command_ends_with_its_code():
    """Thirty-seventh hunt, case 21: a reward's `atexit.register(time.sleep, 10**5)`: after `completed`
    the command never ended, no line."""
    done = subprocess.run(
        [sys.executable, "-c", HANGS.format(bound_s=1.0)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(i for i, x in enumerate(HANGS.splitlines(), 1) if "HANGS_LINE" in x)
    assert done.returncode == 3 and done.stdout == "command done\n", (done.stdout, done.stderr)
    assert done.stderr == (
        "align_lab: warning: the exit handlers (atexit) of the code the command ran have not returned in 1 s "
        f"(time.sleep registered at <string>:{line}; print registered at <string>:{line - 1}): the command "
        "ends without them (exit code 3)\n"
    ), done.stderr


def test_exit_handlers_that_return_run_as_they_would():
    code = HANGS.format(bound_s=30.0).replace("atexit.register(time.sleep, 10**5)", "pass")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "command done\ntheirs ran\n" and done.stderr == "", done


def test_a_signal_while_an_exit_handler_runs_ends_the_command_with_its_own_line_alone():
    """Thirty-seventh hunt, case 22: SIGTERM to case 21's command said `<align_lab>/__main__.py:87 (an exit
    handler, atexit, of the code the command ran) called os._exit(143)`: align_lab's own handler's exit,
    blamed on the user's code."""
    code = (
        "import atexit, os, signal, time; from align_lab.__main__ import end, finished; "
        "finished(('SIGTERM',)); atexit.register(time.sleep, 10**5); "
        "atexit.register(os.kill, os.getpid(), signal.SIGTERM); end(0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 143, done.stderr
    assert done.stderr == "align_lab: SIGTERM: the command had finished; it ends now\n", done.stderr


def test_a_librarys_temporary_folder_cleaned_at_exit_is_no_traceback_under_warnings_as_errors(tmp_path):
    """Hunt of 2026-12-04 (env/cwd, c07): PYTHONWARNINGS=error, and a completed run ended with 9 lines of
    `Exception ignored ... ResourceWarning: Implicitly cleaning up <TemporaryDirectory ...>` (wandb's folder
    for a logged table, removed by its finalizer as the process ended). The folder is still removed."""
    code = (
        "import os, tempfile, warnings\nfrom align_lab import exit_handlers\n"
        "t = tempfile.TemporaryDirectory()\nprint(t.name, flush=True)\n"
        "exit_handlers.run_within(0, os._exit)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert not os.path.exists(done.stdout.strip())
