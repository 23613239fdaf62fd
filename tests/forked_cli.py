"""Many `python -m align_lab` commands from one interpreter that imported the app once: each command
runs in a process of its own, forked from that interpreter, from align_lab/__main__.py on (its own exit
code, stdout and stderr, as the command line gives them). For commands refused before any compute,
whose time is almost all the ~4 s of importing torch: paid once for them all, not once a command.

Run as `python -m tests.forked_cli` with a JSON list of {"args": [...], "cwd": "..."} on stdin; prints a
JSON list of {"returncode", "stdout", "stderr"}. tests/conftest.py's run_cli_forked starts it."""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
import tempfile
import traceback


def _child(args: list[str], cwd: str, out: int, err: int) -> None:
    """In the forked process: what `python -m align_lab <args>` does, then exit with its code."""
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.chdir(cwd)
    code = 0
    try:
        sys.argv = ["align_lab", *args]  # runpy puts the module's file first, as python -m does
        runpy.run_module("align_lab", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if isinstance(e.code, int) or e.code is None:
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:  # an uncaught error: its traceback and exit code 1, as the interpreter does
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_one(args: list[str], cwd: str) -> dict:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(args, cwd, out.fileno(), err.fileno())
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return {"returncode": os.waitstatus_to_exitcode(status), "stdout": out.read(), "stderr": err.read()}


if __name__ == "__main__":
    commands = json.load(sys.stdin)
    import align_lab.app  # noqa: F401  what every command imports first: hydra, and torch below
    import align_lab.study.spec  # noqa: F401

    json.dump([run_one(c["args"], c["cwd"]) for c in commands], sys.stdout)
