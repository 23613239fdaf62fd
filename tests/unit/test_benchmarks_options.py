"""A benchmark's options, checked before its minutes (benchmarks/options.py): the seventh hunt of
2026-12-04 found counts of 0 ending in tracebacks (ZeroDivisionError, numpy's IndexError, range()'s
ValueError), `--effect nan` and a plan past its own bounds written as results, names that match no
setting run as an empty table or a ZeroDivisionError, and `--jso /tmp` (argparse's abbreviation of
--json) past the check of --json, a traceback after the run. Also: two results of one second in one
file (b15), and a SIGTERM that left the benchmark's run training, orphaned (b17)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import signal

import pytest

from benchmarks.__main__ import main
from benchmarks.options import at_least, names, positive
from benchmarks.result_file import fresh


def refused(*argv: str) -> str:
    """What `python -m benchmarks run ...` said on stderr as it stopped before the benchmark ran."""
    with contextlib.redirect_stderr(io.StringIO()) as err, pytest.raises(SystemExit) as stop:
        main(["run", *argv])
    said = err.getvalue() + (stop.value.code if isinstance(stop.value.code, str) else "")
    assert stop.value.code not in (0, None), said
    return said


def test_counts_numbers_and_names_have_a_type_that_says_what_is_allowed():
    assert at_least(1)("3") == 3 and at_least(0)("0") == 0
    for bad, said in [("0", "0: must be an integer >= 1"), ("x", "'x': must be an integer >= 1")]:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{said}$"):
            at_least(1)(bad)
    assert positive("0.5") == 0.5
    for bad in ("nan", "inf", "-1", "0"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a finite number > 0"):
            positive(bad)
    assert names("a,b", ["a", "b", "c"], "--cells") == ["a", "b"]
    assert names("bf16", ["grpo-bf16", "grpo-fp32"], "--only", parts=True) == ["bf16"]
    with pytest.raises(SystemExit, match=r"^benchmarks: --cells=nope: nope matches nothing; allowed: a, b$"):
        names("nope", ["a", "b"], "--cells")
    with pytest.raises(SystemExit, match=r"^benchmarks: --cells=,: names nothing; allowed: a, b$"):
        names(",", ["a", "b"], "--cells")


@pytest.mark.parametrize(
    "argv, said",
    [
        (["seeds_needed", "--claims", "0"], "argument --claims: 0: must be an integer >= 1"),
        (["seeds_needed", "--pilots", "1"], "argument --pilots: 1: must be an integer >= 2"),
        (["seeds_needed", "--runs", "0"], "argument --runs: 0: must be an integer >= 1"),
        (["seeds_needed", "--effect", "nan"], "argument --effect: nan: must be a finite number > 0"),
        (["default_run", "--rounds", "0"], "argument --rounds: 0: must be an integer >= 1"),
        (["sequential_plan", "--wave", "0"], "argument --wave: 0: must be an integer >= 1"),
        (["sequential_plan", "--claims", "0"], "argument --claims: 0: must be an integer >= 1"),
        (["sequential_plan", "--max-seeds", "1"], "plan.max_seeds=1: must be >= plan.start=4"),
        (["sequential_plan", "--start", "1"], "plan.start=1: must be >= 2"),
        (["seeds_needed", "--jso", "/tmp"], "unrecognized arguments: --jso /tmp"),
        (
            ["backends", "--only", "nope"],
            "benchmarks: --only=nope: nope matches nothing; allowed: torch fp32 (default), torch bf16",
        ),
        (["scaling", "--cells", "nope"], "benchmarks: --cells=nope: nope matches nothing; allowed: batch"),
    ],
)
def test_a_bad_option_is_one_line_before_the_benchmark_runs(argv, said):
    before = signal.getsignal(signal.SIGTERM)
    out = refused(*argv)
    assert signal.getsignal(signal.SIGTERM) == before  # main's SIGTERM handler taken back
    assert said in out, out
    assert "Traceback" not in out
    if "argument" in said or "unrecognized" in said:  # argparse's line names the command that was typed
        assert f"python -m benchmarks run {argv[0]}: error: " in out


def test_a_default_result_name_taken_gets_the_next_free_one(tmp_path):
    first, second = (
        fresh(tmp_path, "seeds_needed-20261204-145011"),
        fresh(tmp_path, "seeds_needed-20261204-145011"),
    )
    assert (first.name, second.name) == (
        "seeds_needed-20261204-145011.json",
        "seeds_needed-20261204-145011-2.json",
    )
    first.write_text(json.dumps({"effect": 0.5}))
    assert fresh(tmp_path, "seeds_needed-20261204-145011").name == "seeds_needed-20261204-145011-3.json"
    assert json.loads(first.read_text()) == {"effect": 0.5}  # the first result kept
