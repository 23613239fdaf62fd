"""results/noise.py: a group's spread over seeds and its evaluation part, on the hand-built records of
test_results_power (2 prompts x 2 samples per run), each expected value worked out in the comments."""

from __future__ import annotations

import math

import pytest

from align_lab.results import noise
from tests.unit.results.test_results_power import study


def test_group_noise_splits_each_groups_spread(tmp_path):
    runs = study(tmp_path, [0.0, 0.2, 0.1])
    by_group = {g.group: g for g in noise.group_noise(runs, "eval/gold_reward")}
    # b at every seed: prompt 0 (0, 0), prompt 1 (0, 0.2): s^2 = 0 and 0.02, each / 2 samples: 0.01,
    # over P^2 = 4: 0.0025, eval SD 0.05; b's mean is 0.05 at every seed: SD 0 < eval SD, so
    # sigma^2_seed = max(0, 0 - 0.0025) = 0: eval 100% + seeds 0% (it was a share of 0.0025 / 0 before)
    b = by_group["b"]
    assert (b.n, b.sd, b.eval_sd) == (3, pytest.approx(0.0, abs=1e-15), pytest.approx(0.05))
    assert b.share == 1.0 and b.below_eval
    # a = b + d + shift: prompt 0 (0.2, 0) + shift, prompt 1 (0.1, 0.1) + shift: s^2 0.02 and 0 ->
    # 0.0025 again; a's means 0.05 + (0, 0.2, 0.1): SD 0.1, variance 0.01; share 0.0025 / 0.01
    a = by_group["a"]
    assert (a.n, a.sd, a.eval_sd) == (3, pytest.approx(0.1), pytest.approx(0.05))
    assert a.share == pytest.approx(0.25)
    assert not a.below_eval
    assert noise.noise_line([a, b]) == [
        "  evaluation noise and seeds in each group's variance over seeds: a eval 25% + seeds 75% (SD 0.1, "
        "eval 0.05); b eval 100% + seeds 0% (SD 8.5e-18, eval 0.05: the seeds spread less than evaluation "
        "alone would)"
    ]


def test_the_split_adds_up_to_100_percent_where_seeds_spread_less_than_evaluation():
    # SD over seeds 0.032, eval SD 0.0397 (the real study's dpo: printed "150%" before): Var_s = 0.001024
    # < sigma^2_eval = 0.001576, so sigma^2_seed = 0 and the eval share is 0.001576 / 0.001576 = 100%
    g = noise.GroupNoise("dpo", 8, 0.032, 0.0397)
    assert g.share == 1.0 and g.below_eval
    # 0.113 and 0.0366 (grpo): 0.0366^2 / 0.113^2 = 0.00134 / 0.01277 = 0.105: eval 10% + seeds 90%
    h = noise.GroupNoise("grpo", 8, 0.113, 0.0366)
    assert h.share == pytest.approx(0.0366**2 / 0.113**2) and noise.split_text(h).startswith(
        "eval 10% + seeds 90%"
    )
    # neither spreads: no split
    assert math.isnan(noise.GroupNoise("x", 3, 0.0, 0.0).share)


def test_group_noise_needs_per_sample_records_and_an_eval_metric(tmp_path):
    runs = study(tmp_path, [0.0, 0.2, 0.1], with_samples=False)
    assert noise.group_noise(runs, "eval/gold_reward") == []  # no eval_samples.jsonl: nothing to split
    assert noise.group_noise(study(tmp_path / "t", [0.0, 0.1]), "time/total_s") == []
    assert noise.noise_line([]) == []


def test_copies_of_one_seed_are_one_seed_in_the_noise_split(tmp_path):
    """Thirty-eighth hunt, case 39: four runs of seed 0 (one algorithm, four reward.path) gave `eval 100% +
    seeds 0% (... the seeds spread less than evaluation alone would)`: a split over seeds drawn from no
    seed variation at all. A seed's runs count once in it."""
    import pandas as pd

    runs = study(tmp_path, [0.0, 0.2, 0.1])
    copies = pd.concat([runs[runs["seed"] == 0.0]] * 4, ignore_index=True)
    assert noise.group_noise(copies, "eval/gold_reward") == []  # one seed: nothing to split
    both = pd.concat([copies, runs[runs["seed"] == 1.0]], ignore_index=True)  # seed 0 four times, seed 1 once
    assert [g.n for g in noise.group_noise(both, "eval/gold_reward")] == [2, 2]
