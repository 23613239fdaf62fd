"""A reward that starts a thread of its own (not a daemon) in the main process: the run completed and said
so, then the command never returned, waiting for that thread (eighteenth hunt, case 17; the spawned
The command now ends, naming the thread it left. A thread stuck in C holding Python's lock ends the run in
one line (thirty-third hunt, case 64)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT, SMALL

POLLER = """
import threading, time

def score(prompts, responses):
    if not any(t.name == "user-poller" for t in threading.enumerate()):
        threading.Thread(target=lambda: time.sleep(10**6), name="user-poller").start()
    return [float(len(r)) for r in responses]
"""


TEARDOWN = """
import os, signal

class Sentinel:
    def __del__(self):  # runs in the interpreter's module teardown, where Python's handlers are gone
        os.kill(os.getpid(), signal.SIGTERM)

SENTINEL = Sentinel()

def score(prompts, responses):
    return [float(len(r)) for r in responses]
"""


def run_with_reward(tmp_path, cache_dir, module: str, text: str, *more: str, env=None, signal_at=None):
    """The run, its reward `module` (`text`), to its end; `signal_at`: a file whose making is followed, a
    second later, by a SIGTERM to the run's process."""
    (tmp_path / f"{module}.py").write_text(text)
    run_dir = tmp_path / "run"
    args = [
        *[a for a in SMALL if not a.startswith("reward.")],
        "reward=function",
        f"reward.path={module}:score",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
        *more,
    ]
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", **(env or {})}
    command = [sys.executable, "-m", "align_lab", *args]
    pipe = subprocess.PIPE
    run = subprocess.Popen(command, cwd=ROOT, stdout=pipe, stderr=pipe, text=True, env=env)
    if signal_at is not None:
        while not signal_at.exists() and run.poll() is None:
            time.sleep(0.1)
        time.sleep(1.0)
        run.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = run.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        run.kill()  # a run that hangs (held with no word) is no process to leave behind
        raise
    return subprocess.CompletedProcess(command, run.returncode, stdout, stderr), run_dir


def test_the_command_ends_after_its_last_write_without_the_interpreters_teardown(tmp_path, cache_dir):
    """Nineteenth hunt, case 10: a SIGTERM just after a completed run's last line killed the command with
    no line and rc -15 (5 tries of 6): Python restores the default actions in its module teardown, which
    torch's modules make last hundreds of ms. The command now ends once its exit handlers ran; here a
    signal that module teardown would send never comes."""
    done, run_dir = run_with_reward(tmp_path, cache_dir, "rw_teardown", TEARDOWN)
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert "completed in" in done.stderr and "compare:" in done.stderr.splitlines()[-1], done.stderr[-3000:]


def test_a_thread_the_users_code_leaves_running_does_not_keep_the_command_from_ending(tmp_path, cache_dir):
    done, run_dir = run_with_reward(tmp_path, cache_dir, "rw_poller", POLLER)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert "warning: the command ends leaving thread user-poller running" in done.stderr, done.stderr[-3000:]


HELD = """
import os, re, threading, time

def stuck():
    time.sleep(0.3)  # past the call that started it: Python's lock held outside any call of the run's
    open(os.environ["HELD_MARK"], "w").close()
    re.match(r"(a+)+$", "a" * 60 + "b")

def score(prompts, responses):
    if not os.environ.get("UNSTUCK") and not any(t.name == "user-stuck" for t in threading.enumerate()):
        threading.Thread(target=stuck, name="user-stuck", daemon=True).start()
    return [float(len(r)) for r in responses]
"""


def test_a_thread_of_the_users_code_holding_pythons_lock_ends_the_run_in_one_line(tmp_path, cache_dir):
    """Thirty-third hunt, case 64: a daemon thread a reward started, stuck in C holding Python's lock (a
    regex backtracking for ever) outside any call: the run hung with no line, and two SIGTERMs did nothing
    (no thread of the run's could run). hang_watch.py, beside the run, hears its pulse stop: past
    ALIGN_LAB_HELD_S the process is ended, in one line naming the user's line, summary `failed`, and the
    command it prints resumes the run once the code is fixed."""
    mark = tmp_path / "held"
    env = {"ALIGN_LAB_HELD_S": "3", "HELD_MARK": str(mark)}
    more = ("train.steps=20", "reward.timeout_s=null")  # no call bounded: a silence is the pulse's alone
    done, run_dir = run_with_reward(tmp_path, cache_dir, "rw_held", HELD, *more, env=env)
    assert done.returncode == -signal.SIGABRT, (done.returncode, done.stderr[-3000:])
    assert mark.exists() and "Fatal Python error" not in done.stderr, done.stderr[-3000:]
    [line] = [x for x in done.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(
        "align_lab: error: no thread of the run's has run Python for 3 s: Python's lock is held, by a "
        f"thread stuck at {tmp_path / 'rw_held.py'}:7 (one your code started, or a call of it), so no signal "
        "reaches the run: the process was ended (ALIGN_LAB_HELD_S=3; raise it if that wait is meant); fix "
        "it, then resume from step "
    ), line
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == line.removeprefix("align_lab: error: ")
    last = (run_dir / "app.log").read_text().splitlines()[-1]  # there too (thirty-fifth hunt, case 12)
    assert last.endswith(f"[ERROR] {line}"), last
    resumed = subprocess.run(
        ["bash", "-c", line.split(" with: ", 1)[1]],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "UNSTUCK": "1"},
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_a_sigterm_no_thread_of_the_run_can_answer_ends_it_in_one_line(tmp_path, cache_dir):
    """Case 64 as the hunt met it: the reward's own call bounded (reward.timeout_s, 600 s by default), a
    SIGTERM met silence. hang_watch.py finds the signal waiting, unread, in the run's wakeup pipe
    (train/preemption.py reads it only once it holds Python's lock) and ends the run, in one line."""
    mark = tmp_path / "held"
    env = {"ALIGN_LAB_HELD_S": "3", "HELD_MARK": str(mark)}
    done, run_dir = run_with_reward(
        tmp_path, cache_dir, "rw_held", HELD, "train.steps=200", env=env, signal_at=mark
    )
    assert done.returncode == -signal.SIGABRT, (done.returncode, done.stderr[-3000:])
    [line] = [x for x in done.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(
        "align_lab: error: a SIGTERM came while no thread of the run's could run Python to answer it (none "
        "has for "
    ), line
    assert f"stuck at {tmp_path / 'rw_held.py'}:7 (one your code started, or a call of it)" in line, line
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


CRASHING = """
import ctypes, os, threading, time

def crash():
    time.sleep(3.0)  # once the run has started (before it: the same line, no run to resume)
    ctypes.string_at(0)

if not os.environ.get("UNSTUCK"):
    threading.Thread(target=crash, name="metrics-uploader", daemon=True).start()

def score(prompts, responses):
    return [float(len(r)) for r in responses]
"""


def test_a_thread_of_the_users_module_that_crashes_outside_any_call_ends_the_run_in_one_line(
    tmp_path, cache_dir
):
    """Thirty-fourth hunt, case 86: a thread a reward module starts as it is imported (an uploader of its
    own), crashing in C between calls: a 125-line dump, no key, summary `running`. hang_watch.py, told of
    the run by its pulse, finds the user's frame in the dump: one line, summary `failed`, the resume."""
    done, run_dir = run_with_reward(tmp_path, cache_dir, "rw_crash", CRASHING, "train.steps=200")
    assert done.returncode == -signal.SIGSEGV, (done.returncode, done.stderr[-3000:])
    assert "Fatal Python error" not in done.stderr, done.stderr[-3000:]
    [line] = [x for x in done.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(
        "align_lab: error: the process crashed (Segmentation fault) outside any call of align_lab's to your "
        f"code, in a thread at {tmp_path / 'rw_crash.py'}:6 (one your code started?); fix it, then resume "
    ), line
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


POOL = """
import ctypes, multiprocessing

CALLS = [0]

def length(response):
    if CALLS[0] == 2:
        ctypes.string_at(0)  # a worker's crash in C
    return float(len(response))

def score(prompts, responses):
    CALLS[0] += 1
    with multiprocessing.get_context("fork").Pool(2) as pool:
        return pool.map(length, responses)
"""


def test_a_pool_whose_workers_crash_leaves_the_runs_line_last_naming_the_users_line(tmp_path, cache_dir):
    """Thirty-fourth hunt, case 60: a reward's fork Pool whose workers crashed in C: the run's line came
    8th of 210, under the workers' crash dumps (they inherited the run's faulthandler), naming the
    threading module's wait. A forked child reports no crash of its own, as a plain Python's does not."""
    done, run_dir = run_with_reward(tmp_path, cache_dir, "rw_pool", POOL, "reward.timeout_s=3")
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert "Fatal Python error" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1].startswith(
        "align_lab: error: reward.path=rw_pool:score: no answer in reward.timeout_s=3 s, stopped at "
        f"{tmp_path / 'rw_pool.py'}:14 "
    ), done.stderr[-3000:]
