"""Robustness claims (align_lab.results.robust): a claim tested at each point of a grid of one key, Holm
over the grid points. Every p-value is worked out by hand in the comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from align_lab.results.aggregate import aggregate
from align_lab.results.claims import parse_claim
from align_lab.results.robust import HOLDS_EVERY, HOLDS_SOME, NOT_SHOWN, REVERSED, chosen_value
from align_lab.results.runs import Run

# The seeds' differences at a point are +-1, 2, 4, ..., 128 (over 1024, exact in binary): every subset sum
# differs, so the exact sign-flip p of a point counts the sign patterns whose |sum| reaches the observed.
ALL_UP = [2**k for k in range(8)]  # sum 255, only itself and its mirror reach |255|: p = 2/256 = 0.0078125
SMALLEST_DOWN = [-1, *ALL_UP[1:]]  # sum 253: 255 and 253 and their mirrors: p = 4/256 = 0.015625
LARGEST_DOWN = [*ALL_UP[:7], -128]  # sum -1: every sum is odd, so |sum| >= 1 always: p = 1
ALL_DOWN = [-d for d in ALL_UP]  # p = 0.0078125, against the claim's direction
CHOSEN = {"rloo": 1e-5, "ppo": 3e-5}  # each arm's chosen lr; the grid is x 1/3, 1, 3 of it
WRITTEN = {"1/3": 1 / 3, "1": 1.0, "3": 3.0}


def run(algo: str, seed: int, lr: float, gold: float) -> Run:
    summary = {"status": "completed", "algo": algo, "seed": seed, "eval/gold_reward": gold}
    return Run(
        Path(f"/runs/{algo}_lr{lr:g}_{seed}"),
        "completed",
        config={"seed": seed, "algo": {"lr": lr}},
        choices={"algo": algo},
        summary=summary,
        metrics=[{"step": 1, "eval/gold_reward": gold}],
    )


def grid_runs(diffs: dict[str, list[int]]) -> list[Run]:
    """ppo at gold 0.5 everywhere; rloo at 0.5 + d / 1024 per seed; lr written to 2 digits (3.3e-06)."""
    runs = []
    for point, ds in diffs.items():
        for algo in ("rloo", "ppo"):
            lr = float(f"{CHOSEN[algo] * WRITTEN[point]:.2g}")
            for seed, d in enumerate(ds):
                runs.append(run(algo, seed, lr, 0.5 + (d / 1024 if algo == "rloo" else 0.0)))
    return runs


CLAIM = "rloo > ppo on eval/gold_reward across algo.lr x 1/3,1,3"


def robust(diffs: dict[str, list[int]], *more: str):
    c = aggregate(grid_runs(diffs), ["algo"], claims=[parse_claim(CLAIM), *map(parse_claim, more)])
    [r] = c.robustness
    return c, r


def test_a_claim_that_holds_at_two_of_three_points_says_which_decided_it():
    c, r = robust({"1/3": ALL_UP, "1": SMALLEST_DOWN, "3": LARGEST_DOWN})
    # Holm over the 3 points: sorted p 0.0078125 (x1/3), 0.015625 (x1), 1 (x3) ->
    # 3 x 0.0078125 = 0.0234375; max(0.0234375, 2 x 0.015625 = 0.03125) = 0.03125; max(0.03125, 1 x 1) = 1
    assert [pt.label for pt in r.points] == ["x1/3", "x1", "x3"]
    assert [pt.test.p for pt in r.points] == pytest.approx([0.0078125, 0.015625, 1.0])
    assert [pt.test.p_holm for pt in r.points] == pytest.approx([0.0234375, 0.03125, 1.0])
    assert r.verdict == HOLDS_SOME
    assert r.decided_by == "x1/3 (Holm p 0.0234), x1 (Holm p 0.0312)"
    # each arm's grid on its own chosen value: rloo 3.3e-06, 1e-05, 3e-05; ppo 1e-05, 3e-05, 9e-05
    assert [v for pt in r.points for v in pt.values] == pytest.approx(
        [1e-5 / 3, 1e-5, 1e-5, 3e-5, 3e-5, 9e-5]
    )


def test_a_claim_that_holds_at_every_point():
    _, r = robust({"1/3": ALL_UP, "1": SMALLEST_DOWN, "3": ALL_UP})
    # sorted p 0.0078125, 0.0078125, 0.015625 -> 3 x 0.0078125 = 0.0234375; max(0.0234375, 2 x 0.0078125)
    # = 0.0234375; max(0.0234375, 1 x 0.015625) = 0.0234375: every point < 0.05 with the claimed sign
    assert [pt.test.p_holm for pt in r.points] == pytest.approx([0.0234375] * 3)
    assert r.verdict == HOLDS_EVERY
    assert r.decided_by == "x1/3 (Holm p 0.0234), x1 (Holm p 0.0234), x3 (Holm p 0.0234)"


def test_a_point_decided_the_other_way_is_named_as_reversed():
    _, r = robust({"1/3": ALL_UP, "1": SMALLEST_DOWN, "3": ALL_DOWN})
    # x3's p 0.0078125 like x1/3's: Holm p 0.0234 at x1/3 and x3, 0.03125 at x1; x3's mean is < 0
    assert r.verdict == f"{HOLDS_SOME}; reversed at x3"


def test_a_claim_decided_only_the_other_way_is_reversed_not_held():
    _, r = robust({"1/3": ALL_DOWN, "1": LARGEST_DOWN, "3": LARGEST_DOWN})
    # p 0.0078125, 1, 1 -> Holm 3 x 0.0078125 = 0.0234375, then max(0.0234375, 2 x 1) capped at 1, 1
    assert [pt.test.p_holm for pt in r.points] == pytest.approx([0.0234375, 1.0, 1.0])
    assert r.verdict == REVERSED and r.decided_by == "x1/3 (Holm p 0.0234)"


def test_at_six_seeds_no_point_can_be_decided_over_three():
    _, r = robust({k: ALL_UP[:6] for k in WRITTEN})
    # 6 seeds: p = 2/64 = 0.03125 at each point; Holm: 3 x 0.03125 = 0.09375 for all three
    assert [pt.test.p_holm for pt in r.points] == pytest.approx([0.09375] * 3)
    assert r.verdict == NOT_SHOWN and r.decided_by == "none: the smallest Holm p is x1/3's 0.0938"


def test_the_runs_off_x1_are_kept_out_of_the_tables_and_the_other_claims():
    c, _ = robust({"1/3": ALL_UP, "1": SMALLEST_DOWN, "3": LARGEST_DOWN}, "rloo > ppo on eval/gold_reward")
    assert len(c.runs) == 16  # the 8 seeds of each arm at x1
    [row] = c.claims.itertuples()
    # x1's differences: (-1 + 2 + 4 + ... + 128) / 1024 = 253 / 1024 / 8 per seed on average = 0.030884765625
    assert row.n_pairs == 8 and row.diff == pytest.approx(253 / 1024 / 8)
    assert any("32 runs at the grid points of" in n and "other than x1 are kept out" in n for n in c.notes)


def test_the_chosen_value_is_the_one_that_puts_every_value_on_the_grid():
    grid = (1 / 3, 1.0, 3.0)
    assert chosen_value([3.3e-6] * 4 + [1e-5] * 4 + [3e-5] * 4, grid) == 1e-5
    assert chosen_value([1e-5] * 4 + [3e-5] * 2, grid) == 1e-5  # 3e-5 fits too (x1/3, x1); fewer runs
    assert chosen_value([1e-5, 2e-5], grid) is None  # 2e-5 is 2 x 1e-5: not on the grid


@pytest.mark.parametrize(
    "text, said",
    [
        ("rloo > ppo on eval/gold_reward across algo.lr x 1/3,3", "with 1 among them"),
        ("rloo > ppo on eval/gold_reward across algo.lr x 1", "2 or more distinct multipliers"),
        ("rloo > ppo on eval/gold_reward across algo.lr x 1,-2", "multipliers > 0"),
        ("rloo > ppo on eval/gold_reward at equal kl across algo.lr x 1,3", "not 'at equal'"),
    ],
)
def test_a_malformed_grid_is_a_one_line_error(text, said):
    with pytest.raises(ValueError, match="claim") as e:
        parse_claim(text)
    assert said in str(e.value) and "\n" not in str(e.value)


def test_a_claim_across_a_grid_reads_back_as_written():
    claim = parse_claim("rloo > ppo on eval/gold_reward by 0.02 across algo.lr x 1/3,1,3")
    assert str(claim) == "rloo > ppo on eval/gold_reward by 0.02 across algo.lr x 1/3,1,3"
    assert claim.across == "algo.lr" and claim.multipliers == pytest.approx((1 / 3, 1.0, 3.0))
