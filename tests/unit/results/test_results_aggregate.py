"""align_lab.results: run discovery, lookups, curves and the aggregation of in-memory runs.

Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from align_lab.results.aggregate import aggregate, natural_key
from align_lab.results.extract import WALL_TIME, eval_curve, run_row, x_values
from align_lab.results.runs import Run, find_run_dirs, group_label, load_run, lookup, pending_runs
from align_lab.results.tables import paired_table, verdict


def online_run(
    algo: str, seed: int, finals: float, tokens_per_step: int = 100, status: str = "completed"
) -> Run:
    """Two steps, an evaluation at each: gold 0.5 * finals at step 1, finals at step 2; SFT gold 0.2."""
    metrics = [
        {
            "step": s,
            "time/step_s": 1.0 + s,
            "counters/generated_tokens": tokens_per_step * s,
            "eval/gold_reward": finals * s / 2,
            "eval/gold_reward_sft": 0.2,
            "eval/kl": 0.1 * s,
        }
        for s in (1, 2)
    ]
    summary = {"status": status, "algo": algo, "seed": seed, "eval/gold_reward": finals, "eval/kl": 0.2}
    return Run(
        Path(f"/runs/{algo}_{seed}"),
        status,
        config={"seed": seed, "algo": {"kl_coef": 0.05}},
        choices={"algo": algo},
        summary=summary,
        metrics=metrics,
    )


def pairwise_run(seed: int, finals: float) -> Run:
    """A DPO-like run: no counters/generated_tokens, no time/rollout_s, no eval/kl."""
    metrics = [
        {"step": 1, "train/loss": 0.7, "time/step_s": 0.5},
        {"step": 2, "train/loss": 0.6, "time/step_s": 0.5, "eval/gold_reward": finals},
    ]
    summary = {"status": "completed", "algo": "dpo", "seed": seed, "eval/gold_reward": finals}
    return Run(
        Path(f"/runs/dpo_{seed}"),
        "completed",
        config={"seed": seed},
        choices={"algo": "dpo"},
        summary=summary,
        metrics=metrics,
    )


def test_eval_curve_starts_at_the_sft_policy_and_interpolates_by_hand() -> None:
    run = online_run("ppo", 0, finals=0.6)
    x, y = eval_curve(run, "counters/generated_tokens", "eval/gold_reward")
    # (0, SFT 0.2), (100, 0.3), (200, 0.6)
    assert x.tolist() == [0.0, 100.0, 200.0] and y.tolist() == pytest.approx([0.2, 0.3, 0.6])
    steps, _ = eval_curve(run, "step", "eval/gold_reward")
    assert steps.tolist() == [0.0, 1.0, 2.0]


def test_wall_time_axis_is_the_cumulative_step_time() -> None:
    run = online_run("ppo", 0, finals=0.6)  # time/step_s 2, 3
    assert x_values(run, WALL_TIME).tolist() == [2.0, 5.0]
    assert np.isnan(x_values(Run(Path("x"), "running", metrics=[{"step": 1}]), WALL_TIME)).all()


def test_missing_keys_are_nan_and_never_crash() -> None:
    row = run_row(pairwise_run(0, 0.5), ["algo"], "eval/gold_reward")
    assert math.isnan(row["counters/generated_tokens"]) and math.isnan(row["eval/kl"])
    assert math.isnan(row["memory/peak_mb"]) and row["eval/gold_reward"] == 0.5
    x, y = eval_curve(pairwise_run(0, 0.5), "counters/generated_tokens", "eval/gold_reward")
    assert len(x) == len(y) == 0


def test_runs_with_no_evaluation_within_the_budget_and_no_sft_start_are_named_not_dropped() -> None:
    # no eval/gold_reward_sft: a curve starts at its first evaluation. ppo ends at 200 tokens (the common
    # budget); rloo's first evaluation is at 300 (300 tokens a step): no value at 200, said in a note
    runs = [online_run("ppo", s, f) for s, f in ((0, 0.4), (1, 0.6))]
    runs += [online_run("rloo", s, f, tokens_per_step=300) for s, f in ((0, 0.5), (1, 0.9))]
    for run in runs:
        for row in run.metrics:
            del row["eval/gold_reward_sft"]
    c = aggregate(runs, ["algo"], baseline="ppo")
    assert c.common_budget == 200
    assert math.isnan(c.matched.set_index("group").loc["rloo", f"{c.matched_column}:mean"])
    said = [n for n in c.notes if n.startswith("No value at the common budget")]
    assert said == [
        "No value at the common budget (200 generated tokens) for rloo (2 of 2 runs): none of their "
        "evaluations is at or below it and eval/gold_reward has no SFT value to start their curves at 0, "
        "so the compute-matched view leaves them out; an earlier evaluation (train.eval_every) or another "
        "--budget places them."
    ]


def test_aggregate_leaves_groups_without_the_budget_counter_out_of_the_matched_view() -> None:
    runs = [online_run("ppo", s, f) for s, f in ((0, 0.4), (1, 0.6))]
    runs += [online_run("rloo", s, f, tokens_per_step=150) for s, f in ((0, 0.5), (1, 0.9))]
    runs += [pairwise_run(s, f) for s, f in ((0, 0.3), (1, 0.5))]
    c = aggregate(runs, ["algo"], baseline="ppo")
    assert c.groups == ["dpo", "ppo", "rloo"] and c.baseline == "ppo"
    # common budget: ppo's final 2 x 100 = 200 (rloo ends at 300; dpo has none)
    assert c.common_budget == 200
    at = c.matched.set_index("group")[f"{c.matched_column}:mean"]
    # ppo at 200 = its finals: (0.4 + 0.6) / 2 = 0.5
    # rloo: evals (150, f/2), (300, f); at 200: f/2 + (50/150)(f/2) = 2f/3 -> mean (2/3)(0.5 + 0.9)/2 = 1.4/3
    assert at["ppo"] == pytest.approx(0.5)
    assert at["rloo"] == pytest.approx((0.5 + 0.9) / 3)
    assert math.isnan(at["dpo"])
    assert any("Not in the compute-matched view" in n and "dpo" in n for n in c.notes)
    # final gold: dpo - ppo per seed: 0.3 - 0.4, 0.5 - 0.6 -> -0.1
    paired = c.paired.set_index("group")
    assert paired.loc["dpo", "diff"] == pytest.approx(-0.1)
    assert c.matched_paired["group"].tolist() == ["rloo"]  # dpo has no value at the budget
    assert not any("No value at the common budget" in n for n in c.notes)  # every online run is valued
    # with dpo as baseline, the compute-matched view pairs with ppo instead, and says so
    c = aggregate(runs, ["algo"], baseline="dpo")
    assert c.baseline == "dpo" and c.matched_baseline == "ppo"
    assert any("baseline dpo is not in the compute-matched view" in n for n in c.notes)


def test_paired_table_averages_a_seeds_repeats_and_applies_holm() -> None:
    import pandas as pd

    rows = [("a", 0, 1.0), ("a", 1, 2.0), ("b", 0, 2.0), ("b", 0, 4.0), ("b", 1, 3.0), ("c", 0, 1.0)]
    runs = pd.DataFrame([{"group": g, "seed": float(s), "status": "completed", "m": v} for g, s, v in rows])
    runs.loc[len(runs)] = {"group": "c", "seed": 1.0, "status": "failed", "m": 99.0}  # not counted
    table = paired_table(runs, "m", ["a", "b", "c"], "a").set_index("group")
    # b: seed 0 mean (2 + 4) / 2 = 3 -> 3 - 1 = 2; seed 1: 3 - 2 = 1; mean diff 1.5
    assert table.loc["b", "n_pairs"] == 2 and table.loc["b", "diff"] == pytest.approx(1.5)
    # b: exact sign flip of (2, 1): |mean| 1.5 reached by ++ and -- -> 2/4 = 0.5
    # c: one pair (seed 0): 1 - 1 = 0 -> p = 1. Holm: 0.5 * 2 = 1.0, 1 * 1 = 1 -> [1, 1]
    assert table.loc["b", "p"] == 0.5 and table.loc["c", "p"] == 1.0
    assert table.loc["b", "p_holm"] == 1.0 and table.loc["c", "p_holm"] == 1.0
    assert table.loc["c", "n_pairs"] == 1


def test_a_group_with_no_run_to_pair_is_none_of_holms_family() -> None:
    """Forty-third hunt, case 15: an arm whose every run failed counted in the verdict's "over 2 groups"
    and the action line's family level (0.025), but not in the Holm p (0.5): one family in all three."""
    from align_lab.results.action import action_line

    runs = [online_run("ppo", s, v) for s, v in ((0, 0.5), (1, 0.6))]
    runs += [online_run("rloo", s, v) for s, v in ((0, 0.7), (1, 0.75))]
    runs += [online_run("grpo", 0, 0.5, status="failed")]
    c = aggregate(runs, ["algo"], baseline="ppo")
    paired = c.paired.set_index("group")
    assert paired.loc["rloo", "p_holm"] == 0.5
    assert paired.loc["rloo", "verdict"] == "not decided: 2 seeds cannot reach Holm p < 0.05"
    assert "family's level 0.05;" in action_line(c), action_line(c)


def test_the_verdict_is_the_tests_alone_one_story_with_its_p() -> None:
    assert verdict(0.5, 0.2, 0.8, 0.01, 8, "ppo") == "higher than ppo, beyond seed noise"
    assert verdict(-0.5, -0.8, -0.2, 0.01, 8, "ppo") == "lower than ppo, beyond seed noise"
    # the test decides, whatever the CI: a t CI covering 0 beside Holm p 0.01 (skewed) is still decided
    assert verdict(0.5, -0.1, 0.8, 0.01, 8, "ppo") == "higher than ppo, beyond seed noise"
    # 3 seeds: the exact test's floor is 2/2^3 = 0.25 whatever the CI says: not "higher (CI excludes 0)"
    assert verdict(0.5, 0.2, 0.8, 0.25, 3, "ppo") == "not decided: 3 seeds cannot reach Holm p < 0.05"
    # 6 seeds, 5 groups: the smallest Holm p is 5 x 2/2^6 = 0.156: no group can be decided
    assert verdict(0.5, 0.2, 0.8, 0.16, 6, "ppo", family=5) == (
        "not decided: 6 seeds cannot reach Holm p < 0.05 over 5 groups"
    )
    # 8 seeds, CI excludes 0, yet the Holm-adjusted p is 0.2: the words follow the p
    assert verdict(0.5, 0.2, 0.8, 0.2, 8, "ppo") == "not decided (Holm p 0.2 >= 0.05)"
    assert verdict(math.nan, math.nan, math.nan, math.nan, 0, "ppo") == "no seeds in common with the baseline"


def test_only_failed_runs_still_give_a_comparison() -> None:
    runs = [online_run("ppo", 0, 0.5, status="failed"), online_run("rloo", 0, 0.5, status="running")]
    c = aggregate(runs, ["algo"])
    assert c.group_table["n"].tolist() == [0, 0] and math.isnan(c.common_budget)
    assert c.notes[0].startswith("2 runs are not in the statistics (1 failed, 1 running)")
    one = aggregate([runs[0], online_run("rloo", 0, 0.5)], ["algo"])  # "1 runs are" (fourth hunt)
    assert one.notes[0].startswith("1 run is not in the statistics (1 failed); see Runs.")
    from align_lab.results.printed import comparison_lines  # "1 runs (1 running) in 1 groups" (sixth hunt)

    alone = aggregate([online_run("rloo", 0, 0.5, status="running")], ["algo"])
    assert comparison_lines(alone, "algo")[0].startswith("1 run (1 running) in 1 group by algo; ")


def test_lookup_order_and_group_labels() -> None:
    run = Run(
        Path("r"),
        "completed",
        config={"seed": 3, "algo": {"_target_": "x.PPO", "kl_coef": 0.05}},
        choices={"algo": "ppo"},
        overrides=["+extra=7"],
        summary={"status": "completed"},
    )
    assert lookup(run, "algo") == "ppo"  # the choice, not the config dict
    assert lookup(run, "algo.kl_coef") == 0.05 and lookup(run, "seed") == 3
    assert lookup(run, "extra") == "7" and lookup(run, "nope") is None
    assert group_label(run, ["algo.kl_coef"]) == "0.05"
    assert group_label(run, ["algo", "seed"]) == "algo=ppo, seed=3"
    run.choices = {}
    assert group_label(run, ["algo"]) == "PPO"  # the component's _target_ class
    assert sorted(["10", "2", "b", "a"], key=natural_key) == ["2", "10", "a", "b"]


def test_find_run_dirs_finds_nested_runs_and_does_not_search_inside_them(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "d" / "t"
    for name in ("0_ppo_seed0", "1_ppo_seed1"):
        (sweep / name / ".hydra").mkdir(parents=True)
        (sweep / name / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (sweep / "1_ppo_seed1" / "inner").mkdir()
    (sweep / "1_ppo_seed1" / "inner" / "summary.json").write_text("{}")  # not a separate run
    (tmp_path / "solo").mkdir()
    (tmp_path / "solo" / "summary.json").write_text(json.dumps({"status": "failed", "error": "E: x"}))
    (sweep / "study.json").write_text("{}")
    runs, manifests = find_run_dirs([tmp_path])
    assert [p.name for p in runs] == ["0_ppo_seed0", "1_ppo_seed1", "solo"]
    assert manifests == [sweep / "study.json"]
    solo = load_run(tmp_path / "solo")
    assert (solo.status, solo.error) == ("failed", "E: x")
    assert load_run(sweep / "0_ppo_seed0").status == "not started"


def test_pending_runs_match_manifest_entries_relative_to_the_sweep_dir(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    (sweep / "0_ppo_seed0").mkdir(parents=True)
    manifest = {
        "sweep_dir": "multirun/d/t",
        "runs": [
            {
                "num": 0,
                "run_dir": "multirun/d/t/0_ppo_seed0",
                "overrides": ["seed=0"],
                "names": {"algo": "ppo"},
            },
            {
                "num": 1,
                "run_dir": "multirun/d/t/1_ppo_seed1",
                "overrides": ["seed=1"],
                "names": {"algo": "ppo"},
            },
        ],
    }
    (sweep / "study.json").write_text(json.dumps(manifest))
    pending, problems = pending_runs([sweep / "study.json"], [sweep / "0_ppo_seed0"])
    assert problems == [] and len(pending) == 1
    assert pending[0].status == "pending" and lookup(pending[0], "seed") == "1"
    assert group_label(pending[0], ["algo"]) == "ppo"


def test_a_manifest_that_is_a_named_pipe_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    """Fourth hunt of 2026-12-04, cmp_B3: compare over a sweep whose study.json was a named pipe waited for
    ever, with no line."""
    os.mkfifo(tmp_path / "study.json")
    assert find_run_dirs([tmp_path])[1] == [tmp_path / "study.json"]
    pending, problems = pending_runs([tmp_path / "study.json"], [])
    assert pending == [] and problems == [
        f"{tmp_path / 'study.json'}: a named pipe, not a study manifest: not read"
    ]


def test_sft_is_the_default_baseline_each_run_paired_with_its_own_sft_and_a_row_of_the_table() -> None:
    runs = [online_run("ppo", s, f) for s, f in ((0, 0.4), (1, 0.6), (2, 0.5))]  # SFT gold 0.2 each
    runs += [online_run("rloo", s, f) for s, f in ((0, 0.3), (1, 0.1), (2, 0.2))]
    c = aggregate(runs, ["algo"])
    assert c.baseline == "SFT" and any(n.startswith("Baseline: SFT, the reference policy") for n in c.notes)
    table = c.group_table.set_index("group")
    assert table.index.tolist() == ["SFT", "ppo", "rloo"]  # SFT first
    # SFT: seeds 0, 1, 2 each 0.2 -> n 3 (seeds), mean 0.2; proxy and KL have no SFT value -> NaN
    assert table.loc["SFT", "n"] == 3 and table.loc["SFT", "eval/gold_reward:mean"] == pytest.approx(0.2)
    assert math.isnan(table.loc["SFT", "eval/kl:mean"])
    paired = c.paired.set_index("group")
    assert paired.index.tolist() == ["ppo", "rloo"]
    # ppo - SFT per seed: 0.2, 0.4, 0.3 -> mean 0.3; rloo - SFT: 0.1, -0.1, 0.0 -> mean 0.0
    assert paired.loc["ppo", "diff"] == pytest.approx(0.3)
    assert paired.loc["ppo", "baseline_mean"] == pytest.approx(0.2)
    assert paired.loc["rloo", "diff"] == pytest.approx(0.0, abs=1e-12)
    # two arms: the headline answers rloo vs ppo (rloo - ppo per seed: -0.1, -0.5, -0.3 -> -0.3)
    assert c.headline.startswith("rloo vs ppo on eval/gold_reward: rloo - ppo = -0.3 [")
    # SFT has no compute: the compute-matched view pairs with the first group, and says why
    assert c.matched_baseline == "ppo" and any("SFT (no compute)" in n for n in c.notes)
    assert not any("WARNING" in n for n in c.notes)  # one shared SFT reference
    # a stated group still works, and SFT may be named
    assert aggregate(runs, ["algo"], baseline="ppo").paired["group"].tolist() == ["rloo"]
    assert aggregate(runs, ["algo"], baseline="SFT").baseline == "SFT"


def test_runs_from_different_sft_references_are_paired_with_their_own_and_flagged() -> None:
    ppo = [online_run("ppo", s, 0.5) for s in (0, 1)]  # SFT gold 0.2
    other = [online_run("rloo", s, 0.5) for s in (0, 1)]
    for run in other:  # another task or model: another SFT policy, gold 0.3
        for record in run.metrics:
            record["eval/gold_reward_sft"] = 0.3
    c = aggregate(ppo + other, ["algo"])
    # each run against its own SFT: ppo 0.5 - 0.2 = 0.3, rloo 0.5 - 0.3 = 0.2
    assert c.paired.set_index("group")["diff"].to_dict() == pytest.approx({"ppo": 0.3, "rloo": 0.2})
    # the SFT row pools the two references: per seed (0.2 + 0.3) / 2 = 0.25
    assert c.group_table.set_index("group").loc["SFT", "eval/gold_reward:mean"] == pytest.approx(0.25)
    assert any(n.startswith("WARNING: the runs do not share one SFT reference") for n in c.notes)


def test_a_metric_without_sft_value_keeps_the_first_group_as_stated_baseline() -> None:
    runs = [online_run(a, s, 0.5) for a in ("rloo", "ppo") for s in (0, 1)]
    c = aggregate(runs, ["algo"], metric="eval/kl")
    assert c.baseline == "ppo" and c.group_table["group"].tolist() == ["ppo", "rloo"]  # no SFT row
    stated = "Baseline: ppo, the first group by name (eval/kl has no SFT value)"
    assert any(n.startswith(stated) for n in c.notes)
    with pytest.raises(ValueError, match="--baseline SFT: no such group; groups are ppo, rloo"):
        aggregate(runs, ["algo"], metric="eval/kl", baseline="SFT")


def test_trained_tokens_place_offline_dpo_on_a_compute_axis() -> None:
    runs = [online_run("ppo", s, f) for s, f in ((0, 0.4), (1, 0.6))]  # generated 100 per step
    for run in runs:  # 2 epochs over each rollout: 200 trained tokens per step
        for record in run.metrics:
            record["counters/trained_tokens"] = 2 * record["counters/generated_tokens"]
    dpo = [pairwise_run(s, f) for s, f in ((0, 0.3), (1, 0.5))]
    for run in dpo:  # 8 pairs of 10 + 15 response tokens per step: 200 trained tokens per step
        for record in run.metrics:
            record["counters/trained_tokens"] = 200 * record["step"]
            record["eval/gold_reward_sft"] = 0.2
        run.metrics[0]["eval/gold_reward"] = 0.2 + (run.summary["eval/gold_reward"] - 0.2) / 2
    c = aggregate(runs + dpo, ["algo"], budget="trained_tokens")
    # every run ends at 400 trained tokens; dpo is in the view (it generated nothing)
    assert c.common_budget == 400
    at = c.matched.set_index("group")[f"{c.matched_column}:mean"]
    assert at["dpo"] == pytest.approx(0.4) and at["ppo"] == pytest.approx(0.5)
    x, y = c.curves["counters/trained_tokens"]["dpo"][0]
    # (0, SFT 0.2), (200, 0.2 + 0.1 / 2 = 0.25), (400, 0.3)
    assert x.tolist() == [0.0, 200.0, 400.0] and y.tolist() == pytest.approx([0.2, 0.25, 0.3])
    # the default budget (generated tokens) leaves dpo out, and names the budget that places it
    notes = aggregate(runs + dpo, ["algo"]).notes
    assert any("dpo; --budget trained_tokens places them" in n for n in notes)


def test_over_two_tasks_the_sft_row_is_per_task() -> None:
    # ppo and rloo on two tasks, seeds 0..2; toy_prefs's SFT gold is 0.2 (online_run), toy_arith's 0.6
    runs = []
    for task in ("toy_prefs", "toy_arith"):
        for algo in ("ppo", "rloo"):
            for seed in (0, 1, 2):
                run = online_run(algo, seed, 0.5)
                run.folder = Path(f"/runs/{algo}_{task}_{seed}")
                run.choices["task"] = task
                for record in run.metrics:
                    record["eval/gold_reward_sft"] = 0.2 if task == "toy_prefs" else 0.6
                runs.append(run)
    c = aggregate(runs, ["algo", "task"])  # compare adds task to --by when the runs differ in it
    table = c.group_table.set_index("group")
    # one row per task, each its own reference: toy_arith 0.6 and toy_prefs 0.2 at all 3 seeds (not one
    # row of (0.2 + 0.6) / 2 = 0.4); rows sorted by name, before the groups
    assert table.index.tolist()[:2] == ["SFT (task=toy_arith)", "SFT (task=toy_prefs)"]
    assert table.loc["SFT (task=toy_arith)", "eval/gold_reward:mean"] == pytest.approx(0.6)
    assert table.loc["SFT (task=toy_prefs)", "eval/gold_reward:mean"] == pytest.approx(0.2)
    assert table.loc["SFT (task=toy_prefs)", "n"] == 3  # seeds
    assert "SFT" not in table.index
    # each task's runs share one reference: no warning of pooled references
    assert not any("do not share one SFT reference" in n for n in c.notes)
    # paired against SFT, each run minus its own: toy_arith 0.5 - 0.6 = -0.1, toy_prefs 0.5 - 0.2 = 0.3
    paired = c.paired.set_index("group")["diff"].to_dict()
    assert paired["algo=ppo, task=toy_arith"] == pytest.approx(-0.1)
    assert paired["algo=rloo, task=toy_prefs"] == pytest.approx(0.3)


def test_over_two_tasks_each_is_matched_at_its_own_budget_and_paired_within_itself() -> None:
    # ppo (gold 0.5) and rloo (0.8), seeds 0..2, on two tasks: toy_arith's runs end at 200 generated
    # tokens (100 a step), toy_prefs's at 600 (300 a step); SFT gold 0.2 on both (online_run)
    runs = []
    for task, per_step in (("toy_arith", 100), ("toy_prefs", 300)):
        for algo, finals in (("ppo", 0.5), ("rloo", 0.8)):
            for seed in (0, 1, 2):
                run = online_run(algo, seed, finals, tokens_per_step=per_step)
                run.folder = Path(f"/runs/{algo}_{task}_{seed}")
                run.choices["task"] = task
                runs.append(run)
    c = aggregate(runs, ["algo", "task"])
    # each task at its own smallest final budget: 200 and 600, so toy_prefs is read at its end (0.5, 0.8),
    # not at toy_arith's 200 (there ppo 0.2 + 0.05 * 2/3 = 0.233 and rloo 0.2 + 0.2 * 2/3 = 0.333)
    assert c.common_by == {"SFT (task=toy_arith)": 200, "SFT (task=toy_prefs)": 600}
    matched = c.matched.set_index("group")[f"{c.matched_column}:mean"]
    assert matched["algo=ppo, task=toy_prefs"] == pytest.approx(0.5)
    assert matched["algo=rloo, task=toy_prefs"] == pytest.approx(0.8)
    # paired within each task against its first group (SFT has no value at a budget): 0.8 - 0.5 on both,
    # 3 pairs each, never "never paired across tasks"
    paired = c.matched_paired.set_index("group")
    assert paired.loc["algo=rloo, task=toy_prefs", "baseline"] == "algo=ppo, task=toy_prefs"
    assert paired.loc["algo=rloo, task=toy_prefs", "n_pairs"] == 3
    assert paired.loc["algo=rloo, task=toy_prefs", "diff"] == pytest.approx(0.3)
    assert paired.loc["algo=rloo, task=toy_arith", "diff"] == pytest.approx(0.3)
    # one Holm family over both tasks' tests: exact p 2 / 2**3 = 0.25 each, Holm 2 * 0.25 = 0.5
    assert paired["p"].tolist() == pytest.approx([0.25, 0.25])
    assert paired["p_holm"].tolist() == pytest.approx([0.5, 0.5])
    assert c.matched_baseline == "algo=ppo, task=toy_arith and algo=ppo, task=toy_prefs"
    assert any(
        n.endswith(
            "paired with algo=ppo, task=toy_arith and algo=ppo, task=toy_prefs, each within its "
            "own task (model)."
        )
        for n in c.notes
    ), c.notes
    said = c.common_said("generated tokens")
    assert said == (
        "the common point of each SFT reference's runs (SFT (task=toy_arith) 200; SFT (task=toy_prefs) 600 "
        "generated tokens)"
    )
    # within each task every run ends at the same budget: no unequal-compute note across the two scales
    assert not any("unequal compute" in n for n in c.notes)
    # one of toy_prefs' runs at 3x the others' compute: the note names the task, not "the runs of SFT (...)"
    # (fourth hunt of 2026-12-04, cm1: the runs were algo=grpo's, and SFT uses no compute)
    runs[-1].metrics[-1]["counters/generated_tokens"] = 1800
    (note,) = [n for n in aggregate(runs, ["algo", "task"]).notes if "unequal compute" in n]
    assert note.startswith(
        "Final metrics are at unequal compute among the runs of task=toy_prefs: generated tokens range from "
    ), note
    # one task: one common point, said as before
    one = aggregate([r for r in runs if r.choices["task"] == "toy_prefs"], ["algo"])
    assert one.common_by == {} and one.common_said("generated tokens") == "600 generated tokens"


def test_wall_time_compares_at_the_seconds_the_faster_runs_took() -> None:
    # ppo's steps take 2 s and 3 s (online_run: 1 + step), rloo's twice as long: 4 s and 6 s
    ppo = [online_run("ppo", s, f) for s, f in ((0, 0.4), (1, 0.6))]
    rloo = [online_run("rloo", s, f) for s, f in ((0, 0.8), (1, 0.8))]
    for run in rloo:
        for record in run.metrics:
            record["time/step_s"] *= 2
    c = aggregate(ppo + rloo, ["algo"], budget="wall_time")
    # every ppo run ends at 2 + 3 = 5 s: the common budget; rloo's curve (0, SFT 0.2), (4 s, 0.4), (10 s,
    # 0.8) read at 5 s: 0.4 + (0.8 - 0.4) x 1 / 6 = 0.4667; ppo at its end: (0.4 + 0.6) / 2 = 0.5
    assert c.common_budget == 5
    at = c.matched.set_index("group")[f"{c.matched_column}:mean"]
    assert at["rloo"] == pytest.approx(0.4 + 0.4 / 6) and at["ppo"] == pytest.approx(0.5)
