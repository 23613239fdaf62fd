"""SDPO end to end on the toy world's verifiable arithmetic (algorithms/self_distill.py): each teacher kind
trains, the EMA teacher is checkpointed with the run and a killed run resumes to the same numbers, and a
key that cannot work is one line before any compute."""

from __future__ import annotations

import pytest

from align_lab.config import ConfigError
from align_lab.tracking import read_metrics
from align_lab.train.checkpoint_io import load_checkpoint
from tests.conftest import run_in_process
from tests.integration.test_backends import _interrupted_then_resumed, _strip

# toy_arith's verifier scores 0/1: a success is a right answer (success_threshold 1.0)
SDPO = ["algo=sdpo", "task=toy_arith", "reward=verifier", "train.steps=3", "train.checkpoint_every=1"]


@pytest.mark.parametrize("kind", ["ema", "base", "live"])
def test_each_teacher_kind_trains_the_rows_a_sibling_can_teach(kind, tmp_path, cache_dir):
    run = tmp_path / kind
    summary = run_in_process(
        [*SDPO, f"algo.teacher_kind={kind}", "train.keep_checkpoint=true"], run, cache_dir
    )
    assert summary["status"] == "completed"
    rows = read_metrics(run / "metrics.jsonl")
    assert all(0 <= r["train/taught_rows"] <= 1 for r in rows)
    assert any(r["train/taught_rows"] > 0 for r in rows)  # some group had a right answer to show
    assert all(r["train/grad_norm"] > 0 for r in rows if r["train/taught_rows"] > 0)
    # where the teacher's prompt shows a demonstration, it differs from the student
    assert all(r["train/teacher_kl"] != 0 for r in rows if r["train/taught_rows"] > 0)
    objects = load_checkpoint(run / "checkpoints")["objects"]
    assert ("self_teacher" in objects) == (kind == "ema")  # the one teacher whose weights move with the run


def test_the_ema_teacher_is_checkpointed_and_a_killed_run_resumes_to_the_same_numbers(
    tmp_path, cache_dir, monkeypatch
):
    steps = [*SDPO, "train.steps=4", "seed=1", "train.rollout_size=64", "train.minibatch_size=32"]
    _interrupted_then_resumed(steps, tmp_path / "full", tmp_path / "resumed", cache_dir, monkeypatch)
    full = _strip(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    assert _strip(read_metrics(tmp_path / "resumed" / "metrics.jsonl")) == full
    # not vacuous: the EMA moved before the kill, and a step after it is taught by the moved teacher
    assert full[0]["train/taught_rows"] + full[1]["train/taught_rows"] > 0
    assert full[2]["train/taught_rows"] + full[3]["train/taught_rows"] > 0


def test_a_multi_turn_env_is_refused_in_one_line(tmp_path, cache_dir):
    with pytest.raises(ConfigError, match=r"algo=sdpo") as info:
        run_in_process(
            ["algo=sdpo", "env=calculator", "task=arith_word", "reward=verifier"], tmp_path / "x", cache_dir
        )
    assert "\n" not in str(info.value) and not (tmp_path / "x").exists()
