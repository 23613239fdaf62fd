"""align_lab/run/run_folder.py: RunFolder is the only writer of a run's summary.json (no other module of the
package, its launchers, scripts or benchmarks writes a file of that name), and a refused resume's
kept/restore puts the folder's files back byte for byte."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from align_lab.folder import SUMMARY
from align_lab.run.run_folder import RESOLVED_CONFIG, RunFolder
from tests.conftest import ROOT

WRITER = ROOT / "align_lab" / "run" / "run_folder.py"
SCANNED = [
    p
    for d in ("align_lab", "hydra_plugins", "scripts", "benchmarks")
    for p in sorted((ROOT / d).rglob("*.py"))
    if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)  # a venv inside (.venv-trl)
]
# calls that put bytes into a file (or move a written one into place), and where the file written is:
# the receiver's path, or the argument at that position
WRITES = {"write_text": None, "write_bytes": None, "write_atomic": 0, "replace": 0, "rename": 0}
WRITES |= {"copy": 1, "copyfile": 1, "copy2": 1, "move": 1}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes of every module, class and function: they may name summary.json."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _is_summary(node: ast.AST, docs: set[int], bound: set[str]) -> bool:
    """`node` names the summary file: "summary.json" (outside docstrings), SUMMARY, a `summary_path`, or
    a name bound to one of these."""
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            if "summary.json" in n.value:
                return True
        if isinstance(n, ast.Name) and (n.id == "SUMMARY" or n.id in bound):
            return True
        if isinstance(n, ast.Attribute) and n.attr in ("SUMMARY", "summary_path"):
            return True
    return False


def _writes_summary(func: ast.AST, docs: set[int]) -> bool:
    """`func` writes the summary file: a call of WRITES whose target it is, or open() of it in a mode that
    writes; names assigned from the file's path count as it."""
    bound: set[str] = set()
    for n in ast.walk(func):
        if isinstance(n, ast.Assign) and _is_summary(n.value, docs, bound):
            bound |= {t.id for t in n.targets if isinstance(t, ast.Name)}
    for n in ast.walk(func):
        if not isinstance(n, ast.Call):
            continue
        name = n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
        if name in WRITES:
            at = WRITES[name]
            target = n.func.value if at is None and isinstance(n.func, ast.Attribute) else None
            target = n.args[at] if at is not None and len(n.args) > at else target
            if target is not None and _is_summary(target, docs, bound):
                return True
        if name == "open" and n.args and _is_summary(n.args[0], docs, bound):
            modes = [k.value for k in n.keywords if k.arg == "mode"] + n.args[1:2]
            if any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes):
                return True
    return False


def writers_in(source: str) -> list[str]:
    """The functions of `source` that write the summary file (_writes_summary)."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _writes_summary(node, docs)
    ]


def summary_writers(path: Path) -> list[str]:
    """'file:function' of each function of `path` that writes the summary file."""
    return [f"{path.relative_to(ROOT)}:{name}" for name in writers_in(path.read_text())]


def test_the_scan_finds_the_writers_it_must():
    """The check below would pass on an empty scan: RunFolder's own writer, and the forms the writes
    took before RunFolder (write_summary in the summary module, a path bound to a name, open() for
    writing), must be found; reading the file or naming it in a docstring is no write."""
    assert summary_writers(WRITER) == ["align_lab/run/run_folder.py:write_summary"]
    source = '''
def old(run_dir, summary):
    write_atomic(run_dir / "summary.json", json.dumps(summary))
def bound(run_dir):
    path = run_dir / SUMMARY
    path.write_text("{}")
def opened(run_dir):
    with open(run_dir / "summary.json", "w") as f:
        f.write("{}")
def reads(run_dir):
    """Writes nothing to summary.json."""
    summary = run_dir / "summary.json"
    (run_dir / "other.txt").write_text(summary.read_text())
'''
    assert writers_in(source) == ["old", "bound", "opened"]


@pytest.mark.parametrize("path", [p for p in SCANNED if p != WRITER], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_other_module_writes_summary_json(path):
    assert summary_writers(path) == [], "write summary.json through RunFolder (align_lab/run/run_folder.py)"


def test_write_then_read_gives_the_summary_back(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.read_summary() == {}  # none yet
    folder.write_summary({"status": "running", "seed": 3})
    assert folder.read_summary() == {"status": "running", "seed": 3}
    assert not (tmp_path / f"{SUMMARY}.tmp").exists()  # written whole, then moved into place


def test_restore_puts_back_what_kept_found(tmp_path):
    """A folder with a summary and no resolved config: after both are rewritten, restore() gives the old
    summary's bytes and time (a killed segment's end is read from it: sixth hunt) and removes the config
    that was not there."""
    folder = RunFolder(tmp_path)
    (tmp_path / SUMMARY).write_text('{"status": "preempted"}')
    os.utime(tmp_path / SUMMARY, (1_000_000, 1_000_000))
    kept = folder.kept()
    assert kept == {SUMMARY: (b'{"status": "preempted"}', 1_000_000 * 10**9), RESOLVED_CONFIG: None}
    folder.write_summary({"status": "running"})
    folder.write_resolved_config({"seed": 0})
    folder.restore(kept)
    assert (tmp_path / SUMMARY).read_bytes() == b'{"status": "preempted"}'
    assert (tmp_path / SUMMARY).stat().st_mtime == 1_000_000
    assert not (tmp_path / RESOLVED_CONFIG).exists()


def test_a_cut_short_resolved_config_is_said_to_be_damaged_not_a_changed_config(tmp_path):
    """Issue 73 seventh hunt: config.resolved.yaml cut to 200 bytes (still YAML) before a resume said
    `algo={...the whole algo node...}: the run in <run> to resume has algo=None`, blaming the command."""
    import yaml

    from align_lab.config import ConfigError
    from align_lab.run.summary import check_resume_config

    config = {"seed": 0, "task": {"name": "toy"}, "train": {"steps": 4}, "algo": {"lr": 0.001}}
    (tmp_path / "checkpoints").mkdir()
    whole = yaml.safe_dump(config, sort_keys=False)
    (tmp_path / RESOLVED_CONFIG).write_text(whole[: whole.index("algo:")])
    with pytest.raises(ConfigError) as e:
        check_resume_config(tmp_path, config)
    assert str(e.value) == (
        f"{tmp_path / RESOLVED_CONFIG}: damaged (it records no algo, which every run's does); move it away "
        "to resume on the checkpoint's own record of the config, or choose another hydra.run.dir"
    )
    (tmp_path / RESOLVED_CONFIG).write_text(whole)
    check_resume_config(tmp_path, config)  # whole: the same run resumes
