"""results/action.py: the action line's counts and wording, on hand-built claims and power figures (the
figures themselves are tests/unit/results/test_results_power.py's)."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from align_lab.results import power
from align_lab.results.action import action_line
from align_lab.results.claims import INCONCLUSIVE, claim_table, parse_claim
from tests.unit.results.test_results_power import smallest_n


def equal_arms(values: list[float]) -> pd.DataFrame:
    """Arms a and b with the same pass@1 at every seed: every paired difference exactly 0."""
    rows = [
        {"folder": f"{g}{s}", "group": g, "seed": float(s), "status": "completed", "eval/pass@1": v}
        for s, v in enumerate(values)
        for g in ("a", "b")
    ]
    return pd.DataFrame(rows)


def test_differences_all_zero_get_no_seeds_figure_and_the_action_line_says_none_decides_them():
    runs = equal_arms([0.5, 0.25, 0.75])
    claims = [parse_claim("a > b on eval/pass@1 by 0.05"), parse_claim("a > b on eval/pass@1")]
    zero, default = power.power_table(claims, runs)
    # before: the claim's own effect 0.05 against SD 0 gave the sign-flip floor at 0.025 (7 seeds)
    assert zero.all_zero and zero.seeds is None and default.seeds is None
    assert power.describe(zero).endswith(
        "every difference is 0: no number of seeds decides it (the sign-flip p is 1)"
    )
    c = SimpleNamespace(claims=claim_table(claims, runs), power=[zero, default])
    assert action_line(c) == (
        "0 of 2 claims decided; 2 open with every paired difference 0, which no number of seeds decides "
        "(a > b on eval/pass@1 by 0.05, a > b on eval/pass@1)."
    )


def open_claim(seeds: int, more: dict) -> power.ClaimPower:
    return power.ClaimPower(
        "a > b on eval/pass@1", 4, 0.01, -0.02, 0.04, 0.02, 0.0002, 0.0002, 0.02, False, 0.05, seeds, more, ""
    )


def test_the_action_line_says_when_more_evaluation_samples_are_cheaper_than_seeds():
    claims = pd.DataFrame({"claim": ["a > b on eval/pass@1"], "verdict": [INCONCLUSIVE]})
    # 40 seeds at 1x; 25 at 2x: 25 runs of cost 1 + e (e: evaluation's share of a run) < 40 while
    # e < 40 / 25 - 1 = 0.6; 20 at 4x: 20 (1 + 3e) < 40 while e < (2 - 1) / 3 = 0.333: 2x is the safer bet
    c = SimpleNamespace(claims=claims, power=[open_claim(40, {2: 25, 4: 20})])
    assert action_line(c).endswith(
        "(fixed design, power lines below); with 2x evaluation samples per prompt (train.eval_samples) ~25 "
        "would do: more samples are cheaper than seeds while evaluation takes under 60% of a run's time."
    )
    # all of the SD between seeds: more samples need as many seeds, and the line says nothing of them
    c = SimpleNamespace(claims=claims, power=[open_claim(40, {2: 40, 4: 40})])
    assert action_line(c).endswith("(fixed design, power lines below).")


def test_a_groups_seeds_figure_sizes_its_effect_on_the_sd_it_prints():
    # SD 0.1 from 3 seeds: "0.5 SD" is sized at effect size 0.5, whatever the SD (before: 0.05 against the
    # SD's 80% upper bound 0.211693 (chi2 on 2 df: -2 ln 0.8 = 0.446287), effect size 0.236)
    assert power.pair_seeds(0.1, 3, 0.05) == smallest_n(0.5, 0.05) == 34
