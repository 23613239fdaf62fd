"""Runs read at equal KL (align_lab.results.matched; compare --budget kl, claims "... at equal kl"). Every
expected value is worked out by hand in the comments."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from align_lab.results.aggregate import aggregate
from align_lab.results.claims import Claim, parse_claim
from align_lab.results.matched import first_crossing
from align_lab.results.runs import Run


def test_first_crossing_interpolates_between_the_two_evaluations_around_the_kl():
    # KL 0, 0.15, 0.3 with gold 0.2, 0.3, 0.5; at KL 0.2: 0.3 + (0.2 - 0.15) / 0.15 * (0.5 - 0.3)
    # = 0.3 + (1/3) * 0.2 = 0.36667
    assert first_crossing([0.0, 0.15, 0.3], [0.2, 0.3, 0.5], 0.2) == pytest.approx(0.366667, abs=1e-6)
    # an evaluation exactly at the KL is its value
    assert first_crossing([0.0, 0.15, 0.3], [0.2, 0.3, 0.5], 0.15) == pytest.approx(0.3)


def test_a_kl_that_falls_is_read_where_it_first_reaches_the_kl():
    # KL 0 -> 2 -> 1 -> 3 (y 0, 10, 20, 30) crosses 1.5 three times; the first, on 0 -> 2:
    # 0 + 1.5 / 2 * 10 = 7.5 (not 15 on 2 -> 1, nor 25 on 1 -> 3; np.interp on the sorted points gives 20)
    assert first_crossing([0.0, 2.0, 1.0, 3.0], [0.0, 10.0, 20.0, 30.0], 1.5) == pytest.approx(7.5)


@pytest.mark.parametrize("at", [3.5, -0.1, math.nan])
def test_a_kl_outside_the_curve_is_never_extrapolated(at):
    assert math.isnan(first_crossing([0.0, 2.0, 1.0, 3.0], [0.0, 10.0, 20.0, 30.0], at))


def kl_run(algo: str, seed: int, kls: list[float], golds: list[float], sft: float | None = 0.2) -> Run:
    """An online run evaluated once a step: eval/kl and eval/gold_reward per step, the SFT gold if given."""
    metrics = [
        {"step": s, "counters/generated_tokens": 100 * s, "eval/kl": k, "eval/gold_reward": g}
        | ({"eval/gold_reward_sft": sft} if sft is not None else {})
        for s, (k, g) in enumerate(zip(kls, golds, strict=True), start=1)
    ]
    summary = {"status": "completed", "algo": algo, "seed": seed, "eval/gold_reward": golds[-1]}
    return Run(
        Path(f"/runs/{algo}_{seed}"),
        "completed",
        config={"seed": seed},
        choices={"algo": algo},
        summary=summary | {"eval/kl": kls[-1]},
        metrics=metrics,
    )


def study() -> list[Run]:
    """Two seeds of ppo and rloo; peak KLs 2.0, 1.6 (ppo) and 4.0, 3.0 (rloo): the common KL is 1.6."""
    return [
        kl_run("ppo", 0, [1.0, 2.0], [0.4, 0.6]),
        kl_run("ppo", 1, [0.8, 1.6], [0.3, 0.5]),
        kl_run("rloo", 0, [2.0, 4.0], [0.5, 0.9]),
        kl_run("rloo", 1, [1.0, 3.0, 2.5], [0.4, 0.8, 0.7]),
    ]


def test_the_kl_matched_view_reads_every_run_at_the_smallest_peak_kl():
    c = aggregate(study(), ["algo"], budget="kl", baseline="ppo")
    assert c.common_budget == pytest.approx(1.6) and c.budget == "kl"
    at = dict(zip(c.runs["folder"], c.runs["eval/gold_reward@kl"], strict=True))
    # each curve from the SFT start (KL 0, gold 0.2):
    # ppo 0: 1.0 -> 2.0 (0.4 -> 0.6): 0.4 + 0.6/1.0 * 0.2 = 0.52
    # ppo 1: its last evaluation, 1.6: 0.5
    # rloo 0: 0 -> 2.0 (0.2 -> 0.5): 0.2 + 1.6/2.0 * 0.3 = 0.44
    # rloo 1: 1.0 -> 3.0 (0.4 -> 0.8): 0.4 + 0.6/2.0 * 0.4 = 0.52
    expected = {"/runs/ppo_0": 0.52, "/runs/ppo_1": 0.5, "/runs/rloo_0": 0.44, "/runs/rloo_1": 0.52}
    assert at == pytest.approx(expected)
    # rloo - ppo per seed: 0.44 - 0.52 = -0.08, 0.52 - 0.5 = 0.02 -> mean -0.03
    row = next(c.matched_paired.itertuples())
    assert row.diff == pytest.approx(-0.03)
    assert not any("never reach" in n for n in c.notes)


def test_runs_that_never_reach_the_chosen_kl_are_named_and_left_out():
    c = aggregate(study(), ["algo"], budget="kl", baseline="ppo", at_kl=2.5)
    at = dict(zip(c.runs["folder"], c.runs["eval/gold_reward@kl"], strict=True))
    # rloo 0: 2.0 -> 4.0 (0.5 -> 0.9): 0.5 + 0.5/2.0 * 0.4 = 0.6
    # rloo 1: 1.0 -> 3.0 (0.4 -> 0.8): 0.4 + 1.5/2.0 * 0.4 = 0.7
    assert at["/runs/rloo_0"] == pytest.approx(0.6) and at["/runs/rloo_1"] == pytest.approx(0.7)
    assert math.isnan(at["/runs/ppo_0"]) and math.isnan(at["/runs/ppo_1"])  # peaks 2.0 and 1.6 < 2.5
    [note] = [n for n in c.notes if "never reach" in n]
    assert "KL 2.5 (chosen with --at-kl): 2 runs never reach it" in note
    assert "ppo seed 0 (peak KL 2, /runs/ppo_0)" in note and "ppo seed 1 (peak KL 1.6, /runs/ppo_1)" in note


def test_a_run_whose_curve_starts_past_the_kl_is_never_read_before_its_first_evaluation():
    # without an SFT value the curve starts at its first evaluation, KL 1.0 > 0.5: no value there
    runs = [*study(), kl_run("ppo", 2, [1.0, 2.0], [0.4, 0.6], sft=None)]
    c = aggregate(runs, ["algo"], budget="kl", baseline="ppo", at_kl=0.5)
    assert math.isnan(c.runs.loc[c.runs["folder"] == "/runs/ppo_2", "eval/gold_reward@kl"].item())
    assert any("ppo seed 2 (peak KL 2, /runs/ppo_2)" in n for n in c.notes)


def test_a_claim_at_equal_kl_reads_its_arms_at_their_smallest_peak_kl():
    claim = parse_claim("rloo > ppo on eval/gold_reward at equal kl")
    assert claim == Claim("rloo", ">", "ppo", "eval/gold_reward", at="kl")
    assert str(claim) == "rloo > ppo on eval/gold_reward at equal kl"
    assert str(parse_claim("rloo > ppo on eval/gold_reward by 0.1 at equal kl")).endswith(
        "by 0.1 at equal kl"
    )
    c = aggregate(study(), ["algo"], claims=[claim])
    [row] = c.claims.itertuples()
    assert row.diff == pytest.approx(-0.03)  # the same readings as the view at KL 1.6 (above)
    assert row.why.startswith("read at kl 1.6, the smallest peak KL of its arms' runs")
    [power] = c.power
    assert power.claim == str(claim) and "between two evaluations" in power.note


def test_the_frontier_gets_each_runs_gold_reward_at_the_common_kl_whatever_the_budget():
    c = aggregate(study(), ["algo"])  # the compute-matched view; the frontier still has its KL point
    assert c.frontier_kl == pytest.approx(1.6)
    assert c.runs["eval/gold_reward@kl"].tolist() == pytest.approx([0.52, 0.5, 0.44, 0.52])


@pytest.mark.parametrize(
    "text, said",
    [
        ("rloo > ppo on eval/gold_reward at equal klx", "at equal klx: allowed: generated_tokens"),
        ("rloo > ppo on mean(eval/kl) at equal kl", "is over every step: no value at equal kl"),
    ],
)
def test_a_claim_at_equal_an_unknown_budget_is_a_one_line_error(text, said):
    with pytest.raises(ValueError, match="claim") as e:
        parse_claim(text)
    assert said in str(e.value) and "\n" not in str(e.value)


def test_with_the_sft_baseline_the_kl_matched_view_says_why_it_pairs_with_a_group():
    c = aggregate(study(), ["algo"], budget="kl")  # the SFT baseline: at KL 1.6 it has no value
    assert c.baseline == "SFT" and c.matched_baseline == "ppo"
    assert (
        "The KL-matched view compares groups at one KL, where SFT (KL 0) has no value; there groups are "
        "paired with ppo." in c.notes
    )
