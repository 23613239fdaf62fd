"""What a user's reward may do to the run's process and output (align_lab/user_signals.py),
as a user meets it on the command line (twenty-third hunt, cases 11-14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import SMALL, run_cli

REWARD = """
import os
import signal
import sys
import threading
import time

CALLS = [0]

def score(prompts, responses):
    CALLS[0] += 1
    if CALLS[0] == 2:
        {act}
    if CALLS[0] > 2 and THREAD_EXITS:
        time.sleep(1.0)  # the run still going when its thread exits
    return [float(len(r.split())) for r in responses]
"""

ACTS = {
    "sigkill": "os.kill(os.getpid(), signal.SIGKILL)",
    "raises_sigkill": "signal.raise_signal(signal.SIGKILL)",
    "kills_its_group": "os.killpg(os.getpgid(0), signal.SIGKILL)",
    "thread_exits": "threading.Thread(target=lambda: (time.sleep(0.3), os._exit(0)), daemon=True).start()",
    "thread_kills": "threading.Thread(target=lambda: (time.sleep(0.3), signal.raise_signal(signal.SIGKILL)), "
    "daemon=True).start()",
    "pthread_kills": "signal.pthread_kill(threading.main_thread().ident, signal.SIGKILL)",
    "stops_itself": "os.kill(os.getpid(), signal.SIGSTOP)",
    "execs": "os.execv('/bin/true', ['true'])",
    "replaces_sys_stderr": "sys.stderr = open(os.devnull, 'w')",
    "fork_exits": "time.sleep(0) if os.fork() else (time.sleep(1.0), sys.exit(0))",
    "fork_returns": "os.fork()",
    "closes_sys_stderr": "sys.stderr.close()",
    "closes_fd_2": "os.close(2)",
    "redirects_fd_2": "os.dup2(os.open(os.devnull, os.O_WRONLY), 2)",
}


def run(act: str, tmp_path, cache_dir, forked_cli):
    (tmp_path / "acting.py").write_text(
        REWARD.format(act=ACTS[act]) + f"\nTHREAD_EXITS = {act.startswith('thread_')}\n"
    )
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    return forked_cli([*args, "reward.path=acting:score"], cwd=tmp_path), run_dir


def test_a_reward_that_sends_its_process_sigkill_stops_the_run_in_one_line(tmp_path, cache_dir, forked_cli):
    """Case 11: rc 137, no line, summary.json `running`. Now said as os._exit is: where, and the resume."""
    result, run_dir = run("sigkill", tmp_path, cache_dir, forked_cli)
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(f"align_lab: error: {tmp_path / 'acting.py'}:13 called os.kill("), line
    assert ", SIGKILL) during the run; resume from step 1 with: " in line and "Traceback" not in result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    # case 42: the fix (the kill taken out) changes the reward module a resume checks: the line's command
    # says it is meant, as a raise's does (it was refused)
    assert line.endswith(" resume_changed_inputs=true"), line
    (tmp_path / "acting.py").write_text(REWARD.format(act="pass") + "\nTHREAD_EXITS = False\n")
    command = line.split("resume from step 1 with: ", 1)[1]
    resumed = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize(
    "act,call",
    [
        ("raises_sigkill", "signal.raise_signal(SIGKILL)"),
        ("kills_its_group", "os.killpg("),
        ("pthread_kills", "signal.pthread_kill("),  # twenty-fifth hunt, case 1
        # thirty-ninth hunt, case 24: stopped for good, no line, reward.timeout_s never fired
        ("stops_itself", "os.kill("),
        # case 25: rc 0 (the program's), a guessed SIGKILL, summary.json `running`
        ("execs", "os.execv('/bin/true', ...), which would replace the run's process with that program"),
    ],
)
def test_a_reward_that_kills_its_process_otherwise_stops_the_run_in_one_line_too(
    act, call, tmp_path, cache_dir, forked_cli
):
    """Twenty-fourth hunt, case 4: signal.raise_signal(SIGKILL) and os.killpg of the run's group: rc 137,
    no line, summary.json `running`, as os.kill's was (case 11)."""
    result, run_dir = run(act, tmp_path, cache_dir, forked_cli)
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(f"align_lab: error: {tmp_path / 'acting.py'}:13 called {call}"), line
    assert " during the run; resume from step 1 with: " in line and "Traceback" not in result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


@pytest.mark.parametrize(
    "act,call", [("thread_exits", "os._exit(0)"), ("thread_kills", "signal.raise_signal(SIGKILL)")]
)
def test_a_thread_of_the_rewards_that_ends_the_process_ends_the_run_in_one_line_not_rc_0(
    act, call, tmp_path, cache_dir, forked_cli
):
    """Twenty-fourth hunt, case 8: a daemon thread a reward started called os._exit(0): the run ended
    unfinished with rc 0, no line, summary.json `running`; twenty-fifth hunt, case 2: one that raised
    SIGKILL, rc 137 and the same. Its process still ends (the thread asked), with rc 1, summary.json
    `failed` and the line that resumes it."""
    result, run_dir = run(act, tmp_path, cache_dir, forked_cli)
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(
        f"align_lab: error: {tmp_path / 'acting.py'}:13 (a thread of your code) called "
    ), line
    assert f"{call} during the run, ending it unfinished; resume from step " in line, line
    assert line.endswith(" resume_changed_inputs=true") and "Traceback" not in result.stderr, line
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == line.removeprefix("align_lab: "), summary


@pytest.mark.parametrize("act", ["fork_exits", "fork_returns"])
def test_a_process_the_reward_forks_ends_as_it_asked_and_never_acts_as_the_run(
    act, tmp_path, cache_dir, forked_cli
):
    """Case 12: a forked child's sys.exit(0), a second after the call, ran through the run's own ending: it
    printed the run's error line after the run had completed and rewrote its summary.json `failed`. Case
    43: a child that returned from the call trained on as a second copy of the run (a duplicate metrics
    row, a 48-line traceback on the shared checkpoint)."""
    result, run_dir = run(act, tmp_path, cache_dir, forked_cli)
    assert result.returncode == 0, result.stderr[-3000:]
    time.sleep(2.0)  # the child's second is up: it has ended
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and "eval/gold_reward" in summary, summary
    assert "error" not in summary and "align_lab: error" not in result.stderr, result.stderr[-3000:]
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps)) and "Traceback" not in result.stderr, steps  # one run's rows


@pytest.mark.parametrize("act", ["closes_sys_stderr", "closes_fd_2", "redirects_fd_2", "replaces_sys_stderr"])
def test_a_reward_that_closes_the_runs_stderr_leaves_its_lines_to_the_end(
    act, tmp_path, cache_dir, forked_cli
):
    """Case 13: sys.stderr.close() in a reward: 6 lines of "lost sys.stderr", the run failed with a
    ValueError and no file:line. Case 14: os.close(2): rc 0 but nothing after step 1, the run's last
    line (what it found and where) lost. Both are put back after the call, with a warning naming it."""
    result, run_dir = run(act, tmp_path, cache_dir, forked_cli)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    said = [x for x in result.stderr.splitlines() if "closed or replaced the run's" in x]
    assert len(said) == 1 and said[0].startswith("warning: reward.path=acting:score closed or replaced"), said
    assert "completed in " in result.stderr and f"run folder: {run_dir}" in result.stderr, result.stderr[
        -3000:
    ]
    assert "lost sys.stderr" not in result.stderr and "Traceback" not in result.stderr


ENV = """
import os

from align_lab.envs.base import LastTurn, Step

class ExitingEnv:
    multi_turn = True

    def __init__(self, max_turns=2, step_timeout_s=30.0, act="exit"):
        self.max_turns, self.step_timeout_s, self.calls, self.act = max_turns, step_timeout_s, 0, act

    def start(self, prompt):
        return Episode(self)

class Episode(LastTurn):
    def __init__(self, env):
        super().__init__()
        self.env = env

    def step(self, turn):
        self.turns.append(turn)
        self.env.calls += 1
        if self.env.calls == 20 and self.env.act == "exit":
            os._exit(0)
        if self.env.calls == 20 and self.env.act == "fork":
            os.fork()  # and the child returns from the step, as the parent does
        return Step(done=True)
"""


def test_an_environment_that_calls_os_exit_stops_the_run_in_one_line(tmp_path, cache_dir, forked_cli):
    """Case 30: an environment's step calling os._exit(0) ended the run with rc 0, no line, summary.json
    `running`: a step runs on a thread of the run's, where os._exit was taken for a thread of the user's."""
    (tmp_path / "exiting_env.py").write_text(ENV)
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "algo=grpo", "task=toy_arith"]
    args += ["reward=gold", "env._target_=exiting_env.ExitingEnv"]
    result = forked_cli(args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(
        f"align_lab: error: {tmp_path / 'exiting_env.py'}:24 called os._exit(0) during the run; "
    )
    assert "resume from step 1 with: " in line and "Traceback" not in result.stderr, line
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


def test_an_environment_step_that_forks_a_returning_child_ends_the_child_quietly(
    tmp_path, cache_dir, forked_cli
):
    """Twenty-fourth hunt, case 40: a step (on the run's step thread) that forks and lets its child return:
    the child died in CPython's "Fatal Python error: init_threadstate" with a 26-line thread dump on the
    run's output. It ends there as it asked, as a reward's forked child does; the run completes."""
    (tmp_path / "exiting_env.py").write_text(ENV)
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "algo=grpo", "task=toy_arith"]
    args += ["reward=gold", "env._target_=exiting_env.ExitingEnv", "+env.act=fork"]
    result = forked_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    time.sleep(1.0)  # the child, had it gone on, would have said so by now
    assert "Fatal Python error" not in result.stderr and "Traceback" not in result.stderr, result.stderr[
        -3000:
    ]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


POOLED = """
import concurrent.futures
import multiprocessing

POOL = []

def _one(response):
    return float(len(response.split()))

def score(prompts, responses):
    if not POOL:  # kept across calls, never shut down
        POOL.append(concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")))
    return list(POOL[0].map(_one, responses))
"""


def test_the_forks_a_reward_leaves_running_end_with_the_command(tmp_path, cache_dir):
    """Twenty-fourth hunt, case 50: a reward keeping a fork ProcessPoolExecutor across calls: the run ended
    rc 0, its 2 workers orphaned (320 MB each) and deaf to SIGTERM, for good. They end with the command,
    which names them."""
    (tmp_path / "pooled.py").write_text(POOLED)
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    result = run_cli([*args, "reward.path=pooled:score"], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    said = [x for x in result.stderr.splitlines() if "which code it ran forked and left running" in x]
    assert len(said) == 1, result.stderr[-3000:]
    pids = [int(p) for p in said[0].split("ends processes ")[1].split(", which")[0].split(", ")]
    deadline = time.monotonic() + 10  # killed as the command ended: gone once init has reaped them
    while [p for p in pids if os.path.exists(f"/proc/{p}")] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(pids) == 2 and not [p for p in pids if os.path.exists(f"/proc/{p}")], said


@pytest.mark.parametrize(
    "first,act",
    [
        ("", "ctypes.string_at(0)"),
        ("import faulthandler\nfaulthandler.disable()\n", "ctypes.string_at(0)"),
        ("", "__import__('faulthandler').disable() or ctypes.string_at(0)"),
        ("import faulthandler\nfaulthandler.enable(file=open('fh.log', 'w'))\n", "ctypes.string_at(0)"),
    ],
    ids=["plain", "fh_off", "fh_off_in_call", "fh_own_file"],
)
def test_a_reward_that_crashes_in_c_stops_the_run_in_one_line_that_resumes_it(
    first, act, tmp_path, cache_dir
):
    """A reward that crashes in C (a segfault through ctypes) in its second call: rc 139, no line, summary
    `running`, as an os.abort or a SIGKILL of its own as its module is imported was (thirtieth hunt, case
    2). hang_watch.py says it once the process has gone: the key, the signal, the user's line, summary
    `failed`, and the command that resumes the run once the crash is taken out. Its own process (run_cli):
    the line comes from a process beside the run's. `fh_off`: its module turned faulthandler off as it was
    imported, or in the call, or sent it to a file of its own (`fh_own_file`), and the crash was said as an
    outside SIGKILL, summary `running` (thirty-third hunt, cases 30, 48, 60, 70): the run keeps its own."""
    (tmp_path / "acting.py").write_text(
        "import ctypes\n" + REWARD.format(act=act) + "\nTHREAD_EXITS = False\n" + first
    )
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    result = run_cli([*args, "reward.path=acting:score"], cwd=tmp_path)
    assert result.returncode == -11, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(
        "align_lab: error: reward.path=acting:score: the process crashed (Segmentation fault) in this "
        f"call, at {tmp_path / 'acting.py'}:14; fix it, then resume from step 1 with: "
    ), line
    assert line.endswith(" resume_changed_inputs=true") and "Traceback" not in result.stderr, line
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == line.removeprefix("align_lab: error: ")
    if first or act != "ctypes.string_at(0)":
        return  # the same line as the plain crash's, whose command resumes the run below
    (tmp_path / "acting.py").write_text(REWARD.format(act="pass") + "\nTHREAD_EXITS = False\n")
    command = line.split("resume from step 1 with: ", 1)[1]
    resumed = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_a_reward_that_closes_the_runs_descriptors_in_c_fails_the_run_in_one_line(
    tmp_path, cache_dir, forked_cli
):
    """Thirty-eighth hunt, case 13, from C (a file object on the run's fd, a library's close): nothing of
    Python's sees it; the call's end does, in one line naming the descriptors, summary.json failed."""
    ACTS["c_close"] = "[__import__('ctypes').CDLL(None).close(fd) for fd in range(3, 1024)]"
    result, run_dir = run("c_close", tmp_path, cache_dir, forked_cli)
    assert result.returncode == 2, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith("align_lab: error: reward.path=acting:score: closed the run's fd "), line
    assert "(signal pipe)" in line and "; fix it, then resume from step 1 with: " in line, line
    assert "Traceback" not in result.stderr and " was killed " not in result.stderr, result.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


TORCH = "__import__('torch')"
SAID = {  # thirty-first hunt: what a reward's call did, and the run's line for it (rc 0: the run goes on)
    # case 8: a 55-line traceback in the next update, naming no key
    f"{TORCH}.set_grad_enabled(False)": "warning: reward.path=acting:score changed the process's grad mode "
    "True -> False; the run's are put back after each call",
    # case 19 (there at import): a 198-line RecursionError in Hydra
    "sys.setrecursionlimit(60)": "warning: reward.path=acting:score changed the process's recursion limit "
    "1000 -> 60; the run's are put back after each call",
    # case 14: Python's traceback of the thread at each call, nothing naming the code
    "threading.Thread(target=lambda: 1 / 0, name='helper').start()": "warning: a thread of your code "
    "(helper) raised ZeroDivisionError: division by zero at {file}:13; the run goes on without what it was "
    "doing",
    # case 21: rc 5 after "completed", no word
    "__import__('atexit').register(lambda: os._exit(5))": "align_lab: warning: {file}:13 (an exit handler, "
    "atexit, of the code the command ran) called os._exit(5) as the command ended: it ends with exit code 5",
    # case 6: torch's UserWarning at align_lab's line, naming no key: now nothing to say
    f"return {TORCH}.tensor([1.0] * len(responses), requires_grad=True)": "",
    # thirty-second hunt, case 52: not one line of the run's after it, its end's neither, rc 0
    "__import__('logging').disable(50)": "warning: reward.path=acting:score changed the process's "
    "logging.disable level 0 -> 50; the run's are put back after each call",
    # thirty-third hunt, case 63: the run said nothing after it, its end neither, rc 0
    "__import__('logging').getLogger('align_lab').disabled = True": "warning: reward.path=acting:score "
    "changed the process's align_lab logger's switch (disabled) False -> True; the run's are put back",
    "[h.setLevel(40) for h in __import__('logging').getLogger().handlers]": (
        "warning: reward.path=acting:score changed the process's root handlers' levels ("
    ),
    # case 46: the run's next tensor on that device ("meta" for "cuda"), 54 lines
    f"{TORCH}.set_default_device('meta')": "warning: reward.path=acting:score changed the process's default "
    "device cpu -> meta; the run's are put back after each call",
    # case 35: an alarm left armed with SIGALRM's default action: rc 142, no line
    "signal.setitimer(signal.ITIMER_REAL, 0.05)": "warning: reward.path=acting:score left a timer armed "
    "(signal.alarm or setitimer, SIGALRM in ",
    # case 34: a timeout guard's handler left with its alarm: its error raised in the run's code, 90 lines
    "(signal.signal(signal.SIGALRM, lambda *a: 1 / 0), signal.setitimer(signal.ITIMER_REAL, 0.05))": (
        "warning: reward.path=acting:score left a timer armed (signal.alarm or setitimer, SIGALRM in "
    ),
    # thirty-fourth hunt, case 34: a profiler's timer left armed, SIGPROF's default action: rc 155, no line
    "signal.setitimer(signal.ITIMER_PROF, 0.05, 0.05)": "warning: reward.path=acting:score left a timer "
    "armed (signal.alarm or setitimer, SIGPROF in ",
    # thirty-seventh hunt, cases 19-20: the next checkpoint's write a 63-line traceback (EFBIG), and 75 lines
    # (too many open files)
    "(r := __import__('resource')).setrlimit(r.RLIMIT_FSIZE, (20000, r.RLIM_INFINITY))": "warning: "
    "reward.path=acting:score changed the process's RLIMIT_FSIZE limit unlimited -> 20000 (hard unlimited); "
    "the run's are put back after each call",
    "(r := __import__('resource')).setrlimit(r.RLIMIT_NOFILE, (12, r.getrlimit(r.RLIMIT_NOFILE)[1]))": (
        "warning: reward.path=acting:score changed the process's RLIMIT_NOFILE limit "
    ),
    # fortieth hunt, cases 10-11: its hard limit too, which a process without CAP_SYS_RESOURCE (a container's
    # root) cannot raise again: metrics.jsonl torn at 1000 bytes, a traceback, summary.json `running`
    "(r := __import__('resource')).setrlimit(r.RLIMIT_FSIZE, (1000, 1000))": "warning: reward.path=acting:"
    "score changed the process's RLIMIT_FSIZE limit unlimited -> 1000 (hard unlimited) (setrlimit lowers a "
    "soft limit only here: the hard ones asked were kept); the run's are put back after each call",
    # case 42: the rest of the run trained and evaluated under bf16 autocast, other numbers, no line
    f"{TORCH}.autocast('cpu', dtype={TORCH}.bfloat16).__enter__()": "warning: reward.path=acting:score "
    "changed the process's cpu autocast off -> on (torch.bfloat16); the run's are put back after each call",
    # thirty-eighth hunt, case 13: 99 lines, five tracebacks, a first line guessing a SIGKILL
    "os.closerange(3, 4096)": "warning: reward.path=acting:score tried to close the run's fd ",
    # thirty-ninth hunt, case 13: at import, the output piped into `head`: killed by SIGPIPE, no word
    "signal.signal(signal.SIGPIPE, signal.SIG_DFL)": "warning: reward.path=acting:score changed the "
    "process's SIGPIPE handler; the run's is put back after each call (with yours, a write to a closed pipe",
    # case 14: under cpu_ddp, rank 0's join of rank 1 a 62-line TypeError
    "signal.signal(signal.SIGCHLD, signal.SIG_IGN)": "warning: reward.path=acting:score changed the "
    "process's SIGCHLD handler; the run's is put back after each call (with yours, its ranks' ends are lost)",
    # case 55: every later file 0400, checkpoints/ 0500 (unwritable but by root), no line
    "os.umask(0o277)": "warning: reward.path=acting:score changed the process's file creation mask (umask) ",
    # fifty-third hunt's session: every later warning an exception, the libraries' and align_lab's own
    # (a ResourceWarning's "Exception ignored" tracebacks, one at the exit after `completed`), rc 0
    "__import__('warnings').filterwarnings('error')": "warning: reward.path=acting:score changed the "
    "process's warnings filters [",
}


@pytest.mark.parametrize(
    "act",
    list(SAID),
    ids=[
        "grad_off",
        "recursion",
        "thread_raises",
        "atexit",
        "tensor",
        "logging_off",
        "logger_off",
        "handler_levels",
        "device",
        "alarm",
        "alarm_raises",
        "profiler_timer",
        "file_size_limit",
        "open_files_limit",
        "hard_file_size_limit",
        "autocast",
        "closes_fds",
        "pipe_default",
        "child_ignored",
        "umask",
        "warnings_error",
    ],
)
def test_what_a_rewards_call_changes_of_the_process_is_put_back_or_said_in_one_line(
    act, tmp_path, cache_dir, forked_cli
):
    """A reward's call that turns torch's gradients off or lowers the recursion limit for the process,
    starts a thread that raises, registers an exit handler that calls os._exit, or returns a tensor that
    requires grad: the run completes on its own modes, each said in one line (none for the tensor: its
    value is read as it is), with no traceback."""
    ACTS[act] = act
    result, run_dir = run(act, tmp_path, cache_dir, forked_cli)
    assert result.returncode == (5 if "atexit" in act else 0), result.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    said = SAID[act].format(file=tmp_path / "acting.py")
    lines = [x for x in result.stderr.splitlines() if "acting" in x or "UserWarning" in x]  # its lines
    assert lines == [] if not said else len(lines) == 1 and lines[0].startswith(said), lines
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert " completed in " in result.stderr, result.stderr[-3000:]  # its end said, whatever the call did


def test_a_program_a_reward_starts_and_leaves_running_is_named_as_the_command_ends(
    tmp_path, cache_dir, forked_cli
):
    """Thirty-second hunt, case 54: a reward's `subprocess.Popen(["sleep", "300"])`, never waited: the run
    completed, and `... | tee log` waited 5 minutes more for the sleep, which held its output, with no line.
    Here its output goes elsewhere (the test waits for no sleep): named, not said to hold it."""
    ACTS["program"] = (
        "__import__('subprocess').Popen(['sleep', '31'], stdout=-3, stderr=-3, stdin=-3)"  # DEVNULL
    )
    result, run_dir = run("program", tmp_path, cache_dir, forked_cli)
    subprocess.run(["pkill", "-f", "^sleep 31$"], check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if "ends leaving process" in x]
    assert line.startswith("align_lab: warning: the command ends leaving process "), line
    assert line.endswith(
        " (sleep 31) running, which code it ran started (a reward, verifier or environment of yours?): end "
        "it in your code"
    ), line


def test_a_reward_that_sends_its_process_sigterm_is_named_not_said_as_a_schedulers_stop(
    tmp_path, cache_dir, forked_cli
):
    """Thirty-first hunt, case 13: `os.kill(os.getpid(), SIGTERM)` in a reward's call: "interrupted by
    SIGTERM" as a scheduler's stop, naming neither the code nor its line, and the printed resume met the
    same signal again. Now said as its SIGKILL is: where, and the resume once it is fixed."""
    ACTS["sigterm"] = "os.kill(os.getpid(), signal.SIGTERM)"
    result, run_dir = run("sigterm", tmp_path, cache_dir, forked_cli)
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(f"align_lab: error: {tmp_path / 'acting.py'}:13 called os.kill("), line
    assert ", SIGTERM) during the run; resume from step 1 with: " in line, line
    assert line.endswith(" resume_changed_inputs=true") and "interrupted" not in result.stderr, line
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


def test_a_reward_that_interrupts_its_main_thread_is_named_not_said_as_a_ctrl_c(
    tmp_path, cache_dir, forked_cli
):
    """Thirty-fourth hunt, case 35: `_thread.interrupt_main()` in a reward's call (a timeout snippet's
    way to stop it) was `interrupted by SIGINT; resume ...`, an outside Ctrl-C's line."""
    ACTS["interrupt_main"] = "__import__('_thread').interrupt_main()"
    result, run_dir = run("interrupt_main", tmp_path, cache_dir, forked_cli)
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(
        f"align_lab: error: {tmp_path / 'acting.py'}:13 called _thread.interrupt_main(SIGINT) during the "
        "run; "
    ), line
    assert line.endswith(" resume_changed_inputs=true") and "interrupted" not in result.stderr, line
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


SEEDED = REWARD.replace("CALLS[0] += 1", "CALLS[0] += 1\n    __import__('torch').manual_seed(0)")


def test_a_reward_that_seeds_torch_in_each_call_leaves_the_runs_numbers_as_they_were(
    tmp_path, cache_dir, forked_cli
):
    """Thirty-third hunt, case 27: a reward calling `torch.manual_seed(0)` in each call reseeded the stream
    the rollout samples from: every step sampled from seed 0's, whatever `seed=` said (metrics differed
    from step 2, no line). Its seeding is put back after each call, said once, and the run's numbers are
    those of the same reward without it."""
    small = [a for a in SMALL if not a.startswith("reward.")]
    metrics = {}
    for name, text in (("plain", REWARD), ("seeded", SEEDED)):
        (tmp_path / f"{name}.py").write_text(text.format(act="pass") + "\nTHREAD_EXITS = False\n")
        run_dir = tmp_path / name
        args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
        result = forked_cli([*args, f"reward.path={name}:score"], cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        said = [x for x in result.stderr.splitlines() if "changed the process's torch random state" in x]
        assert len(said) == (name == "seeded"), said
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        metrics[name] = [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]
    assert metrics["seeded"] == metrics["plain"]


READS_ITS_SCALE = """
import os
import time
from pathlib import Path

SCALE = float(os.environ["SCALE52"])
CALLS = [0]

def score(prompts, responses):
    CALLS[0] += 1
    if CALLS[0] == 3:
        Path(os.environ["MARK52"]).touch()
        time.sleep(60)  # killed here
    return [SCALE * len(r.split()) for r in responses]
"""


def test_a_run_killed_in_a_call_says_a_resume_that_sets_the_variables_its_code_read(tmp_path, cache_dir):
    """Thirty-sixth hunt, case 52: a run killed -9 in a reward's call that reads SCALE52 (set inline as
    the run started): hang_watch's resume command lacked the variable, which the run's own lines carry
    (thirty-third hunt, case 50); typed in a fresh shell it failed on a KeyError, or, where the code has a
    default, resumed on another value in silence."""
    (tmp_path / "reads_scale.py").write_text(READS_ITS_SCALE)
    run_dir, mark = tmp_path / "run", tmp_path / "mark"
    small = [a for a in SMALL if not a.startswith(("reward.", "train.steps="))]
    args = [*small, "train.steps=4", f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    env = {**os.environ, "SCALE52": "2", "MARK52": str(mark)}
    run = subprocess.Popen(
        [sys.executable, "-m", "align_lab", *args, "reward.path=reads_scale:score"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not mark.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    run.kill()
    _, said = run.communicate(timeout=120)
    [line] = [x for x in said.splitlines() if "killed in this call" in x] or [said[-3000:]]
    assert "resume from step " in line, line
    assert 'SCALE52="${SCALE52?set it as when the run started: your code reads it}" ' in line, line


LATER = """
import resource
import threading
import time

IN_CALL, CALLS = [False], [0]

def lower():  # once the third call has returned: between calls, outside any call's guard
    while CALLS[0] < 3 or IN_CALL[0]:
        time.sleep(0.001)
    time.sleep(0.01)  # the call's guard left too; the next call (the evaluation's) comes 50 ms later
    resource.setrlimit(resource.RLIMIT_{name}, ({low}, {low}))

def score(prompts, responses):
    IN_CALL[0] = True
    CALLS[0] += 1
    if CALLS[0] == 1:
        threading.Thread(target=lower, daemon=True).start()
    scores = [float(len(r.split())) for r in responses]
    IN_CALL[0] = False
    return scores
"""


@pytest.mark.parametrize("name, low", [("FSIZE", 1000), ("NOFILE", 12)])
def test_a_limit_a_rewards_thread_lowers_after_its_call_is_put_back_and_said(name, low, tmp_path, cache_dir):
    """Forty-first hunt, cases 49 and 52: a reward's thread lowering RLIMIT_FSIZE (1000, 1000) after its call
    returned failed the run's next metrics.jsonl write in a 362-line traceback, summary.json `running`; one
    lowering RLIMIT_NOFILE (12, 12) ended in "reward.path=...: raised OSError ... at align_lab/user_modes.py".
    The hard limit is kept, the soft one put back between calls, said once; the run completes."""
    (tmp_path / "later.py").write_text(LATER.format(name=name, low=low))
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    result = run_cli([*args, "reward.path=later:score"], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    said = [x for x in result.stderr.splitlines() if "later:score" in x]
    assert said == [
        f"warning: reward.path=later:score left code running (a thread or process of its) that changed the "
        f"process's RLIMIT_{name} limit {said and said[0].split(' limit ')[1].split(' -> ')[0]} -> {low} "
        "(hard " + said[0].split("(hard ")[1]
    ], said
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3


TRUNCATES = """
import os

def score(prompts, responses):
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + name)
        except OSError:
            continue
        if target.endswith("metrics.jsonl"):
            HOW
    return [float(len(r.split())) for r in responses]
"""


@pytest.mark.parametrize("how", ["os.ftruncate(int(name), 0)", "os.truncate(target, 0)"])
def test_a_reward_that_truncates_the_runs_metrics_is_one_line_and_the_lines_stay(how, tmp_path, cache_dir):
    """Forty-third hunt, case 13: a reward truncating the run's metrics.jsonl through /proc/self/fd each
    call: the run completed with 1 of its 6 step lines, no line said."""
    (tmp_path / "truncating.py").write_text(TRUNCATES.replace("HOW", how))
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    result = run_cli([*args, "reward.path=truncating:score"], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    said = "reward.path=truncating:score: raised PermissionError: [Errno 1] Operation not permitted: fd "
    assert said in last, last
    assert "metrics.jsonl) is the run's, not your code's at " in last, last
    assert "Traceback" not in result.stderr
