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


def test_a_thread_the_users_code_leaves_running_does_not_keep_the_command_from_ending(tmp_path, cache_dir):
    (tmp_path / "rw_poller.py").write_text(POLLER)
    run_dir = tmp_path / "run"
    args = [
        *[a for a in SMALL if not a.startswith("reward.")],
        "reward=function",
        "reward.path=rw_poller:score",
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
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert "warning: the command ends leaving thread user-poller running" in done.stderr, done.stderr[-3000:]
