"""The GPU acceptance script's checks on a CPU (issue 70 item 7): `python -m scripts.gpu_accept --device
cpu` as a GPU machine would run it with cuda, its one line a check and its figures' file with the device
and the date. ZeRO and two-rank checks are left to their own tests here (test_backends.py,
test_rank_generators.py): the same runs, minutes on 2 cores."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_the_acceptance_script_runs_its_checks_on_a_cpu_one_line_each(tmp_path):
    out = tmp_path / "accept.json"
    command = [sys.executable, "-m", "scripts.gpu_accept", "--device", "cpu"]
    command += ["--only", "bf16-step,resume,generators", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [
        ["PASS", "bf16-step"],
        ["PASS", "resume"],
        ["SKIP", "generators"],  # a GPU's generator: nothing to check on a CPU
    ]
    assert lines[3] == f"figures: {out}"
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" and record["date"].endswith("Z")
    assert record["checks"]["resume"]["figures"] == {"steps": 4, "resumed_at": 2, "processes": 1}
    assert record["checks"]["bf16-step"]["figures"]["step_s"] > 0


def test_an_unknown_check_is_one_line_naming_the_allowed_ones():
    command = [sys.executable, "-m", "scripts.gpu_accept", "--device", "cpu", "--only", "zero4"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert (
        "--only: unknown zero4; allowed: bf16-step, zero2, zero3, resume, generators, two-ranks"
        in result.stderr
    )
