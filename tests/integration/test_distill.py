"""Distillation end to end on the toy world (algorithms/distill.py, run/teacher.py): OPD and SFT-distill
train a few steps against a teacher stage that is cached by content and shared, a run folder serves as a
teacher, and one that cannot share the policy's tokenizer is refused in one line before any compute."""

from __future__ import annotations

import json

import pytest

from align_lab.config import ConfigError
from align_lab.tracking import read_metrics
from tests.conftest import run_in_process

TEACHER = ["reward=gold", "algo.teacher_epochs=3"]  # SMALL's sft.epochs is 2: the teacher saw more


def stages(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())["stages"]


def test_opd_and_sft_distill_train_against_one_cached_teacher(tmp_path, cache_dir):
    opd, distill = tmp_path / "opd", tmp_path / "sft_distill"
    assert (
        run_in_process(["algo=opd", "train.minibatch_size=16", *TEACHER], opd, cache_dir)["status"]
        == "completed"
    )
    assert run_in_process(["algo=sft_distill", *TEACHER], distill, cache_dir)["status"] == "completed"
    first, second = stages(opd), stages(distill)
    assert first["teacher"]["key"] == second["teacher"]["key"] != first["sft"]["key"]
    assert second["teacher"]["hit"]  # built once, by the first run
    rows = read_metrics(opd / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    # one minibatch, on-policy (ratio 1): the step's loss is the mean sampled reverse KL to the teacher
    assert rows[0]["train/loss"] == pytest.approx(rows[0]["train/teacher_kl"], abs=1e-6)
    distilled = read_metrics(distill / "metrics.jsonl")
    assert all(r["train/loss"] > 0 for r in distilled)  # an NLL of the teacher's samples
    assert distilled[-1]["counters/generated_tokens"] > 0  # the teacher's tokens are counted as sampled


def test_a_run_folder_teaches_and_one_of_another_task_is_refused(tmp_path, cache_dir):
    teacher = tmp_path / "teacher"
    run_in_process(["algo=reinforce_pp", "reward=gold"], teacher, cache_dir)
    summary = run_in_process(
        ["algo=opd", "reward=gold", f"algo.teacher={teacher}"], tmp_path / "s", cache_dir
    )
    assert summary["status"] == "completed" and "teacher" in stages(tmp_path / "s")
    with pytest.raises(ConfigError, match=r"^algo.teacher=.*that run's task is not this run's") as info:
        run_in_process(["algo=opd", "task=toy_arith", f"algo.teacher={teacher}"], tmp_path / "x", cache_dir)
    assert "\n" not in str(info.value) and not (tmp_path / "x").exists()
