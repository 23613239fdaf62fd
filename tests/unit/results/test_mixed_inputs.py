"""results/notes.py mixed_inputs_notes: runs compared together that read one file of yours in different
versions (twenty-sixth hunt, case 30: a sweep's held-out answers edited before `study resume` started its
second run; compare pooled both as `grpo n=2` with no note)."""

from __future__ import annotations

from pathlib import Path

from align_lab.results.notes import mixed_inputs_notes
from align_lab.results.runs import Run


def run(name: str, inputs: dict) -> Run:
    return Run(folder=Path("/sweep") / name, status="completed", summary={"inputs": inputs})


def data(digest: str, file: str = "/d/q.jsonl") -> dict:
    return {"task.path": {"file": file, "sha256": digest}}


def test_runs_that_read_one_file_in_two_versions_are_named_with_each_version():
    runs = [run("0_grpo_seed0", data("5d684cdb6bab23da")), run("1_grpo_seed1", data("c8dcaa51bc9e982c"))]
    runs.append(run("2_grpo_seed2", data("5d684cdb6bab23da")))
    assert mixed_inputs_notes(runs) == [
        "WARNING: the runs read task.path (/d/q.jsonl) in 2 versions: sha256 5d684cdb in 0_grpo_seed0, "
        "2_grpo_seed2; sha256 c8dcaa51 in 1_grpo_seed1: their differences are not seed noise (rerun them "
        "on one version to compare them)."
    ]


def test_one_version_two_files_or_nothing_recorded_is_no_note():
    same = [run("a", data("5d684cdb")), run("b", data("5d684cdb"))]
    other_tasks = [run("a", data("5d684cdb", "/d/one.jsonl")), run("b", data("c8dcaa51", "/d/two.jsonl"))]
    assert mixed_inputs_notes(same) == mixed_inputs_notes(other_tasks) == []
    assert mixed_inputs_notes([run("a", {}), Run(folder=Path("/b"), status="died")]) == []
