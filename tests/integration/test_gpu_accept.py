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
    assert lines[2].endswith("s): a CPU: no GPU generator to check (two-ranks checks the ranks' generators)")
    assert lines[3] == f"figures: {out}"
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" and record["date"].endswith("Z")
    head = subprocess.run(["git", "rev-parse", "--short=8", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert record["commit"].removesuffix("+changes") == head.stdout.strip()
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


def test_the_rank_generator_check_leaves_out_a_resumes_probe_of_the_rows_scored_last(tmp_path):
    """What the two-rank resume check compares: rank 0's scorer calls, generator digest and rows, as the
    CPU's acceptance run of 2026-12-04 logged them. A resume asks rank 0's scorer again on the rows it
    scored last (run/probe_check.py): that call is no step's, and the check failed on it."""
    from scripts.gpu_accept import calls

    straight = ["302 3f92", "584 219a", "704 9a34", "824 4d84", "944 e85c", "944 a97c"]
    resumed = ["302 3f92", "584 219a", "704 219a", "704 9a34", "824 4d84", "944 e85c", "944 a97c"]
    (tmp_path / "straight").write_text("\n".join(straight) + "\n")
    (tmp_path / "resumed").write_text("\n".join(resumed) + "\n")
    assert (
        calls(tmp_path / "resumed")
        == calls(tmp_path / "straight")
        == [
            "302",
            "584",
            "704",
            "824",
            "944",
            "944",
        ]
    )
    (tmp_path / "moved").write_text("302 3f92\n584 219a\n704 219a\n705 9a34\n")  # a generator off by a draw
    assert calls(tmp_path / "moved") == ["302", "584", "705"]


def test_an_out_that_cannot_take_the_figures_is_one_line_before_the_checks(tmp_path):
    """--out a folder (or in no folder) ran every check, minutes on a GPU, then a traceback, the figures
    lost (seventh hunt of 2026-12-04, g1, g4)."""
    for out, why in [
        (tmp_path, "is a folder"),
        (tmp_path / "no" / "a.json", "names a folder that does not exist"),
    ]:
        command = [sys.executable, "-m", "scripts.gpu_accept", "--device", "cpu", "--only", "resume"]
        result = subprocess.run(
            [*command, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2 and result.stdout == "", result.stdout
        assert f"error: --out={out}: {why}" in result.stderr and "Traceback" not in result.stderr
