"""Distillation end to end on the toy world (algorithms/distill.py, run/teacher.py): OPD and SFT-distill
train a few steps against a teacher stage that is cached by content and shared, a run folder serves as a
teacher, and one that cannot share the policy's tokenizer is refused in one line before any compute."""

from __future__ import annotations

import json

import pytest

from align_lab.config import ConfigError
from align_lab.rl.distill import on_policy_step
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
    # every step the teacher's samples: said, and no engine-vs-trainer mismatch (the engine's log-probs
    # are the teacher's, not a stale or bf16 copy of the student's)
    assert all(r["train/teacher_sampled"] == 1.0 and "rollout/mismatch_kl" not in r for r in distilled)
    assert all("train/teacher_sampled" not in r and "rollout/mismatch_kl" in r for r in rows)  # OPD: its own


def test_a_run_folder_teaches_and_one_of_another_task_is_refused(tmp_path, cache_dir):
    teacher = tmp_path / "teacher"
    run_in_process(["algo=reinforce_pp", "reward=gold"], teacher, cache_dir)
    summary = run_in_process(
        ["algo=opd", "reward=gold", f"algo.teacher={teacher}"], tmp_path / "s", cache_dir
    )
    assert summary["status"] == "completed" and "teacher" in stages(tmp_path / "s")
    with pytest.raises(
        ConfigError,
        match=r"^algo.teacher=.*that run's task\._target_ is '.*', this run's '.*': a teacher run's",
    ) as info:
        run_in_process(["algo=opd", "task=toy_arith", f"algo.teacher={teacher}"], tmp_path / "x", cache_dir)
    assert "\n" not in str(info.value) and not (tmp_path / "x").exists()


def test_gkd_loss_is_its_logged_divergence_and_micro_batches_give_the_same_run(tmp_path, cache_dir):
    # GKD differentiates the divergence the learner computes per micro-batch: 4-row micro-batches of the
    # 8-row minibatches (policy and teacher logits for 4 rows at a time) train the same weights as whole ones
    runs = {}
    for name, extra in (("whole", []), ("micro", ["train.micro_batch_size=4"])):
        summary = run_in_process(["algo=gkd", *TEACHER, *extra], tmp_path / name, cache_dir)
        assert summary["status"] == "completed"
        runs[name] = read_metrics(tmp_path / name / "metrics.jsonl")
    for whole, micro in zip(runs["whole"], runs["micro"], strict=True):
        # the loss is the token mean of the divergence: equal to the logged mean divergence per minibatch
        assert whole["train/loss"] == pytest.approx(whole["train/teacher_jsd"], rel=1e-6)
        assert whole["train/loss"] > 0
        for key in ("train/loss", "train/teacher_jsd", "train/grad_norm"):
            assert micro[key] == pytest.approx(whole[key], rel=1e-4), key
    # whose samples each step trained on (lmbda 0.5 at seed 0: the student's, then the teacher's twice),
    # the mismatch logged only on the student's own
    drawn = [0.0 if on_policy_step(0.5, 0, step) else 1.0 for step in range(3)]
    assert [r["train/teacher_sampled"] for r in runs["whole"]] == drawn == [0.0, 1.0, 1.0]
    assert [("rollout/mismatch_kl" in r) for r in runs["whole"]] == [True, False, False]


def test_gkd_without_seq_kd_trains_its_off_policy_steps_on_the_tasks_demonstrations(tmp_path, cache_dir):
    # TRL's default seq_kd=False: the steps lmbda leaves off-policy are the dataset's completions, here
    # the task's demonstrations of the step's prompts; nothing generated on them, no mismatch logged
    arith = ["task=toy_arith", "reward=verifier", "task.n_demonstrations=4096", "algo.teacher_epochs=3"]
    summary = run_in_process(["algo=gkd", "algo.seq_kd=false", *arith], tmp_path / "data", cache_dir)
    assert summary["status"] == "completed"
    rows = read_metrics(tmp_path / "data" / "metrics.jsonl")
    drawn = [0.0 if on_policy_step(0.5, 0, step) else 1.0 for step in range(3)]
    assert [r["train/from_data"] for r in rows] == drawn == [0.0, 1.0, 1.0]
    assert [("rollout/mismatch_kl" in r) for r in rows] == [True, False, False]
    assert all("train/teacher_sampled" not in r for r in rows)
    tokens = [r["counters/generated_tokens"] for r in rows]
    assert tokens[0] > 0 and tokens[2] == tokens[1] == tokens[0]  # the data steps generated nothing
    assert all(r["train/loss"] > 0 for r in rows)  # the divergence on the demonstrations' tokens
    assert rows[1]["train/reward"] > rows[0]["train/reward"]  # right answers (the SFT data's), not samples


def test_gkd_without_seq_kd_on_a_task_missing_demonstrations_is_refused_in_one_line(tmp_path, cache_dir):
    # 512 demonstrations drawn over toy_arith's 320 training prompts leave some without one
    with pytest.raises(ConfigError, match=r"^algo.seq_kd=false: task=toy_arith has no single-response") as e:
        run_in_process(
            ["algo=gkd", "algo.seq_kd=false", "task=toy_arith", "reward=verifier"], tmp_path / "x", cache_dir
        )
    assert "\n" not in str(e.value) and not (tmp_path / "x").exists()
