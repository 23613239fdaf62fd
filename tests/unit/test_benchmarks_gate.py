"""The regression gate's arithmetic (benchmarks/gate.py): per-round ratios, their verdict, the baseline
file; the gate's runs are tested in tests/integration/test_benchmarks_gate.py."""

from __future__ import annotations

import os
import shutil

import pytest

from benchmarks import gate
from benchmarks.harness import Run


def test_round_ratios_pair_each_round():
    rows = [
        {"round": 0, "arm": "current", "step_s": 0.30},
        {"round": 0, "arm": "baseline", "step_s": 0.20},
        {"round": 1, "arm": "baseline", "step_s": 0.25},
        {"round": 1, "arm": "current", "step_s": 0.25},
    ]
    # round 0: 0.30 / 0.20 = 1.5; round 1: 0.25 / 0.25 = 1.0
    assert gate.round_ratios(rows, "step_s") == pytest.approx([1.5, 1.0])


def test_verdict_names_metric_ratio_and_band():
    bands = {"step time": 0.10, "peak memory": 0.05}
    # 1.10 is on the band's edge: passes; 1.06 > 1.05 fails
    lines = gate.verdict({"step time": 1.10, "peak memory": 1.06}, bands, "toy")
    assert lines == ["gate: toy peak memory 1.06x the baseline's, beyond its band +5%"]
    assert gate.verdict({"step time": 0.8, "peak memory": 1.0}, bands, "toy") == []


def test_figures_skip_the_first_step():
    rows = [{"time/step_s": 9.0}, {"time/step_s": 0.2}, {"time/step_s": 0.4}, {"time/step_s": 0.3}]
    # median of 0.2, 0.4, 0.3 = 0.3
    f = gate.figures(Run(rows, {}, 1.0, 500.0))
    assert (f.step_s, f.peak_mib) == (0.3, 500.0)


def test_baseline_file(tmp_path):
    commit, why = gate.read_baseline()  # the recorded one: a full commit and a reason
    assert len(commit) == 40 and why
    bad = tmp_path / "b.txt"
    bad.write_text("# a comment\nabc123\n")
    with pytest.raises(SystemExit, match="one commit line and one 'why:' line"):
        gate.read_baseline(bad)


def test_bad_arguments_are_one_line_before_any_run():
    with pytest.raises(SystemExit, match="--steps=1: must be at least 2"):
        gate.check(gate.parser().parse_args(["--steps", "1"]))
    with pytest.raises(SystemExit, match="--time-band=-0.1: must be a finite number, 0 or more"):
        gate.check(gate.parser().parse_args(["--time-band", "-0.1"]))
    with pytest.raises(SystemExit, match="--time-band=inf: must be a finite number, 0 or more"):  # 1e400:
        gate.check(gate.parser().parse_args(["--time-band", "1e400"]))  # passed as a gate that cannot fail


def test_a_failure_timed_on_few_steps_says_how_few():
    """Hunt of 2026-12-04, c61: `--steps 2 --rounds 1` failed at 4.99x on a busy machine (one timed step),
    the same command a minute later passed at 1.02x, and nothing said the figure was one step's."""
    assert gate.few_timed(2, 1) == (
        "gate: note: 1 timed step a tree (--steps 2 less its first, x --rounds 1): one step's noise on a "
        "busy machine can make that ratio; the defaults time 21"
    )


def test_a_pass_timed_on_few_steps_says_how_few_too(monkeypatch, capsys, tmp_path):
    """Hunt of 2026-12-04 (third), on c61's fix: a pass on one timed step is as noisy as a failure, and
    said nothing. Both arms' runs stand in here: the same figures, a pass."""
    row = {"workload": "toy", "step_s": 0.05, "peak_mib": 500.0}
    rows = [{**row, "round": r, "arm": arm} for r in range(2) for arm in ("current", "baseline")]
    monkeypatch.setattr(gate, "check", lambda a: None)
    monkeypatch.setattr(gate, "measure", lambda *args: rows)
    monkeypatch.setattr(gate, "report", lambda *args, **kwargs: None)
    assert gate.main(["--baseline-dir", str(tmp_path), "--steps", "2", "--rounds", "2"]) == 0
    out, err = capsys.readouterr()
    assert "gate: passed (toy step time 1.00x, peak memory 1.00x)" in out
    assert err == gate.few_timed(2, 2) + "\n"
    assert gate.main(["--baseline-dir", str(tmp_path), "--steps", "3", "--rounds", "2"]) == 0
    assert capsys.readouterr().err == ""  # 4 timed steps a tree: no note


def test_a_json_path_that_is_a_folder_or_a_cold_first_run_is_one_line_before_any_run(tmp_path):
    """Eleventh hunt: `--json <a folder>` ran both arms for minutes, then an IsADirectoryError traceback;
    `--warmup 0` (fresh cache) timed the first arm's stage builds: a false 2.93x memory regression."""
    with pytest.raises(SystemExit) as e:
        gate.check(gate.parser().parse_args(["--json", str(tmp_path)]))
    assert str(e.value) == f"gate: --json={tmp_path}: is a folder; give a file to write the result to"
    with pytest.raises(SystemExit, match="^gate: --json=: is empty; "):  # twelfth hunt: read as a folder
        gate.check(gate.parser().parse_args(["--json", ""]))
    with pytest.raises(SystemExit, match="names a folder that does not exist .*/no"):
        gate.check(gate.parser().parse_args(["--json", str(tmp_path / "no" / "r.json")]))
    gate.check(gate.parser().parse_args(["--json", str(tmp_path / "r.json")]))  # a new file: fine
    assert not (tmp_path / "r.json").exists()  # and not left behind by the check
    with pytest.raises(SystemExit, match=r"^gate: --json=/proc/x.json: cannot be written \("):  # twelfth hunt
        gate.check(gate.parser().parse_args(["--json", "/proc/x.json"]))
    os.mkfifo(tmp_path / "pipe.json")  # its open waited for a reader, for ever (fifth hunt of 2026-12-04)
    with pytest.raises(SystemExit) as e:
        gate.check(gate.parser().parse_args(["--json", str(tmp_path / "pipe.json")]))
    assert str(e.value) == (
        f"gate: --json={tmp_path / 'pipe.json'}: cannot be written (a named pipe, not a file); give a file "
        "to write the result to"
    )
    with pytest.raises(SystemExit, match="^gate: --warmup=0: must be at least 1 without --cache: "):
        gate.check(gate.parser().parse_args(["--warmup", "0"]))
    gate.check(gate.parser().parse_args(["--warmup", "0", "--cache", str(tmp_path)]))  # a warm cache


def test_an_empty_or_damaged_baseline_dir_is_one_line_before_any_run(tmp_path):
    """Issue 73: an empty --baseline-dir ran the installed align_lab (this code) as the baseline and
    reported a false 1.23x memory regression."""
    empty, damaged = tmp_path / "empty", tmp_path / "damaged"
    empty.mkdir()
    (damaged / "conf").mkdir(parents=True)
    (damaged / "align_lab").mkdir()
    (damaged / "conf" / "config.yaml").write_text("")
    (damaged / "align_lab" / "__init__.py").write_text("raise ImportError('half a checkout')\n")
    expected = {
        empty: "holds no align_lab source tree (align_lab/__init__.py and conf/config.yaml); give an "
        "align_lab checkout, or --baseline <commit>",
        damaged: "its align_lab does not import (ImportError: half a checkout)",
        tmp_path / "nope": "no such folder",
        tmp_path / "a_file": "a file, not a folder",  # said 'no such folder' (second fresh hunt)
    }
    (tmp_path / "a_file").write_text("")
    for tree, message in expected.items():
        with pytest.raises(SystemExit) as e:
            gate.check(gate.parser().parse_args(["--baseline-dir", str(tree)]))
        assert str(e.value) == f"gate: --baseline-dir={tree}: {message}"
    # a real tree passes; the current tree itself (or `.` in it) would measure this code against itself
    other = tmp_path / "other"
    for folder in ("align_lab", "conf"):
        shutil.copytree(gate.ROOT / folder, other / folder, ignore=shutil.ignore_patterns("__pycache__"))
    gate.check(gate.parser().parse_args(["--baseline-dir", str(other)]))
    # a tree whose conf/config.yaml is no YAML: the gate timed the current tree, then the baseline's run
    # failed and its line said to rename the baseline's align_lab (the done-when hunt of 2026-12-04)
    config = other / "conf" / "config.yaml"
    config.write_text(config.read_text() + "defaults: [[[\n")
    with pytest.raises(SystemExit) as e:
        gate.check(gate.parser().parse_args(["--baseline-dir", str(other)]))
    assert str(e.value).startswith(f"gate: --baseline-dir={other}: {config} line ")
    assert str(e.value).endswith(
        ": not valid YAML (expected the node content, but found '<stream end>'); fix the file"
    )
    for same in (str(gate.ROOT), f"{gate.ROOT}/."):
        with pytest.raises(SystemExit) as e:
            gate.check(gate.parser().parse_args(["--baseline-dir", same]))
        assert str(e.value) == (
            f"gate: --baseline-dir={same}: is the current tree ({gate.ROOT.resolve()}), so the gate would "
            "measure this code against itself; give the baseline's tree, or --baseline <commit>"
        )
    # the fifth hunt: `--baseline-dir=$BASE` with BASE unset was Path(""), this tree, a gate that cannot fail
    with pytest.raises(SystemExit) as e:
        gate.check(gate.parser().parse_args(["--baseline-dir="]))
    assert (
        str(e.value)
        == "gate: --baseline-dir is empty; give the baseline's source tree, or --baseline <commit>"
    )


def test_a_benchmark_run_that_fails_is_one_line_its_stderr_kept(tmp_path):
    """Issue 73 eighth hunt: `gate --baseline-dir` a tree whose align_lab imports but does not run put the
    child's traceback before the user; now one line, the whole stderr kept. Fifteenth hunt: kept beside
    the run folder, in the gate's temporary folder, the file was gone once the gate exited."""
    import shutil
    from pathlib import Path

    from benchmarks.harness import failed_line

    stderr = 'Traceback (most recent call last):\n  File "x.py", line 1\nImportError: cannot import X\n\n'
    line = failed_line(["python", "-m", "align_lab", "train.steps=2"], stderr, tmp_path / "gate" / "run")
    shutil.rmtree(tmp_path / "gate", ignore_errors=True)  # as the gate's temporary folder goes
    head, _, kept = line.partition(" (its whole stderr: ")
    assert head == "python -m align_lab train.steps=2 failed: ImportError: cannot import X"
    assert Path(kept.removesuffix(")")).read_text() == stderr
    Path(kept.removesuffix(")")).unlink()
