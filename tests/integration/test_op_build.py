"""A build of DeepSpeed's CPU comm op killed as torch holds its build lock: the lock stayed, and every later
DeepSpeed run (and scripts/build_deepspeed_ops.py) waited for it forever, saying nothing (seventeenth
hunt's notes). The next build removes it, saying so, and finishes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from align_lab.train.op_build import build_folder
from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "build_deepspeed_ops.py"


def test_a_build_killed_holding_its_lock_leaves_nothing_the_next_build_waits_for(tmp_path):
    built = build_folder("deepspeed_shm_comm")  # scripts/test.sh built it here
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "extensions")}
    folder = tmp_path / "extensions" / built.name  # TORCH_EXTENSIONS_DIR/<op>, as torch names it
    shutil.copytree(built, folder, ignore=shutil.ignore_patterns("lock", "align_lab.building.*"))
    (folder / "deepspeed_shm_comm.so").unlink(missing_ok=True)  # torch links it again, under its lock
    first = subprocess.Popen([sys.executable, str(SCRIPT)], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (folder / "lock").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (folder / "lock").exists()  # the kill left torch's lock
    again = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=240
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"warning: {folder / 'lock'}: left by a build of the op that was killed; removed" in again.stderr
    assert (folder / "deepspeed_shm_comm.so").exists() and not (folder / "lock").exists()
