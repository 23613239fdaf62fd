"""Compare says exactly what it averaged (issue 34 item 7): the n behind each number, dropped runs named,
damaged metrics lines, CIs kept in their metric's range, tasks never pooled, the headline's question.

Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from align_lab.results.aggregate import aggregate
from align_lab.results.runs import Run, load_run
from align_lab.results.stats import difference_range, metric_ci, metric_range, paired_test

T2 = scipy_stats.t.ppf(0.975, 2)  # 4.3027, the t quantile of a 95% CI over 3 seeds


def run(algo: str, seed: int, gold: float, task: str = "toy_prefs", **summary) -> Run:
    metrics = [
        {"step": s, "counters/generated_tokens": 100 * s, "eval/gold_reward": gold * s / 2} for s in (1, 2)
    ]
    return Run(
        Path(f"/runs/{task}/{algo}_{seed}"),
        "completed",
        config={"seed": seed, "task": {"_target_": task}},
        choices={"algo": algo, "task": task},
        summary={"status": "completed", "seed": seed, "eval/gold_reward": gold, **summary},
        metrics=metrics,
    )


def test_a_nan_final_metric_is_not_counted_in_n_and_its_run_is_named() -> None:
    runs = [run("ppo", 0, 0.5), run("ppo", 1, 0.6), run("ppo", 2, math.nan), run("rloo", 0, 0.4)]
    c = aggregate(runs, ["algo"])
    ppo = c.group_table.set_index("group").loc["ppo"]
    # 3 completed, 2 finite gold values: mean (0.5 + 0.6) / 2 = 0.55 over n = 2
    assert ppo["n"] == 3 and ppo["eval/gold_reward:n"] == 2
    assert ppo["eval/gold_reward:mean"] == pytest.approx(0.55)
    note = next(n for n in c.notes if "averages 2 of its 3" in n)
    assert "ppo's eval/gold_reward" in note and "seed 2 (/runs/toy_prefs/ppo_2): NaN in summary.json" in note


def test_a_nan_in_summary_is_not_replaced_by_an_earlier_evaluation() -> None:
    # the step-1 evaluation (0.25) is not the final value of a run whose final evaluation is NaN
    c = aggregate([run("ppo", 0, 0.5), run("ppo", 1, math.nan)], ["algo"])
    assert c.group_table.set_index("group").loc["ppo", "eval/gold_reward:mean"] == pytest.approx(0.5)


def test_a_torn_line_in_the_middle_of_metrics_is_reported_and_the_rest_kept(tmp_path: Path) -> None:
    lines = [json.dumps({"step": s, "eval/gold_reward": 0.1 * s}) for s in (1, 2, 3)]
    lines[1] = lines[1][:12]  # line 2 cut short, as a crash mid-write with a later append would leave it
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed"}))
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    loaded = load_run(tmp_path)
    assert [m["step"] for m in loaded.metrics] == [1, 3]
    assert loaded.problems == [
        "metrics.jsonl line 2: damaged (not JSON), left out; the run's other 2 records kept"
    ]


@pytest.mark.parametrize(
    ("metric", "bounds"),
    [
        ("eval/win_rate_vs_sft", (0.0, 1.0)),
        ("eval/pass@4", (0.0, 1.0)),
        ("eval/finished_fraction", (0.0, 1.0)),
        ("eval/distinct_2", (0.0, 1.0)),
        ("eval/win_rate_vs_sft@generated_tokens", (0.0, 1.0)),
        ("time/total_s", (0.0, math.inf)),
        ("counters/generated_tokens", (0.0, math.inf)),
        ("eval/response_length", (0.0, math.inf)),
        ("memory/peak_mb", (0.0, math.inf)),
        ("eval/gold_reward", (-math.inf, math.inf)),
        ("eval/kl", (0.0, math.inf)),  # a divergence: a CI such as [-2.29, 10.26] is cut at 0
        ("train/kl", (-math.inf, math.inf)),  # off-policy rows estimate no divergence
    ],
)
def test_metric_ranges_by_name(metric: str, bounds: tuple[float, float]) -> None:
    assert metric_range(metric) == bounds


def test_a_rate_ci_stays_in_0_1_and_a_time_ci_above_0() -> None:
    # win rates 0.9, 1.0, 1.0: mean 0.9667, s = sqrt(((-0.0667)^2 + 2 * 0.0333^2) / 2) = 0.05774,
    # half = 4.3027 * 0.05774 / sqrt(3) = 0.1434 -> t interval [0.8232, 1.1101]; cut at 1
    n, mean, lo, hi = metric_ci("eval/win_rate_vs_sft", [0.9, 1.0, 1.0])
    assert (n, mean) == (3, pytest.approx(0.96667, abs=1e-5))
    assert lo == pytest.approx(0.96667 - T2 * 0.057735 / math.sqrt(3), abs=1e-4) and hi == 1.0
    # wall times 10, 100, 1000 s: mean 370, s = 547.5, half = 4.3027 * 547.5 / sqrt(3) = 1360 -> lo < 0: 0
    _, mean, lo, hi = metric_ci("time/total_s", [10.0, 100.0, 1000.0])
    assert mean == pytest.approx(370.0) and lo == 0.0
    assert hi == pytest.approx(370 + T2 * 547.54 / 3**0.5, rel=1e-3)


def test_unbounded_metrics_keep_the_plain_t_interval() -> None:
    x = [-3.0, 0.5, 7.0]  # mean 1.5, s = 5.0744, half = 4.3027 * 5.0744 / sqrt(3) = 12.606
    _, mean, lo, hi = metric_ci("eval/gold_reward", x)
    assert (lo, hi) == pytest.approx((1.5 - 12.606, 1.5 + 12.606), abs=1e-3)


def test_a_paired_difference_of_rates_stays_in_minus_1_1() -> None:
    # a - b per seed: 0.9, 1.0, 0.5 (mean 0.8, s = 0.2646, half = 4.3027 * 0.2646 / sqrt(3) = 0.6572):
    # [0.1428, 1.4572] cut at 1
    a, b = {0: 1.0, 1: 1.0, 2: 0.5}, {0: 0.1, 1: 0.0, 2: 0.0}
    assert difference_range("eval/pass@1") == (-1.0, 1.0)
    t = paired_test(a, b, difference_range("eval/pass@1"))
    assert t.lo == pytest.approx(0.8 - 0.6572, abs=1e-3) and t.hi == 1.0
    assert difference_range("time/total_s") == (-math.inf, math.inf)


def test_the_group_table_and_a_note_say_a_ci_was_cut() -> None:
    runs = [run("ppo", s, 0.5, **{"eval/win_rate_vs_sft": w}) for s, w in enumerate([0.9, 1.0, 1.0])]
    c = aggregate(runs, ["algo"])
    assert c.group_table.set_index("group").loc["ppo", "eval/win_rate_vs_sft:hi"] == 1.0
    assert any("CIs cut at their metric's range" in n and "ppo eval/win_rate_vs_sft" in n for n in c.notes)
    assert np.isfinite(c.group_table.set_index("group").loc["ppo", "eval/gold_reward:mean"])


def test_runs_of_two_tasks_are_split_by_task_with_one_note(tmp_path: Path) -> None:
    from align_lab.compare import parse_args, split_pooled_settings

    runs = [run("ppo", s, 0.5, task) for task in ("toy_prefs", "toy_arith") for s in (0, 1)]
    problems: list[str] = []
    assert split_pooled_settings(runs, ["algo"], problems) == ["algo", "task"]
    assert problems == [
        "The runs differ in task (toy_arith, toy_prefs): grouped by algo,task, never pooled (a mean over "
        "tasks would mix their scales as if they were seeds)."
    ]
    assert split_pooled_settings(runs, ["algo", "task"], []) == ["algo", "task"]  # already split
    assert parse_args([str(tmp_path)]).drop_claim == []


def test_a_group_pooling_two_tasks_is_told_to_split_by_task_not_a_dotted_key() -> None:
    runs = [run("ppo", s, 0.5, task) for task in ("toy_prefs", "toy_arith") for s in (0, 1)]
    for r in runs:  # reward differs too, as a verifier vs a learned reward model would
        r.config["reward"] = {"_target_": "rm" if "prefs" in r.choices["task"] else "verifier"}
    notes = " ".join(aggregate(runs, ["algo"]).notes)  # aggregate itself pools what it is told to
    assert "group ppo pools runs whose configs differ in task._target_, reward._target_" in notes
    assert "(e.g. --by algo,task)" in notes


def test_two_arms_with_the_sft_baseline_headline_the_one_against_the_other() -> None:
    runs = [run("ppo", s, g) for s, g in ((0, 0.4), (1, 0.6), (2, 0.5))]
    runs += [run("rloo", s, g) for s, g in ((0, 0.3), (1, 0.1), (2, 0.2))]
    for r in runs:
        r.metrics[-1]["eval/gold_reward_sft"] = 0.2  # an SFT value: the default baseline is SFT
    c = aggregate(runs, ["algo"])
    assert c.baseline == "SFT"
    # rloo - ppo per seed: -0.1, -0.5, -0.3 -> mean -0.3, s = 0.2, half = 4.3027 * 0.2 / sqrt(3) = 0.4968:
    # [-0.7968, 0.1968]; 3 pairs all negative: exact p = 2/8 = 0.25 (one test: Holm p 0.25)
    assert c.headline == (
        "rloo vs ppo on eval/gold_reward: rloo - ppo = -0.3 [-0.7968, 0.1968] over 3 paired seeds, "
        "Holm p 0.25: not decided: 3 seeds cannot reach Holm p < 0.05."
    )


def test_with_claims_the_headline_gives_their_verdicts() -> None:
    from align_lab.results.claims import parse_claim

    runs = [run(a, s, 0.5 + (0.1 * s if a == "rloo" else 0)) for a in ("ppo", "rloo", "grpo") for s in (0, 1)]
    c = aggregate(runs, ["algo"], claims=[parse_claim("rloo > ppo on eval/gold_reward")])
    # rloo - ppo per seed: 0.0, 0.1 -> mean 0.05, 2 pairs: inconclusive
    assert c.headline.startswith(
        "1 claim (0 reproduced, 0 contradicted, 1 inconclusive): rloo > ppo on eval/gold_reward: "
        "inconclusive (a - b = 0.05 ["
    )


def test_drop_claim_removes_a_saved_claim_and_refuses_one_not_saved() -> None:
    from align_lab.compare import drop_claims

    saved = ["rloo > ppo on eval/gold_reward", "ppo < grpo on eval/kl"]
    assert drop_claims(saved, ["rloo>ppo   on eval/gold_reward"]) == ["ppo < grpo on eval/kl"]
    with pytest.raises(ValueError, match="^--drop-claim 'a > b on eval/kl': no saved claim has this text; "):
        drop_claims(saved, ["a > b on eval/kl"])


def test_a_study_whose_only_run_died_says_so() -> None:
    error = "RuntimeError: CUDA out of memory\ntraceback"
    dead = Run(Path("/runs/ppo_0"), "failed", error=error, choices={"algo": "ppo"})
    with pytest.raises(ValueError) as e:
        aggregate([dead], ["algo"])
    assert str(e.value) == (
        "no run got to an evaluation (1 run: 1 failed); /runs/ppo_0: RuntimeError: CUDA out of memory"
    )


def test_an_empty_compute_matched_view_and_two_point_curves_say_why() -> None:
    from align_lab.results.averaged import matched_empty_reason

    runs = [run("dpo", s, 0.5) for s in (0, 1)]
    for r in runs:  # offline: no generated tokens
        r.metrics = [{"step": 2, "eval/gold_reward": 0.5}]
    c = aggregate(runs, ["algo"])
    why = matched_empty_reason(c)
    assert why is not None and why.startswith("The compute-matched view is empty: no completed run used")
    assert any(n.startswith("Not in the compute-matched view (no generated tokens") for n in c.notes)
    # one evaluation + no SFT start: 1 point per curve; run() gives 2 evaluations: 2 points, also noted
    assert (
        "Every run's curve has 1 evaluation point: no curve to draw; train.eval_every evaluates more often."
        in c.notes
    )
    two = aggregate([run("ppo", s, 0.5) for s in (0, 1)], ["algo"])
    assert any(n.startswith("Every run's curve has at most 2 evaluation points") for n in two.notes)
    assert matched_empty_reason(two) is None


def test_the_compare_hint_names_the_run_folder_alone_or_its_sweeps_folder(tmp_path: Path) -> None:
    import sys

    from align_lab.run.summary import compare_folder, result_lines

    # a single run: outputs/<date>/ above it holds whatever else ran that day, so the hint names the run
    single = tmp_path / "outputs" / "2026-11-25" / "12-00-00_ppo_seed0"
    single.mkdir(parents=True)
    (single.parent / "12-30-00_grpo_seed0").mkdir()  # another run that day (another model, say)
    hint = result_lines({"algo": "ppo", "seed": 0}, single)[-1]
    assert hint == f"  compare:    {Path(sys.executable).absolute()} -m align_lab.compare {single}"
    # a run of a multirun: the sweep folder, where Hydra wrote multirun.yaml (hydra.sweep.dir/subdir)
    sweep = tmp_path / "multirun" / "2026-11-25" / "12-00-00"
    (sweep / "0_ppo_seed0").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    assert compare_folder(sweep / "0_ppo_seed0") == sweep


@pytest.mark.slow  # over 1.5 s of CPU: CI's tier (docs/testing.md, the fast tier)
def test_compare_drops_a_saved_claim_and_splits_two_tasks_end_to_end(tmp_path: Path, capsys) -> None:
    import yaml

    from align_lab.compare import main
    from tests.integration.test_compare import CLAIMS, make_sweep

    sweep = make_sweep(tmp_path)  # 3 algorithms x 3 seeds of toy_prefs, with the 2 saved CLAIMS
    assert main([str(sweep), "--out", str(tmp_path / "a"), "--drop-claim", CLAIMS[1]]) == 0
    out = capsys.readouterr().out
    assert "claims (1, Holm-corrected together):" in out and CLAIMS[1] not in out
    assert main([str(sweep), "--out", str(tmp_path / "b"), "--drop-claim", "ppo > rloo on eval/kl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("align_lab.compare: error: --drop-claim 'ppo > rloo on eval/kl': no saved claim")
    # seed 2's runs become toy_arith runs: compare groups by algo and task, and says so once
    for folder in sweep.glob("*_seed2"):
        hydra = yaml.safe_load((folder / ".hydra" / "hydra.yaml").read_text())
        hydra["hydra"]["runtime"]["choices"]["task"] = "toy_arith"
        (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    assert main([str(sweep), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "in 6 groups by algo,task;" in out  # 3 algorithms x 2 tasks
    assert out.count("note: The runs differ in task (toy_arith, toy_prefs): grouped by algo,task") == 1


def test_a_verifier_gold_reward_ci_stays_in_0_1_as_pass_at_1s_does() -> None:
    # a verifiable task (reward=verifier): eval/gold_reward is the checker's 0/1 score, logged beside
    # eval/pass@1 (the same per-sample numbers). 0.9, 1.0, 1.0: t interval [0.8232, 1.1101] (above), cut at 1
    golds = [0.9, 1.0, 1.0]
    runs = [run("ppo", s, g, "toy_arith", **{"eval/pass@1": g}) for s, g in enumerate(golds)]
    c = aggregate(runs, ["algo"])
    assert c.group_table.set_index("group").loc["ppo", "eval/gold_reward:hi"] == 1.0
    assert any("CIs cut" in n and "ppo eval/gold_reward" in n for n in c.notes)
    # a difference of two such means lies in [-1, 1]; a gold reward without pass@1 (toy_prefs) is unbounded
    assert difference_range("eval/gold_reward", c.runs) == (-1.0, 1.0)
    plain = aggregate([run("ppo", s, g) for s, g in enumerate(golds)], ["algo"])
    assert plain.group_table.set_index("group").loc["ppo", "eval/gold_reward:hi"] == pytest.approx(
        1.1101, abs=1e-4
    )
    assert difference_range("eval/gold_reward", plain.runs) == (-math.inf, math.inf)


def test_a_mean_difference_of_exactly_0_is_0_and_not_against_the_claim() -> None:
    import pandas as pd

    from align_lab.results import power
    from align_lab.results.claims import claim_table, parse_claim

    # a - b = 0.7 - 0.4, 0.6 - 0.4, 0.5 - 1.0, 1.0 - 1.0 = 0.3, 0.2, -0.5, 0: mean 0, which numpy
    # gives as -2.776e-17 (the doubles 0.29999999999999993 + 0.19999999999999996 - 0.5 = -1.1e-16)
    a, b = [0.7, 0.6, 0.5, 1.0], [0.4, 0.4, 1.0, 1.0]
    assert np.mean(np.subtract(a, b)) == pytest.approx(-2.7756e-17, rel=1e-3)
    rows = [
        {"folder": f"{g}{s}", "group": g, "seed": float(s), "status": "completed", "eval/pass@1": v}
        for g, values in (("a", a), ("b", b))
        for s, v in enumerate(values)
    ]
    runs = pd.DataFrame(rows)
    claim = parse_claim("a > b on eval/pass@1")
    p = power.claim_power(claim, runs, 0.05)
    assert p.effect == 0.0 and not p.against and "against" not in power.describe(p)
    assert claim_table([claim], runs)["diff"].tolist() == [0.0]


def test_the_compare_hint_works_from_any_folder_with_or_without_the_venv(tmp_path: Path, monkeypatch) -> None:
    import shlex
    import subprocess
    import sys

    from align_lab.run.summary import result_lines

    # the venv active (`python` on PATH is this interpreter) and a run folder relative to the current
    # folder, as Hydra's outputs/<date>/<time> is: the hint printed `python -m align_lab.compare
    # outputs/...`, which fails once the venv is left or from any other folder
    monkeypatch.setattr("shutil.which", lambda name: sys.executable)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "run").mkdir(parents=True)
    hint = result_lines({"algo": "ppo", "seed": 0}, Path("outputs/run"))[-1].removeprefix("  compare:    ")
    args = shlex.split(hint)
    assert args == [
        str(Path(sys.executable).absolute()),
        "-m",
        "align_lab.compare",
        str(tmp_path / "outputs/run"),
    ]
    # followed from another folder with no venv on PATH: it runs align_lab's compare
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[3])}
    followed = subprocess.run(
        [*args[:3], "--help"], capture_output=True, text=True, timeout=120, cwd="/", env=env
    )
    assert followed.returncode == 0 and "usage: python -m align_lab.compare" in followed.stdout


def test_a_kl_below_0_in_a_runs_last_line_is_said_to_be_its_estimates_noise(tmp_path):
    """Fifteenth hunt: `KL to SFT -0.202`, no word that a KL is never below 0 and this one is estimated."""
    from align_lab.run.summary import result_lines

    line = result_lines({"algo": "grpo", "seed": 0, "eval/kl": -0.202, "eval/gold_reward": 0.5}, tmp_path)[0]
    assert "KL to SFT -0.202 (a sampled estimate: below 0 is its noise)" in line
    assert "(a sampled" not in result_lines({"algo": "grpo", "seed": 0, "eval/kl": 0.2}, tmp_path)[0]


def test_a_figure_is_saved_whole_or_not_at_all(tmp_path: Path) -> None:
    """Twenty-fourth hunt, case 48: compare killed as it saved its figures left a 0-byte .png beside whole
    ones (the report's files were written to a temporary name and renamed; the figures were not)."""
    import pytest

    from align_lab.results.plots import _save

    class Stopped:  # a figure whose save is cut short (a signal, a kill) after its first bytes
        def savefig(self, target, **kwargs):
            Path(target).write_bytes(b"\x89PNG")
            raise KeyboardInterrupt

    path = tmp_path / "gold_reward_by_group.png"
    with pytest.raises(KeyboardInterrupt):
        _save(Stopped(), path)
    assert list(tmp_path.iterdir()) == []


def test_one_config_trained_twice_is_one_seed_in_its_group_row_and_runs_of_one_seed_stay_apart() -> None:
    """Fortieth hunt, case 41: `seed=0,1,1` trained seed 1 twice; the group row read 3 seeds, seed 1's
    value weighed double: mean (0.3072 + 0.2523 + 0.2523) / 3 = 0.2706 where its seeds' is 0.2797, and the
    t interval of 3. Runs of one config and seed count once; runs of one seed but two configs (`--by seed`)
    stay two."""
    runs = [run("ppo", 0, 0.3072, config_digest="a0"), run("ppo", 1, 0.2523, config_digest="a1")]
    runs.append(run("ppo", 1, 0.2523, config_digest="a1"))
    c = aggregate(runs, ["algo"])
    ppo = c.group_table.set_index("group").loc["ppo"]
    assert ppo["n"] == 2 and ppo["eval/gold_reward:n"] == 2  # hand: (0.3072 + 0.2523) / 2 = 0.27975
    assert ppo["eval/gold_reward:mean"] == pytest.approx(0.27975)
    assert "ppo has 2 completed runs with seed 1, all of one config: one run trained again, counted once" in (
        " ".join(c.notes)
    )
    one_seed = [run("ppo", 0, 0.3, config_digest="p"), run("rloo", 0, 0.2, config_digest="r")]
    by_seed = aggregate(one_seed, ["seed"])
    assert by_seed.group_table.set_index("group")["n"].tolist() == [2]


def test_the_pairing_counts_runs_of_one_config_and_seed_once_as_the_group_row_does() -> None:
    """Seventh hunt of 2026-12-04, cp1: a group of one seed held two runs of one config (one run trained
    twice) among others; its row counted them once, its paired mean against SFT all of them. Hand: runs
    0.5, 0.5 (config a) and 0.2 (config b), seed 0, SFT 0.1 each: the row's mean (0.5 + 0.2) / 2 = 0.35,
    the paired difference 0.35 - 0.1 = 0.25 (it was (0.5 + 0.5 + 0.2) / 3 - 0.1 = 0.3)."""
    runs = [
        run("ppo", 0, 0.5, config_digest="a", **{"eval/gold_reward_sft": 0.1}),
        run("ppo", 0, 0.5, config_digest="a", **{"eval/gold_reward_sft": 0.1}),
        run("ppo", 0, 0.2, config_digest="b", **{"eval/gold_reward_sft": 0.1}),
    ]
    c = aggregate(runs, ["algo"])
    assert c.group_table.set_index("group").loc["ppo", "eval/gold_reward:mean"] == pytest.approx(0.35)
    paired = c.paired.set_index("group").loc["ppo"]
    assert paired["group_mean"] == pytest.approx(0.35) and paired["diff"] == pytest.approx(0.25)
    assert (
        "ppo has 3 completed runs with seed 0; the mean of its 2 configs (runs of one config counted once) "
        "is used for pairing." in c.notes
    )
