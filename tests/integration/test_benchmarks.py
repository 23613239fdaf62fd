"""Every benchmark of the suite runs: `python -m benchmarks run NAME --smoke` (a run of seconds on an idle
machine, the benchmark's own SMOKE arguments) exits 0 and writes its result with the machine header.

A benchmark that needs TRL runs in the environment made for it (benchmarks/.venv-trl) where that exists,
or here if this Python has the package; one that needs vLLM with the vLLM tests, in .venv-vllm
(tests/integration/test_vllm.py); one that needs a GPU or SmolLM2 where they are. Otherwise it is
skipped, with the command that installs what it needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import Benchmark, suite
from benchmarks.harness import HOW, missing
from tests.conftest import FULL, ROOT

SUITE = suite()
OWN_PYTHON = {"trl": ROOT / "benchmarks/.venv-trl/bin/python", "vllm": ROOT / ".venv-vllm/bin/python"}
# a benchmark that needs vLLM runs with the vLLM tests, in .venv-vllm (tests/integration/test_vllm.py), which
# scripts/test.sh makes while this suite runs: collected here, it was skipped or run by when the env was there
IN_THE_VLLM_TESTS = "runs with the vLLM tests: bash scripts/test_vllm.sh (tests/integration/test_vllm.py)"
# a smoke run that fails for a reason fixed elsewhere: name -> the reason (none today)
XFAIL: dict[str, str] = {}


def python_for(b: Benchmark) -> Path | str:
    """The Python to run `b` with: the environment made for what it needs, if there is one."""
    own = [OWN_PYTHON[n] for n in b.needs if n in OWN_PYTHON and OWN_PYTHON[n].exists()]
    return own[0] if own else sys.executable


def absent(b: Benchmark) -> list[str]:
    """What `b` needs that neither its own environment nor this Python has."""
    has_own = {n for n in b.needs if n in OWN_PYTHON and OWN_PYTHON[n].exists()}
    return missing([n for n in b.needs if n not in has_own])


# the smoke runs CI's tier keeps (seconds each; the rest, 20-60 s of CPU each, in the full tier)
IN_CI = {"default_run", "packed_update", "decode_width", "lora_rollout", "async_rollouts", "scaling"}


def params(real_model: bool) -> list:
    out = []
    for name, b in SUITE.items():
        if ("smollm2" in b.needs) != real_model:
            continue
        marks = [pytest.mark.xfail(reason=XFAIL[name], strict=True)] if name in XFAIL else []
        if "vllm" in b.needs:
            marks.append(pytest.mark.skip(reason=IN_THE_VLLM_TESTS))
        elif lacking := absent(b):
            marks.append(pytest.mark.skip(reason=f"needs {'; '.join(lacking)}"))
        if name not in IN_CI:
            marks.append(FULL)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def smoke(name: str, tmp_path: Path, cache_dir: Path) -> dict:
    """`python -m benchmarks run <name> --smoke` in the Python made for what it needs: its result file."""
    out = tmp_path / "result.json"
    command = [str(python_for(SUITE[name])), "-m", "benchmarks", "run", name, "--smoke", "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "ALIGN_LAB_CACHE": str(cache_dir)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == name and result["rows"]
    assert {"date", "cpu", "cores", "commit", "load"} <= set(result["machine"])
    assert result["args"]["smoke"] is True
    return result


@pytest.mark.parametrize("name", params(real_model=False))
def test_benchmark_runs_briefly(name: str, tmp_path: Path, cache_dir: Path) -> None:
    smoke(name, tmp_path, cache_dir)


@pytest.mark.parametrize("name", params(real_model=True))
def test_real_model_benchmark_runs_briefly(name: str, smollm2, tmp_path: Path, cache_dir: Path) -> None:
    smoke(name, tmp_path, cache_dir)


def test_every_need_has_a_way_to_get_it() -> None:
    assert {n for b in SUITE.values() for n in b.needs} <= set(HOW)


@FULL
def test_forward_rows_measures_an_update_row_under_bf16_against_the_bf16_plan(tmp_path: Path) -> None:
    """forward_rows --graph --dtype bf16: an update's row (forward with a graph, backward) under bf16
    autocast, measured against the memory plan's bf16 row (BACKWARD x row_bytes at 2 bytes a layer
    float), not the fp32 one."""
    from align_lab.train.memory.footprint import Dims, row_bytes
    from align_lab.train.memory.planner import BACKWARD
    from benchmarks.forward_rows import SMOKE

    out = tmp_path / "rows.json"
    command = [sys.executable, "-m", "benchmarks", "run", "forward_rows", *SMOKE]
    command += ["--graph", "--dtype", "bf16", "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["notes"] | {"graph": True, "dtype": "bf16"} == result["notes"]
    dims = Dims(hidden=64, layers=2, intermediate=128, heads=2, vocab=512, kv_width=32)
    bf16, fp32 = (BACKWARD * row_bytes(dims, 8, 8, dtype=d) / 2**20 for d in ("bf16", "fp32"))
    assert [row["predicted"] for row in result["rows"]] == [round(bf16, 2)] * 2 and bf16 < fp32
