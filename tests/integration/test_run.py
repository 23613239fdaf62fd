"""A run end to end through the config groups: run folder, determinism, cached stages, resume, W&B."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from align_lab import registry
from align_lab.tracking import read_metrics
from align_lab.train.metrics import seconds
from tests.conftest import run_in_process

# what a choice needs beyond algo=<choice>: GDPO refuses a reward with one source, so it gets reward=combined
# of the toy world's gold reward and the word-count penalty (each logged as train/ and eval/reward_<name>)
GOLD_SOURCE = "+reward.components.gold={weight: 1.0, source: {_target_: align_lab.rewards.GoldReward}}"
# DAPO too: its dynamic sampling refills the step, and each kept row's sources travel with it
NEEDS = {name: ["reward=combined", "~reward.components.rm", GOLD_SOURCE] for name in ("gdpo", "dapo")}

REQUIRED_SUMMARY = [
    "eval/gold_reward",
    "eval/gold_reward_sft",
    "eval/kl",
    "eval/win_rate_vs_sft",
    "eval/proxy_reward",
    "eval/response_length",
    "eval/distinct_1",
    "eval/distinct_2",
]


# what a choice needs at the tests' 3 steps: PPO-max's critic warm-up (10 steps) must end before the run
SIZED = {"ppo_max": ["algo.critic_pretrain_steps=2"]}


@pytest.mark.parametrize("algo", registry.choices("algo"))
def test_every_algorithm_runs_to_the_run_folder_contract(algo, tmp_path, cache_dir):
    overrides = [f"algo={algo}", *NEEDS.get(algo, []), *SIZED.get(algo, [])]
    summary = run_in_process(overrides, tmp_path, cache_dir)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == summary["status"] == "completed"
    for key in REQUIRED_SUMMARY:
        assert isinstance(on_disk[key], float), key
    assert set(on_disk["stages"]) >= {"tokenizer", "sft"}
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]  # the last step carries the final evaluation
    groups = {"train", "eval", "rollout", "time", "counters", "step", "perf"}  # perf: train/roofline.py
    assert all(k.split("/")[0] in groups for r in rows for k in r)
    assert "train/loss" in rows[0] and "eval/gold_reward" not in rows[0]
    if algo in NEEDS:  # reward=combined: each source's own mean, every step and in the summary
        assert {"train/reward_gold", "train/reward_brevity"} <= set(rows[0]) and "eval/reward_gold" in on_disk
    assert rows[-1]["eval/gold_reward"] == summary["eval/gold_reward"]
    assert (tmp_path / "checkpoints" / "last").read_text() == "state-00000003.pt"
    resolved = yaml.safe_load((tmp_path / "config.resolved.yaml").read_text())
    assert "${" not in json.dumps(resolved), "every interpolation resolved"
    assert resolved["algo"]["_target_"].startswith("align_lab.algorithms.")
    # every evaluated sample, at the one evaluation (step 3): 18 held-out prompts x 1 sample (SMALL)
    from align_lab.tracking.samples import SAMPLES_FILE, read_samples

    samples, skipped = read_samples(tmp_path / SAMPLES_FILE)
    assert skipped == 0 and [(r["step"], r["prompt_id"]) for r in samples] == [(3, p) for p in range(18)]
    gold = sum(r["gold_reward"] for r in samples) / 18  # eval/X = the mean of field X
    assert gold == pytest.approx(rows[-1]["eval/gold_reward"], abs=1e-12)
    from align_lab.folder import foreign_files

    assert foreign_files(tmp_path) == []  # every file the run wrote is one a rerun accepts as the run's


def test_online_metrics_include_phase_times_and_compute_counters(tmp_path, cache_dir):
    run_in_process(["algo=ppo"], tmp_path, cache_dir)
    first, second = read_metrics(tmp_path / "metrics.jsonl")[:2]
    for key in [
        "time/sync_s",
        "time/rollout_s",
        "time/score_s",
        "time/ref_s",
        "time/train_s",
        "time/step_s",
        "time/generated_tokens_per_s",
        "train/kl",
        "train/entropy",
        "train/clip_frac",
        "train/value_loss",
        "train/reward_std",
    ]:
        assert key in first, key
    assert first["time/sync_s"] < first["time/rollout_s"]  # the HF engine samples the live policy: no copy
    assert first["time/generated_tokens_per_s"] > 0
    # 16 responses per step: reward queries are counted exactly, tokens cumulatively
    assert first["counters/reward_queries"] == 16 and second["counters/reward_queries"] == 32
    assert second["counters/generated_tokens"] > first["counters/generated_tokens"] > 0
    # the roofline figures (train/roofline.py; tests/conftest.py gives the machine's limits): each step's,
    # the decode steps its longest response took, and their means in summary.json
    assert first["perf/rollout_mbu"] > 0 and first["perf/update_mfu"] > 0
    assert first["perf/decode_steps"] >= first["train/response_length"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["perf/rollout_mbu"] > 0 and summary["perf/update_mfu"] > 0


MISMATCH = ("rollout/mismatch_kl", "rollout/mismatch_ratio_outside", "rollout/mismatch_ratio_max")


@pytest.mark.parametrize(
    "rollout, kl_range, ratio_range",
    [
        # float32 sampling of the trainer's weights: the same distribution up to float rounding
        ([], (0.0, 1e-9), (1.0, 1.0001)),
        # a bfloat16 copy of the weights samples: a different distribution, which the metrics see
        (["rollout.dtype=bfloat16"], (1e-7, 1.0), (1.001, 100.0)),
        # top-p renormalises over the kept tokens (mass S >= 0.9): every ratio is S, in [0.9, 1]
        (["rollout.top_p=0.9"], (1e-5, 0.01), (0.9, 1.0001)),
        # staleness 2: step t trains on a rollout of the policy of step max(t - 2, 0); from step 1 on that
        # policy is 1 or 2 updates old (measured on this world: k3 0.03 then 0.12, max ratio 1.5 then 4.5;
        # at staleness 0 it is 3e-14), step 0's is its own (the float32 case)
        (["train.max_staleness=2"], (1e-3, 1.0), (1.05, 100.0)),
    ],
    ids=["float32", "bfloat16", "top_p", "staleness"],
)
def test_every_online_step_logs_the_rollout_trainer_mismatch(
    rollout, kl_range, ratio_range, tmp_path, cache_dir
):
    run_in_process(["algo=grpo", *rollout], tmp_path, cache_dir)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    if rollout == ["train.max_staleness=2"]:  # the warm-up's first step trains on-policy
        first, *rows = rows
        assert first["rollout/mismatch_kl"] <= 1e-9 and first["rollout/mismatch_ratio_max"] <= 1.0001
    for row in rows:
        kl, outside, largest = (row[k] for k in MISMATCH)
        assert kl_range[0] <= kl <= kl_range[1], row
        assert ratio_range[0] <= largest <= ratio_range[1], row
        assert 0.0 <= outside <= (0.0 if rollout in ([], ["rollout.top_p=0.9"]) else 0.5), row


def test_same_seed_gives_identical_metrics(tmp_path, cache_dir):
    run_in_process(["seed=7"], tmp_path / "a", cache_dir)
    run_in_process(["seed=7"], tmp_path / "b", cache_dir)
    run_in_process(["seed=8"], tmp_path / "c", cache_dir)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]  # noqa: E731
    a, b, c = (strip(read_metrics(tmp_path / x / "metrics.jsonl")) for x in "abc")
    assert a == b
    assert a != c


def noisy_reward(prompts: list[str], responses: list[str]) -> list[float]:
    """A reward with noise from the global generators a user's code reaches for: numpy's and Python's."""
    import random

    import numpy as np

    return [len(r) / 10 + float(np.random.normal(0, 0.1)) + random.random() * 0.1 for r in responses]


def test_a_reward_drawing_from_numpy_or_pythons_generator_gives_the_same_numbers_for_the_same_seed(
    tmp_path, cache_dir
):
    """Twelfth hunt: a reward adding `np.random.normal` or `random.random()` noise gave other numbers each
    time the same command ran (neither generator was seeded by `seed`): the run seeds both."""
    args = ["seed=7", "reward=function", f"reward.path={__name__}:noisy_reward"]
    run_in_process(args, tmp_path / "a", cache_dir)
    run_in_process(args, tmp_path / "b", cache_dir)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]  # noqa: E731
    assert strip(read_metrics(tmp_path / "a" / "metrics.jsonl")) == strip(
        read_metrics(tmp_path / "b" / "metrics.jsonl")
    )


@pytest.mark.fast
def test_each_progress_line_shows_the_values_of_the_step_it_names(tmp_path, cache_dir, caplog):
    """Away from a terminal a run logs a line a step (and a tenth of each stage): `policy optimisation:
    2/3 reward R, kl K` holds step 2's R and K (it showed step 1's), and evaluation says each phase."""
    caplog.set_level(logging.INFO, logger="align_lab")
    run_in_process([], tmp_path, cache_dir)
    rows = {r["step"]: r for r in read_metrics(tmp_path / "metrics.jsonl")}
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("policy optimisation:")]
    expected = "policy optimisation: {}/3 reward {:.3f}, kl {:.3f}, rollout {}, update {}"
    values = [lambda r: r["train/reward"], lambda r: r["train/kl"]]
    values += [lambda r: seconds(r["time/rollout_s"]), lambda r: seconds(r["time/train_s"])]  # 12ms, 1.2s
    assert said == [expected.format(s, *(v(rows[s]) for v in values)) for s in (1, 2, 3)]
    evaluation = [r.getMessage() for r in caplog.records if r.getMessage().startswith("evaluation (")]
    assert [line.split(": ", 1)[1] for line in evaluation] == [
        "1/3 done policy sampled",
        "2/3 done reference sampled",
        "3/3 done scored",
    ]


def test_second_run_reuses_every_shared_stage(tmp_path, cache_dir):
    run_in_process(["task.world_seed=5"], tmp_path / "a", cache_dir)
    first = json.loads((tmp_path / "a" / "summary.json").read_text())["stages"]
    run_in_process(["task.world_seed=5", "seed=1", "algo=ppo"], tmp_path / "b", cache_dir)
    second = json.loads((tmp_path / "b" / "summary.json").read_text())["stages"]
    assert set(first) == {"tokenizer", "sft", "preferences", "reward_model"}
    assert not any(s["hit"] for s in first.values())
    assert all(second[s]["hit"] and second[s]["key"] == first[s]["key"] for s in first)


def test_changing_an_upstream_input_rebuilds_downstream_stages(tmp_path, cache_dir):
    run_in_process(["task.world_seed=6"], tmp_path / "a", cache_dir)
    run_in_process(["task.world_seed=6", "sft.lr=1e-3"], tmp_path / "b", cache_dir)
    a = json.loads((tmp_path / "a" / "summary.json").read_text())["stages"]
    b = json.loads((tmp_path / "b" / "summary.json").read_text())["stages"]
    assert b["tokenizer"]["hit"] and b["tokenizer"]["key"] == a["tokenizer"]["key"]
    for stage in ("sft", "preferences", "reward_model"):
        assert not b[stage]["hit"] and b[stage]["key"] != a[stage]["key"], stage


class Interrupt(BaseException):
    pass


def test_run_interrupted_after_a_checkpoint_resumes_to_identical_metrics(tmp_path, cache_dir, monkeypatch):
    from align_lab.tracking import JsonlTracker

    run_in_process(["seed=3", "train.steps=4"], tmp_path / "full", cache_dir)
    original = JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == 3:
            raise Interrupt  # dies after logging step 3; the last checkpoint is step 3's

    monkeypatch.setattr(JsonlTracker, "log", log_then_die)
    with pytest.raises(Interrupt):
        run_in_process(["seed=3", "train.steps=4"], tmp_path / "resumed", cache_dir)
    assert json.loads((tmp_path / "resumed" / "summary.json").read_text())["status"] == "failed"
    monkeypatch.setattr(JsonlTracker, "log", original)
    run_in_process(["seed=3", "train.steps=4"], tmp_path / "resumed", cache_dir)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]  # noqa: E731
    full = strip(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    resumed = strip(read_metrics(tmp_path / "resumed" / "metrics.jsonl"))
    assert resumed == full


def test_a_resume_on_other_shared_stages_is_refused_before_any_build_leaving_the_folder(
    tmp_path, cache_dir, monkeypatch
):
    """A checkpoint resumes only on the shared stages it was trained on (run/summary.py
    resume_stage_check): a resume whose stage keys differ (here the numerics behind them: another math
    library) is refused in one line naming the stage and the input, before any stage is built, its
    folder as it was (summary, resolved config, no time counted). A resume with another
    hardware.num_threads is not such a case: it loads the stages with the threads they were built with
    (issue 37), goes on and completes."""
    from align_lab.run import stages as stages_module
    from align_lab.run.summary import RunStopped
    from align_lab.tracking import JsonlTracker

    original = JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == 2:
            raise Interrupt  # logged step 2; the last checkpoint is step 1's (written after the log)

    monkeypatch.setattr(JsonlTracker, "log", log_then_die)
    with pytest.raises(Interrupt):
        run_in_process(["seed=3", "hardware.num_threads=1"], tmp_path, cache_dir)
    monkeypatch.setattr(JsonlTracker, "log", original)
    files = {n: (tmp_path / n).read_bytes() for n in ("summary.json", "config.resolved.yaml")}
    entries = sorted(p.name for p in cache_dir.glob("*/*"))
    numerics = stages_module.numerics
    monkeypatch.setattr(stages_module, "numerics", lambda d: {**numerics(d), "blas": "another library"})
    refused = r"^error: stage tokenizer: the checkpoint in .* was trained on entry .*its input numerics.blas"
    with pytest.raises(RunStopped, match=refused):
        run_in_process(["seed=3", "hardware.num_threads=2"], tmp_path, cache_dir)
    assert sorted(p.name for p in cache_dir.glob("*/*")) == entries  # nothing built
    assert {n: (tmp_path / n).read_bytes() for n in files} == files  # nothing rewritten, no time counted
    monkeypatch.setattr(stages_module, "numerics", numerics)
    run_in_process(["seed=3", "hardware.num_threads=2"], tmp_path, cache_dir)  # the stages it started on
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"


def test_keep_checkpoint_false_deletes_a_completed_runs_checkpoints_keeps_results(
    tmp_path, cache_dir, monkeypatch
):
    """train.keep_checkpoint=false: the checkpoints are deleted once the run completes, and the last one
    (1.6 GB on SmolLM2, only to be deleted) is never written; the results are the same."""
    from align_lab.train import cadence

    written, original = [], cadence.checkpoint
    monkeypatch.setattr(
        cadence, "checkpoint", lambda *a: (written.append((a[0].train.keep_checkpoint, a[3])), original(*a))
    )
    kept = run_in_process(["seed=3"], tmp_path / "kept", cache_dir)
    run_in_process(["seed=3", "train.keep_checkpoint=false"], tmp_path / "dropped", cache_dir)
    assert written == [(True, 1), (True, 2), (True, 3), (False, 1), (False, 2)]  # SMALL: every step, 3 steps
    assert (tmp_path / "kept" / "checkpoints" / "last").is_file()
    assert not (tmp_path / "dropped" / "checkpoints").exists()
    on_disk = json.loads((tmp_path / "dropped" / "summary.json").read_text())
    assert on_disk["status"] == "completed" and on_disk["checkpoint"].startswith("deleted")
    assert on_disk["eval/gold_reward"] == kept["eval/gold_reward"]
    # the same command again: already completed, nothing to resume or redo
    again = run_in_process(["seed=3", "train.keep_checkpoint=false"], tmp_path / "dropped", cache_dir)
    assert again["eval/gold_reward"] == kept["eval/gold_reward"]


def test_a_run_killed_after_an_evaluations_samples_resumes_without_duplicates(
    tmp_path, cache_dir, monkeypatch
):
    from align_lab.tracking import JsonlTracker
    from align_lab.tracking.samples import SAMPLES_FILE, read_samples

    overrides = ["seed=3", "train.steps=4", "train.eval_every=1"]
    run_in_process(overrides, tmp_path / "full", cache_dir)
    original = JsonlTracker.samples

    def samples_then_die(self, records, step):
        original(self, records, step)
        if step == 3:
            raise Interrupt  # step 3's samples are written, its checkpoint is not: resumed from step 2

    monkeypatch.setattr(JsonlTracker, "samples", samples_then_die)
    with pytest.raises(Interrupt):
        run_in_process(overrides, tmp_path / "resumed", cache_dir)
    monkeypatch.setattr(JsonlTracker, "samples", original)
    run_in_process(overrides, tmp_path / "resumed", cache_dir)
    full, resumed = (read_samples(tmp_path / name / SAMPLES_FILE) for name in ("full", "resumed"))
    assert [r["step"] for r in resumed[0]] == [1] * 18 + [2] * 18 + [3] * 18 + [4] * 18  # step 3 once
    assert resumed == full


def test_wandb_offline_file_holds_config_group_job_type_and_history(tmp_path, cache_dir, monkeypatch):
    from tests.wandb_files import (
        find_wandb_files,
        wandb_config,
        wandb_history,
        wandb_run_info,
    )

    monkeypatch.setenv("HOME", str(tmp_path))  # no credentials -> offline
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_in_process(["tracker=wandb", "study=toy_study", "algo=dpo"], tmp_path / "run", cache_dir)
    (path,) = find_wandb_files(tmp_path / "run")
    info = wandb_run_info(path)
    assert info["group"] == "toy_study" and info["job_type"] == "dpo"
    assert wandb_config(path)["algo"]["beta"] == 0.1
    history = wandb_history(path)
    jsonl = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [h["_step"] for h in history] == [r["step"] for r in jsonl]
    assert history[-1]["eval/gold_reward"] == pytest.approx(jsonl[-1]["eval/gold_reward"])
    # the evaluation's samples as a table beside it: 18 held-out prompts x 1 sample (SMALL)
    table = history[-1]
    assert table["eval/samples._type"] == "table-file" and table["eval/samples.nrows"] == 18
    assert (path.parent / "files" / table["eval/samples.path"]).is_file()


def test_toy_arith_with_verifier_reports_pass_at_k(tmp_path, cache_dir):
    summary = run_in_process(
        ["task=toy_arith", "reward=verifier", "train.eval_samples=4"], tmp_path, cache_dir
    )
    assert 0 <= summary["eval/pass@1"] <= summary["eval/pass@4"] <= 1
    assert "reward_model" not in summary["stages"]


@pytest.mark.fast
def test_verifier_on_a_task_without_answers_fails_with_one_line(tmp_path, cache_dir):
    with pytest.raises(ValueError, match="reward=verifier: task=toy_prefs has no verifiable answers"):
        run_in_process(["reward=verifier"], tmp_path, cache_dir)
