"""The regression gate (benchmarks/gate.py) on real runs: it fails on a deliberately slowed tree (a copy
of align_lab whose every timed phase sleeps 50 ms), passes when both arms are the same code, and checks
the baseline commit out as a git worktree that it removes after. Tiny sizes and wide bands (a shared
machine's noise); about a minute, so not in the fast tier."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from benchmarks import gate
from tests.conftest import ROOT

TINY = ["--tiny", "--steps", "4", "--rounds", "1", "--time-band", "1.0", "--memory-band", "0.5"]


def slowed(into):
    """A copy of this tree's align_lab (and conf/) whose every timed phase sleeps 50 ms more."""
    for folder in ("align_lab", "conf", "hydra_plugins"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, into / folder, ignore=shutil.ignore_patterns("__pycache__"))
    metrics = into / "align_lab" / "train" / "metrics.py"
    text = metrics.read_text()
    timed = "    start = time.perf_counter()\n    yield\n"
    assert timed in text, "train/metrics.py timed() changed: update this test's slowdown"
    metrics.write_text(
        text.replace(timed, "    start = time.perf_counter()\n    time.sleep(0.05)\n    yield\n")
    )
    return into


def test_the_gate_fails_a_slowed_tree_and_passes_the_same_code(tmp_path, capsys):
    slow = slowed(tmp_path / "slow")
    cache = tmp_path / "cache"
    common = [*TINY, "--cache", str(cache), "--baseline-dir", str(ROOT)]
    # 4 phases or more a step, each 50 ms slower: a tiny step (tens of ms) several times slower
    status = gate.main([*common, "--current-dir", str(slow), "--json", str(tmp_path / "slow.json")])
    err = capsys.readouterr().err
    assert status == 1
    assert "gate: toy step time" in err and "beyond its band +100%" in err
    # the same tree on both arms; the stages are in the cache already
    status = gate.main(
        [*common, "--warmup", "0", "--current-dir", str(ROOT), "--json", str(tmp_path / "same.json")]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "gate: passed (toy step time" in out


def test_the_baseline_is_a_worktree_removed_after(tmp_path):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    tree = gate.checkout(head.stdout.strip(), tmp_path)
    assert (tree / "align_lab" / "train" / "metrics.py").is_file()
    gate.remove(tree)
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True
    ).stdout
    assert str(tree) not in listed and not tree.exists()
