"""`python -m align_lab` (or another module's command line) run in a process of its own, forked from one
interpreter that imported align_lab, torch and transformers once: a run is a process with its own pid,
exit code, stdout and stderr, run from the module's __main__ on (runpy), as the command line runs it;
only the ~5 s of imports that every command begins with is not paid again. For tests of what a command
does, not of how a process starts (signals, sitecustomize injection and PYTHONHASHSEED need run_cli).

`python -m tests.forked_cli` reads one JSON request a line on stdin, {"module", "args", "cwd", "env"},
and answers each with one JSON line {"returncode", "stdout", "stderr"} once its process has ended.
tests/conftest.py's `forked_cli` fixture starts one for each test process."""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
import tempfile
import traceback


def _child(request: dict, out: int, err: int) -> None:
    """In the forked process: what `python -m <module> <args>` does, then exit with its code."""
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # not the requests' pipe
    os.dup2(out, 1)
    os.dup2(err, 2)
    if sys.path[0] == os.getcwd():  # python -m puts its cwd first on the path: the command's
        sys.path[0] = request["cwd"]
    os.chdir(request["cwd"])
    keep = {k: os.environ[k] for k in ("PYTHONPATH", "PYTHONHASHSEED") if k in os.environ}
    os.environ.clear()  # the caller's environment, but what the interpreter read as it started
    os.environ.update({**request["env"], **keep})
    code = 0
    try:
        sys.argv = [request["module"], *request["args"]]  # runpy puts the module's file first, as -m does
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
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


def run_one(request: dict) -> dict:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, out.fileno(), err.fileno())
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return {"returncode": os.waitstatus_to_exitcode(status), "stdout": out.read(), "stderr": err.read()}


def _import_once() -> None:
    """What every run imports before its first step: hydra, torch, transformers' model code."""
    import transformers.masking_utils  # noqa: F401
    import transformers.modeling_layers  # noqa: F401
    import transformers.modeling_utils  # noqa: F401

    # and conf/'s YAML parsed once, as in the test processes: each command composes twice (Hydra's mode,
    # then the run), and its composition here warms what every command forked from here finds parsed
    from hydra import compose, initialize_config_dir

    import align_lab.app  # noqa: F401
    import align_lab.models.hf_io  # noqa: F401
    import align_lab.run.build  # noqa: F401
    import align_lab.run.execute  # noqa: F401
    import align_lab.run.spec  # noqa: F401
    from tests.parse_once import parse_yaml_once

    parse_yaml_once()
    with initialize_config_dir(config_dir=os.path.join(os.getcwd(), "conf"), version_base="1.3"):
        compose("config")


if __name__ == "__main__":
    _import_once()
    print(json.dumps({"ready": True}), flush=True)  # ForkedCli waits for it: its first command starts at once
    for line in sys.stdin:
        print(json.dumps(run_one(json.loads(line))), flush=True)
