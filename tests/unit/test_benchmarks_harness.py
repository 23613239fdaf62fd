"""The benchmark suite's harness and entry point (benchmarks/): every benchmark module declares what it
needs, a smoke run and main, and uses the harness; the harness's alternation, ratios, table, machine
header and JSON, by hand. The benchmarks themselves run in tests/integration/test_benchmarks.py."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import read, suite
from benchmarks.harness import machine, machine_line, missing, ratios, report, schedule, table
from tests.conftest import ROOT

NOT_BENCHMARKS = {
    "__init__.py",
    "__main__.py",
    "harness.py",
    "gate.py",
    "result_file.py",
    "options.py",
}  # gate: its own command


def test_every_module_of_benchmarks_is_a_benchmark_on_the_harness() -> None:
    modules = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name not in NOT_BENCHMARKS)
    assert [p.stem for p in modules] == sorted(suite())
    for path in modules:
        text = path.read_text()
        assert "from benchmarks.harness import" in text, path.name
        assert "def main(argv: list[str] | None = None)" in text and "report(" in text, path.name
        assert read(path).smoke, f"{path.name}: no SMOKE arguments"


def test_schedule_alternates_the_arms_round_by_round() -> None:
    assert list(schedule(["a", "b", "c"], 3)) == [
        (0, "a"), (0, "b"), (0, "c"), (1, "b"), (1, "c"), (1, "a"), (2, "c"), (2, "a"), (2, "b"),
    ]  # fmt: skip
    assert [arm for _, arm in schedule(["trl", "align_lab"], 2)] == ["trl", "align_lab", "align_lab", "trl"]


def test_ratios_and_table() -> None:
    # 0.57 / 1.14 = 0.5; 1.14 / 1.14 = 1
    assert ratios({"trl": 1.14, "align_lab": 0.57}, "trl") == pytest.approx({"trl": 1.0, "align_lab": 0.5})
    assert (
        table([{"arm": "a", "s": 0.123456}, {"arm": "b"}])
        == "| arm | s |\n|---|---|\n| a | 0.1235 |\n| b |  |"
    )


def test_machine_header_and_json_report(tmp_path: Path, capsys) -> None:
    m = machine()
    assert m["cores"] >= 1 and m["cpu"] and m["date"].endswith("UTC") and len(m["load"]) == 3
    assert machine_line(m).startswith(f"# {m['date']}, {m['cpu']} (")
    args = argparse.Namespace(rounds=1, smoke=True, json=str(tmp_path / "r.json"))
    report("demo", args, [{"arm": "a", "s": 2.0}, {"arm": "b", "s": 1.0}], ratio={"b/a": {"b": 0.5}})
    printed = capsys.readouterr().out
    assert "| a | 2 |" in printed and "ratio b/a: b 0.50" in printed  # 4 significant digits: 2
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["rows"][1] == {"arm": "b", "s": 1.0} and result["args"] == {"rounds": 1, "smoke": True}
    assert result["machine"]["cpu"] == m["cpu"]


def test_missing_names_how_to_get_it_and_refuses_an_unknown_need() -> None:
    with pytest.raises(ValueError, match="NEEDS='tpu': must be one of trl, smollm2, cuda, vllm"):
        missing(["tpu"])


def test_the_entry_point_lists_every_benchmark_and_refuses_an_unknown_one() -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "benchmarks", *args], cwd=ROOT, capture_output=True, text=True
        )

    listed = run("list")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(suite())
    unknown = run("run", "nope")
    assert unknown.returncode == 2 and "no benchmark 'nope'" in unknown.stderr


def test_a_result_file_that_cannot_be_written_is_one_line_before_any_benchmark_runs(tmp_path) -> None:
    """The gate checked its --json before its runs (twelfth hunt); every other benchmark wrote it after its
    minutes: a folder was a traceback then, a named pipe a wait for ever (fifth hunt of 2026-12-04)."""
    from benchmarks.__main__ import main

    os.mkfifo(tmp_path / "pipe.json")
    for value, why in [
        (str(tmp_path), "is a folder"),
        (str(tmp_path / "pipe.json"), "cannot be written (a named pipe, not a file)"),
        (str(tmp_path / "no" / "r.json"), f"names a folder that does not exist ({tmp_path / 'no'})"),
    ]:
        started = []
        with pytest.MonkeyPatch.context() as m:
            m.setattr("importlib.import_module", lambda name, seen=started: seen.append(name))
            with contextlib.redirect_stderr(io.StringIO()) as err:
                assert main(["run", "seeds_needed", "--json", value]) == 2
        assert err.getvalue() == (
            f"benchmarks: seeds_needed: --json={value}: {why}; give a file to write the result to\n"
        )
        assert started == []  # nothing ran


def test_the_clock_is_a_whole_tracker_and_times_each_step() -> None:
    from align_lab.tracking import Tracker
    from benchmarks.harness import Clock

    assert {m for m in vars(Tracker) if not m.startswith("_")} <= set(dir(Clock))  # a new method breaks here
    seen = []
    clock = Clock(on_log=lambda metrics, step: seen.append(step))
    clock.log({"time/step_s": 0.5}, step=1)
    clock.samples([{"reward": 1.0}], step=1)
    clock.log({"time/step_s": 0.25}, step=2)
    assert seen == [1, 2] and clock.rows == [{"time/step_s": 0.5}, {"time/step_s": 0.25}]
    assert clock.ends[0] <= clock.ends[1]


WORKER_ENV = """
import json
from benchmarks.real_model_vs_trl import worker_env
KEYS = ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE", "LD_PRELOAD", "ALIGN_LAB_PROCESS")
print(json.dumps({impl: {k: worker_env(impl).get(k) for k in KEYS} for impl in ("trl", "align_lab")}))
"""


@pytest.mark.parametrize("user", [{}, {"OMP_WAIT_POLICY": "ACTIVE"}])
def test_trls_worker_runs_without_what_import_align_lab_sets_and_with_what_the_user_set(user):
    """real_model_vs_trl compares defaults: TRL's worker must not inherit align_lab's OpenMP wait policy
    or torch's huge pages from the benchmark process, which imported align_lab; a user's setting stays.
    align_lab's starts with the malloc `python -m align_lab` restarts itself with; TRL's with glibc's."""
    import os

    from align_lab.malloc import library

    drop = ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE", "LD_PRELOAD", "ALIGN_LAB_MALLOC", "ALIGN_LAB_PROCESS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    code = ["-c", WORKER_ENV]
    out = subprocess.run(
        [sys.executable, *code],
        env=env | user | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout)
    assert got["align_lab"] == {
        "OMP_WAIT_POLICY": user.get("OMP_WAIT_POLICY", "PASSIVE"),
        "THP_MEM_ALLOC_ENABLE": "1",
        "LD_PRELOAD": library({}),  # None where tcmalloc is not installed
        "ALIGN_LAB_PROCESS": None,
    }
    trl = {"OMP_WAIT_POLICY": user.get("OMP_WAIT_POLICY"), "THP_MEM_ALLOC_ENABLE": "0", "LD_PRELOAD": None}
    trl["ALIGN_LAB_PROCESS"] = "untouched"  # its import of align_lab leaves glibc's mmap threshold alone
    assert got["trl"] == trl


def test_real_model_vs_trl_tokens_takes_one_length_or_a_comma_list():
    from benchmarks.real_model_vs_trl import lengths

    assert lengths("64") == [64] and lengths("16,32,64") == [16, 32, 64]
    for bad in ("0", "16,x", "", "-4", "16,,32"):
        with pytest.raises(argparse.ArgumentTypeError, match="a number of tokens >= 1"):
            lengths(bad)


def test_the_machine_line_asks_torch_for_the_gpu_before_the_benchmark_imports_it():
    """gpu_runs prints the machine's line first, before it imports torch: it said "GPU none" on the lent
    H200 of 2026-12-04. machine() imports torch to ask."""
    code = "import sys; from benchmarks.harness import machine; machine(); print('torch' in sys.modules)"
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.split()[-1] == "True", result.stderr[-2000:]
