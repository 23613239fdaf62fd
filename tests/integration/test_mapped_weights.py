"""A stage's saved weights truncated in place while a run uses them (a cleanup script, a quota tool):
transformers had mapped the file into memory, and the run died of SIGBUS as it next read a weight, saying
nothing, summary.json `running` (seventeenth hunt, case 59). The run's weights are its own copy now: it
completes, and the next run finds the damaged entry and builds it again (the stage cache's own line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.conftest import ROOT, SMALL


def test_a_stage_file_truncated_under_a_running_run_does_not_kill_it(tmp_path):
    cache, run_dir, log = tmp_path / "cache", tmp_path / "run", tmp_path / "stderr"
    args = [*SMALL, "train.steps=4", f"cache_dir={cache}", f"hydra.run.dir={run_dir}"]
    with log.open("w") as err:
        run = subprocess.Popen([sys.executable, "-m", "align_lab", *args], cwd=ROOT, stderr=err)
        deadline = time.monotonic() + 600
        while "predicted peak memory" not in log.read_text() and run.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        files = sorted(cache.glob("*/*/*.safetensors"))
        for file in files:  # the stages' models are loaded by now
            os.truncate(file, 1000)
        code = run.wait(timeout=600)
    said = log.read_text()
    assert files and code == 0 and "Traceback" not in said, said[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
