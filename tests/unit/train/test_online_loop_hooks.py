"""The online loop's optional hooks, run end to end on the small world: ReMax's greedy baseline,
PPO-max's critic pre-training, entropy and ptx terms, and resuming algorithms that keep state."""

from __future__ import annotations

import pytest
import torch

from align_lab.config import ConfigError
from align_lab.run.admission import admit_spec, spec_from_config
from align_lab.run.cross_checks import check_run
from align_lab.tracking import read_metrics
from tests.conftest import ROOT, compose, run_in_process


def within(inside: list, where: str, fn):
    """fn, marking `where` on the `inside` stack while it runs (which part of a run a forward is in)."""

    def wrapped(*args, **kwargs):
        inside.append(where)
        try:
            return fn(*args, **kwargs)
        finally:
            inside.pop()

    return wrapped


class Interrupt(BaseException):
    """A kill between two steps (not an Exception, so nothing on the way catches it)."""


def test_critic_pretraining_leaves_the_policy_untouched(tmp_path, cache_dir):
    summary = run_in_process(["algo=ppo_max", "algo.critic_pretrain_steps=2"], tmp_path, cache_dir)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    # steps 2 and 3 sample from the policy steps 1 and 2 left: still the reference's weights, so their
    # KL to it is exactly 0; step 3 trains the policy, and the evaluation after it moved
    assert [r["train/kl"] == 0.0 for r in rows] == [True, True, True]
    assert summary["eval/kl"] != 0.0
    assert all("train/value_loss" in r for r in rows)
    assert ["train/ptx_loss" in r for r in rows] == [False, False, True]  # PPO-ptx joins with the policy


def test_a_critic_warmup_as_long_as_the_run_is_refused_before_compute(tmp_path, cache_dir):
    with pytest.raises(ConfigError, match=r"^algo.critic_pretrain_steps=3: must be < train.steps=3 \(the"):
        run_in_process(["algo=ppo_max", "algo.critic_pretrain_steps=3"], tmp_path, cache_dir)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_ptx_and_entropy_terms_join_once_the_policy_trains(tmp_path, cache_dir):
    overrides = ["algo=ppo_max", "algo.critic_pretrain_steps=1", "algo.entropy_coef=0.01"]
    summary = run_in_process(overrides, tmp_path, cache_dir)
    first, second, _ = read_metrics(tmp_path / "metrics.jsonl")
    assert "train/ptx_loss" not in first and second["train/ptx_loss"] > 0
    assert summary["eval/kl"] != 0.0


def test_remax_counts_greedy_generations_and_reward_queries(tmp_path, cache_dir):
    run_in_process(["algo=remax"], tmp_path, cache_dir)
    first, second, _ = read_metrics(tmp_path / "metrics.jsonl")
    # 16 sampled responses (16 prompts, group_size 1) + 16 greedy ones, each scored
    assert first["counters/reward_queries"] == 32 and second["counters/reward_queries"] == 64
    # the greedy responses are generated but not trained on
    assert first["counters/generated_tokens"] > first["counters/trained_tokens"] > 0


@pytest.mark.slow  # over 1.3 s of CPU: CI's tier (docs/testing.md, the fast tier)
@pytest.mark.parametrize(
    "overrides",
    [
        ["algo=ppo_max", "algo.critic_pretrain_steps=2"],  # running reward moments, demonstrations
        ["algo=reinforce_ma"],  # the moving-average baseline
    ],
)
def test_stateful_algorithms_resume_to_identical_metrics(overrides, tmp_path, cache_dir, monkeypatch):
    from align_lab.tracking import JsonlTracker

    overrides = [*overrides, "seed=2", "train.steps=4"]
    run_in_process(overrides, tmp_path / "full", cache_dir)
    original = JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == 3:
            raise Interrupt

    monkeypatch.setattr(JsonlTracker, "log", log_then_die)
    with pytest.raises(Interrupt):
        run_in_process(overrides, tmp_path / "resumed", cache_dir)
    monkeypatch.setattr(JsonlTracker, "log", original)
    run_in_process(overrides, tmp_path / "resumed", cache_dir)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]  # noqa: E731
    full = strip(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    assert strip(read_metrics(tmp_path / "resumed" / "metrics.jsonl")) == full
    assert "train/reward_running_mean" in full[-1]


@pytest.mark.parametrize("algo", ["ppo_max", "vanilla_pg"])
def test_critic_from_the_reward_model_needs_a_learned_reward_model(algo, tmp_path):
    cfg, names = compose([f"algo={algo}", "algo.critic_init=reward_model", "reward=gold"])
    with pytest.raises(ConfigError) as e:
        check_run(spec_from_config(cfg, names))
    assert str(e.value).startswith("algo.critic_init=reward_model: needs reward=learned_rm")
    assert "\n" not in str(e.value)


def test_cli_critic_from_the_reward_model_with_gold_reward_stops_before_compute(tmp_path, forked_cli):
    result = forked_cli(
        [
            "algo=ppo_max",
            "reward=gold",
            f"cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "align_lab: error: algo.critic_init=reward_model: needs reward=learned_rm (a reward model "
        "to copy), not reward=gold; or set algo.critic_init=sft"
    ]
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow  # over 1.5 s of CPU: CI's tier (docs/testing.md, the fast tier)
def test_without_a_kl_term_the_reference_forward_is_skipped_and_nothing_else_changes(
    tmp_path, cache_dir, monkeypatch
):
    from dataclasses import replace

    from align_lab.algorithms.grpo import GRPO
    from align_lab.run.execute import run
    from tests.conftest import SMALL

    def metrics(folder, force_reference: bool):
        cfg, names = compose([*SMALL, f"cache_dir={cache_dir}", "algo=grpo", "algo.kl_coef=0", "seed=3"])
        spec = spec_from_config(cfg, names)
        with monkeypatch.context() as m:
            if force_reference:  # an adaptive coefficient could leave 0: the loop computes the KL
                grpo_needs = GRPO.needs.fget
                m.setattr(GRPO, "needs", property(lambda algo: replace(grpo_needs(algo), kl_target=1.0)))
            run(admit_spec(spec, tmp_path / folder))
        return read_metrics(tmp_path / folder / "metrics.jsonl")

    skipped, computed = metrics("skipped", False), metrics("computed", True)
    assert all("train/kl" not in row for row in skipped)  # not logged as a fake 0
    assert all(row["train/kl"] != 0 for row in computed[1:])  # the policy moved off the reference
    for a, b in zip(skipped, computed, strict=True):
        for key in ("train/reward", "train/loss", "train/grad_norm", "eval/gold_reward", "eval/kl"):
            assert a.get(key) == b.get(key), key  # 0 * KL is 0: bitwise the same run


def forwards_counted(monkeypatch, sequences, count) -> None:
    """Calls count(model, prompt_ids, ...) before each forward over responses: as they lie
    (`response_logits`) or packed (`_packed_outputs`)."""
    for name in ("response_logits", "_packed_outputs"):
        original = getattr(sequences, name)

        def counted(model, *rows, original=original):
            count(model, *rows)
            return original(model, *rows)

        monkeypatch.setattr(sequences, name, counted)


def test_an_on_policy_step_runs_one_policy_forward_and_no_reference_at_kl_coef_0(
    tmp_path, cache_dir, monkeypatch
):
    """One update per rollout, one epoch, the whole rollout one minibatch, no micro-batches: the old
    log-probs equal the current ones, so a step runs the policy forward once (with the graph the update
    reuses, as TRL does), and kl_coef = 0 runs no reference forward."""
    from align_lab.models import sequences
    from align_lab.run import build
    from align_lab.train import evaluate

    calls, inside = [], []  # inside: "train" while the loop runs, "eval" while it evaluates
    originals = evaluate.sequence_kl, build.train_online

    def counted(model, *rows):  # the loop's own forwards, not the stages' or evaluation's
        if inside and inside[-1] == "train":
            calls.append(torch.is_grad_enabled())

    forwards_counted(monkeypatch, sequences, counted)
    monkeypatch.setattr(evaluate, "sequence_kl", within(inside, "eval", originals[0]))
    monkeypatch.setattr(build, "train_online", within(inside, "train", originals[1]))
    overrides = ["algo=grpo", "algo.kl_coef=0", "train.minibatch_size=16", "train.micro_batch_size=null"]
    run_in_process(overrides, tmp_path, cache_dir)
    assert calls == [True, True, True]  # 3 steps: one forward each, with a graph; nothing without one


def test_the_rollouts_no_graph_forwards_take_the_plans_rows_and_change_no_number(
    tmp_path, cache_dir, monkeypatch
):
    """Step 3 (old log-probs) and the reference run without a graph over the rollout (16 rows, two
    minibatches of 8): in forwards of the plan's forward_micro_batch_size rows (train/memory/), apart
    from the updates' whole minibatches with a graph; the same metrics as whole forwards."""
    import dataclasses

    from align_lab.models import sequences
    from align_lab.run import build
    from align_lab.train import context, evaluate

    overrides = ["algo=grpo", "train.minibatch_size=8", "train.micro_batch_size=null", "seed=4"]
    whole = run_in_process(overrides, tmp_path / "whole", cache_dir)
    calls, inside = [], []  # inside: "train" while the loop runs, "eval" while it evaluates
    originals = build.train_online, context.plan_run, evaluate.sequence_kl

    def counted(model, *rows):  # the loop's own forwards, not the stages' or evaluation's
        if inside and inside[-1] == "train":
            calls.append((torch.is_grad_enabled(), len(rows[0])))

    def in_threes(*args, **kwargs):  # the plan, with no-graph forwards of 3 rows
        return dataclasses.replace(originals[1](*args, **kwargs), forward_micro_batch_size=3)

    forwards_counted(monkeypatch, sequences, counted)
    monkeypatch.setattr(build, "train_online", within(inside, "train", originals[0]))
    monkeypatch.setattr(evaluate, "sequence_kl", within(inside, "eval", originals[2]))
    monkeypatch.setattr(context, "plan_run", in_threes)
    split = run_in_process(overrides, tmp_path / "split", cache_dir)
    no_graph = [rows for grad, rows in calls if not grad]
    graph = [rows for grad, rows in calls if grad]
    assert graph and all(rows == 8 for rows in graph)  # the updates: whole minibatches
    assert no_graph and max(no_graph) == 3  # step 3 and the reference: 3 rows at a time
    assert sum(no_graph) == 2 * 16 * 3  # both over the 16-row rollout, every step of 3
    rows_1, rows_2 = (
        read_metrics(tmp_path / "whole/metrics.jsonl"),
        read_metrics(tmp_path / "split/metrics.jsonl"),
    )
    for a, b in zip(rows_1, rows_2, strict=True):
        for key in ("train/reward", "train/kl", "train/loss", "train/grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
    assert split["eval/gold_reward"] == whole["eval/gold_reward"]
