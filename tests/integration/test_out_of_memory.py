"""Memory that runs out mid-run (run/failure.py out_of_memory): one line with where it ran out, what
the run had, and the resume command that plans its micro-batches for less; that command resumes it."""

from __future__ import annotations

import json
import math
import os
import subprocess

from tests.conftest import ROOT, SMALL, run_cli

# step 3's first update (two a step) allocates what torch's CPU allocator refuses: a real allocation
# error inside align_lab's update, after step 2's checkpoint
ALLOCATION_REFUSED_AT_STEP_3 = """
import os

import torch
from align_lab.train.backend import TorchUpdater

backward = TorchUpdater.backward


def refused_at_step_3(self, loss):
    if self.updates == 4 and not os.path.exists(os.environ["REFUSED"]):  # once: the resume goes on
        open(os.environ["REFUSED"], "w").close()
        torch.empty(1 << 50, dtype=torch.uint8)  # 1 PiB
    backward(self, loss)


TorchUpdater.backward = refused_at_step_3
"""


def test_memory_run_out_is_one_line_whose_command_resumes_the_run(tmp_path, cache_dir):
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(ALLOCATION_REFUSED_AT_STEP_3)
    run_dir = tmp_path / "run"
    args = [*SMALL, f"hydra.run.dir={run_dir}", f"cache_dir={cache_dir}"]
    result = run_cli(
        args, cwd=ROOT, env={"PYTHONPATH": str(tmp_path / "inject"), "REFUSED": str(tmp_path / "refused")}
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("align_lab:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    said = "align_lab: error: out of memory at align_lab/train/"
    assert lines[-1].startswith(said) and "(tried to allocate 1048576.00 GiB; " in lines[-1], lines[-1]
    assert "micro-batches were planned for the device's whole memory (hardware.memory_gb unset)" in lines[-1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == lines[-1].removeprefix("align_lab: ")
    command = lines[-1].split("resume from step 2 with: ", 1)[1]
    from align_lab.train.memory import machine_memory  # the run's room on a CPU: 0.9 of it, a tenth down

    gb = math.floor(machine_memory() / 2**30 * 0.9 * 10) / 10
    assert command.endswith(f" hardware.memory_gb={gb:g}"), command
    env = {**os.environ, "REFUSED": str(tmp_path / "refused")}  # its PYTHONPATH is in the command
    resumed = subprocess.run(command, shell=True, capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert summary["status"] == "completed" and steps[-1] == 3, (summary, steps)
    assert len(summary["segments_s"]) == 2, summary  # the failed segment, then the resumed one
    assert (
        "policy optimisation: 3/3" in resumed.stderr and "policy optimisation: 1/3" not in resumed.stderr
    ), resumed.stderr
