"""A reward that starts a thread of its own (not a daemon) in the main process: the run completed and said
so, then the command never returned, waiting for that thread (eighteenth hunt, case 17; the spawned
ranks end with os._exit and never waited). The command now ends, naming the thread it left."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


def run_with_reward(tmp_path, cache_dir, module: str, text: str) -> tuple:
    (tmp_path / f"{module}.py").write_text(text)
    run_dir = tmp_path / "run"
    args = [
        *[a for a in SMALL if not a.startswith("reward.")],
        "reward=function",
        f"reward.path={module}:score",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "align_lab", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return done, run_dir


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
