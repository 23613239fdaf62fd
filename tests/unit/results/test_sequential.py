"""results/sequential.py: the spending schedule, the paired t p-values, Holm, one look, and by simulation
the family-wise error rate over the real look schedule (start 4, wave 4, max 24) and six null claims."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from align_lab.results.plan_record import seeds_run, verdict_lines
from align_lab.results.sequential import (
    Plan,
    boundary_levels,
    check_plan,
    decide_look,
    holm_rejects,
    look_levels,
    look_seeds,
    look_thresholds,
    obf_spending,
    p_values,
    t_p_values,
    wave_seeds,
)
from align_lab.results.sequential_simulation import fwer, simulate

REAL = Plan(start=4, wave=4, max_seeds=24)
N_STUDIES = 20_000  # Monte-Carlo SE of a rate near 0.05: sqrt(0.05 * 0.95 / 20000) = 0.0015


def test_look_schedule():
    assert look_seeds(REAL) == [4, 8, 12, 16, 20, 24]
    assert look_seeds(Plan(2, 2, 6)) == [2, 4, 6]
    assert look_seeds(Plan(4, 4, 22)) == [4, 8, 12, 16, 20, 22]  # the last wave is cut at max_seeds
    assert look_seeds(Plan(5, 4, 5)) == [5]
    assert [list(wave_seeds(REAL, k)) for k in (0, 1, 5)] == [[0, 1, 2, 3], [4, 5, 6, 7], [20, 21, 22, 23]]


def test_obf_spending_by_hand():
    # t = 1 spends all of alpha; t = 1/2: z = 1.959964 / sqrt(0.5) = 2.771808, 2 * (1 - Phi(2.771808))
    # = 2 * 0.0027875 = 0.005575 (normal table)
    assert obf_spending(1.0, 0.05) == pytest.approx(0.05)
    assert obf_spending(0.5, 0.05) == pytest.approx(0.005575, abs=2e-6)
    assert obf_spending(0.0, 0.05) == 0.0
    levels = look_levels(REAL)
    assert levels.sum() == pytest.approx(0.05) and (levels >= 0).all() and len(levels) == 6


def test_boundary_levels_spend_alpha_exactly():
    # one look: the whole of alpha; two looks at 4 and 8 seeds: Z_1, Z_2 standard normal with correlation
    # sqrt(4 / 8), and P(|Z_1| >= z_1 or |Z_2| >= z_2) = alpha, computed here by Genz's algorithm (scipy)
    # instead of the recursive integration
    from scipy import stats as sps

    assert boundary_levels([24], 0.05) == pytest.approx([0.05])
    c = boundary_levels([4, 8], 0.05)
    assert c[0] == pytest.approx(obf_spending(0.5, 0.05))  # look 1 spends spend(1/2) alone
    z = sps.norm.isf(c / 2)
    rho = math.sqrt(4 / 8)
    mvn = sps.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]])
    inside = mvn.cdf(z, lower_limit=-z)
    assert 1 - inside == pytest.approx(0.05, abs=2e-5)
    exact = look_thresholds(REAL, 6, exact=True)  # (looks, claims + 1)
    assert exact.shape == (6, 7) and (np.diff(exact[:, 1:], axis=1) < 0).all()  # stricter with more claims
    assert exact[-1, 1] > 0.0182  # the last look keeps more than Bonferroni across looks (alpha_6)
    # the procedure: Holm at alpha_k, thresholds alpha_k / r
    assert look_thresholds(REAL, 6)[:, 1:] == pytest.approx(look_levels(REAL)[:, None] / np.arange(1, 7))


def test_t_p_values_by_hand():
    # 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 on 2 df; the t2 tail is 1/2 - t / (2 sqrt(2 + t^2))
    # = 0.5 - 3.4641 / 7.4833 = 0.037089, two-sided 0.074180
    assert t_p_values(np.array([1.0, 2.0, 3.0])) == pytest.approx(0.074180, abs=1e-5)
    assert t_p_values(np.array([-1.0, -2.0, -3.0])) == pytest.approx(0.074180, abs=1e-5)
    assert t_p_values(np.array([1.0, 1.0])) == 0.0  # no spread, not 0: certain
    assert t_p_values(np.array([0.0, 0.0, 0.0])) == 1.0
    assert math.isnan(t_p_values(np.array([1.0])))
    assert t_p_values(np.array([1.0, 2.0, 3.0, np.nan])) == pytest.approx(0.074180, abs=1e-5)


def test_holm_by_hand():
    # sorted 0.01 <= 0.05/3, then 0.03 > 0.05/2: stop (0.04 is not rejected though <= 0.05)
    assert holm_rejects(np.array([0.01, 0.04, 0.03]), 0.05).tolist() == [True, False, False]
    # NaN is out of the family: m = 2, 0.01 <= 0.025, 0.024 <= 0.05
    assert holm_rejects(np.array([0.01, np.nan, 0.024]), 0.05).tolist() == [True, False, True]
    assert holm_rejects(np.array([[0.2, 0.001], [0.01, 0.02]]), 0.05).tolist() == [
        [False, True],
        [True, True],
    ]


def test_a_look_decides_open_claims_in_their_direction():
    # 10 pairs each: the first two all of one sign, exact sign-flip p = 2 / 2**10 = 0.00195 each; the
    # third mixes signs with mean 0: every pattern's |sum| >= 0, p = 1
    diffs = [
        np.array([1.0, 1.1, 0.9, 1.0, 1.2, 0.8, 1.0, 1.1, 0.9, 1.0]),
        -np.array([1.0, 1.1, 0.9, 1.0, 1.2, 0.8, 1.0, 1.1, 0.9, 1.0]),
        np.array([1.0, -1.0, 0.5, -0.5, 0.2, -0.2, 0.3, -0.3, 0.1, -0.1]),
    ]
    holm = 0.01 / np.array([1, 1, 2, 3])  # thresholds[r] = 0.01 / r: Holm at 0.01
    look = decide_look(0, holm, diffs, signs=[1, 1, -1], open_=[True, True, True])
    assert look.p == pytest.approx([2 / 2**10, 2 / 2**10, 1.0])
    # 0.00195 <= 0.01 / 3 and <= 0.01 / 2: both decided, the first in its claim's direction
    assert look.decided == ["reproduced", "contradicted", ""]
    # the two smallest p (equal) face 0.01 / 3 and 0.01 / 2, the largest 0.01 / 1
    assert sorted(look.level) == pytest.approx([0.01 / 3, 0.01 / 2, 0.01])
    closed = decide_look(1, holm, diffs, signs=[1, 1, -1], open_=[False, True, True])
    assert (
        closed.decided == ["", "contradicted", ""]
        and closed.n == [10, 10, 10]
        and math.isnan(closed.level[0])
    )


def test_equal_nonzero_differences_get_the_exact_p_and_are_not_decided_below_its_floor():
    # the t-test gave p = 0 here (no spread), deciding at any look; the exact test gives 2 / 2**n
    for n in (2, 4, 8):
        assert p_values(np.full(n, 0.25)) == 2 / 2**n
    # a float-rounding spread (1e-17) made the t p ~1e-45; the exact p stays 2 / 2**4 = 0.125
    assert p_values(0.1 + np.array([0.0, 1e-17, -1e-17, 0.0])) == 0.125
    look = decide_look(0, np.array([np.nan, 0.05]), [np.full(4, 1.0)], signs=[1], open_=[True])
    assert look.p == [0.125] and look.decided == [""]


def test_looks_that_no_p_can_reach_pass_their_alpha_on():
    # plan 4/4/24 (REAL): spend(t) = 2 - 2 Phi(1.959964 / sqrt t); the smallest exact p of n pairs: 2 / 2**n.
    # look 1, n = 4, t = 1/6: z = 4.8009, spend 1.6e-6 < 0.125: nothing can be decided, carried.
    # look 2, n = 8, t = 1/3: z = 3.3948, spend 6.87e-4 < 2/256 = 0.0078: carried (level 0).
    # look 3, n = 12, t = 1/2: spend 0.005575 (test_obf_spending_by_hand) >= 2/4096: the look gets all of it.
    levels = look_levels(REAL)
    assert levels[:2].tolist() == [0.0, 0.0]
    assert levels[2] == pytest.approx(obf_spending(0.5, 0.05))
    assert levels[3:] == pytest.approx(np.diff(obf_spending(np.array([0.5, 4 / 6, 5 / 6, 1.0]), 0.05)))
    assert levels.sum() == pytest.approx(0.05)
    # a plan whose every look is below its floor still spends alpha at the last look
    assert look_levels(Plan(2, 1, 4)).tolist() == pytest.approx([0.0, 0.0, 0.05])


def test_the_carry_rule_counts_the_claims_holm_divides_the_level_by():
    # plan 2/2/10, looks at 2, 4, 6, 8, 10 seeds: spend(t) = 2 - 2 Phi(1.959964 / sqrt t); looks 1-3 are
    # below 2/2^n (carried); look 4, n = 8, t = 0.8: z = 2.19130, spend 0.028430 >= 2/256 = 0.0078125,
    # kept for one claim. With 5 claims Holm's first step is at 0.028430 / 5 = 0.005686 < 0.0078125: no
    # claim can be decided at look 4, so its alpha goes on and the last look (n = 10) gets all 0.05
    plan = Plan(2, 2, 10)
    assert look_levels(plan)[3] == pytest.approx(0.028430, abs=1e-5)
    assert look_levels(plan, claims=5).tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.05])
    assert look_thresholds(plan, 5)[-1, 1:] == pytest.approx(0.05 / np.arange(1, 6))
    # 4/4/24 with six claims: look 3, n = 12, 0.005575 / 6 = 0.00093 >= 2/4096 = 0.00049: unchanged
    assert look_levels(REAL, claims=6) == pytest.approx(look_levels(REAL))


@pytest.mark.parametrize(
    "plan, message",
    [
        (Plan(1, 4, 24), "plan.start=1"),
        (Plan(4, 0, 24), "plan.wave=0"),
        (Plan(8, 4, 4), "plan.max_seeds=4"),
        (Plan(4, 4, 24, budget_s=0), "plan.budget_s=0"),
        (Plan(4, 4, 24, alpha=1.5), "plan.alpha=1.5"),
        (Plan(4, 4, 24, budget_s="abc"), "plan.budget_s='abc'"),  # a TypeError traceback (third hunt)
        (Plan(4, 4, 24, alpha="x"), "plan.alpha='x'"),
        # the fifth hunt: a quoted '0.05' said "must be in (0, 1)", which 0.05 is
        (Plan(4, 4, 24, alpha="0.05"), "plan.alpha='0.05': must be a number in (0, 1) (it is text: quoted?)"),
    ],
)
def test_bad_plans_are_one_line_errors(plan, message):
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        check_plan(plan)
    assert "\n" not in str(e.value)


# The real study's claim graph (sweeps/real_arith.yaml): arms 0 ppo, 1 ppo_max, 2 rloo, 3 reinforce_pp,
# 4 grpo, 5 dpo; claims share arms, so their differences are correlated
REAL_CLAIMS = [(2, 0), (2, 5), (3, 4), (3, 0), (1, 0), (1, 0)]


def arm_differences(rng, draw_arm):
    """Null claims as differences of identical arms: every arm's per-seed value from the same law."""

    def draw(shape):
        studies, claims, seeds = shape
        arms = draw_arm((studies, 6, seeds))  # (studies, arms, seeds)
        return np.stack([arms[:, a] - arms[:, b] for a, b in REAL_CLAIMS], axis=1)  # (studies, claims, seeds)

    return draw


def pass_at_1(rng, questions: int = 32, samples: int = 2):
    """An arm's pass@1 per seed over `questions` x `samples` draws: values on a grid of 1/64, so equal
    arms tie. Each question's solve rate is fixed across arms and seeds (a benchmark's easy and hard
    questions), from 0.03 to 0.97."""
    solve = np.linspace(0.03, 0.97, questions)  # (questions,)

    def draw(shape):
        hits = rng.random((*shape, questions, samples)) < solve[:, None]  # (..., questions, samples)
        return hits.mean(axis=(-2, -1))

    return draw


def win_rate(rng, prompts: int = 72):
    """An arm's win rate against SFT per seed over `prompts` judged pairs: win 1, tie 1/2, loss 0 with
    probabilities 0.80 / 0.05 / 0.15 (a trained policy's rate near 0.82, as in the real studies)."""

    def draw(shape):
        outcome = rng.choice([1.0, 0.5, 0.0], p=[0.80, 0.05, 0.15], size=(*shape, prompts))
        return outcome.mean(axis=-1)

    return draw


NULLS = {
    "normal": lambda rng: lambda s: rng.standard_normal(s),
    "heavy-tailed t3": lambda rng: lambda s: rng.standard_t(3, s),
    "arms lognormal (skewed), shared arms": lambda rng: arm_differences(
        rng, lambda s: rng.lognormal(0, 1, s)
    ),
    "arms exponential (skewed), shared arms": lambda rng: arm_differences(
        rng, lambda s: rng.exponential(1, s)
    ),
    # discrete laws, where differences tie: the t-test's FWER was 0.16-0.24 on the first (below)
    "differences in {-1, 0, +1}": lambda rng: lambda s: rng.integers(-1, 2, s).astype(float),
    "pass@1 over 32 x 2 draws, shared arms": lambda rng: arm_differences(rng, pass_at_1(rng)),
    "win rate over 72 prompts, shared arms": lambda rng: arm_differences(rng, win_rate(rng)),
}
PLAN16 = Plan(
    start=4, wave=4, max_seeds=16
)  # the filed null study's plan (4 looks); REAL's 24 is the benchmark's
N_LAW = 5_000  # SE of a rate near 0.05: sqrt(0.05 * 0.95 / 5000) = 0.003


SLOW_LAW = "win rate over 72 prompts, shared arms"  # 2.2 s of CPU: CI's tier (docs/testing.md, the fast tier)


@pytest.mark.parametrize(
    "law", [pytest.param(law, marks=pytest.mark.slow) if law == SLOW_LAW else law for law in NULLS]
)
def test_family_wise_error_rate_over_looks_and_claims_is_at_most_alpha(law):
    rng = np.random.default_rng(34)
    rate, se = fwer(PLAN16, NULLS[law](rng), n_claims=6, n_studies=N_LAW)
    assert rate <= 0.05 + 3 * se, f"{law}: FWER {rate:.4f} (SE {se:.4f})"


def test_a_tied_null_with_a_look_after_every_second_seed_stays_at_alpha():
    """Plan 2/2/10, one claim, differences in {-1, 0, +1}: the t-test decided (1, 1) at 2 seeds (p = 0),
    a family-wise error rate of 0.24 (10,000 studies, 2026-11-28); the exact test cannot go below
    2 / 2**n, and the looks it cannot reach pass their alpha on."""
    rng = np.random.default_rng(7)

    def ternary(shape):
        return rng.integers(-1, 2, shape).astype(float)

    rate, se = fwer(Plan(2, 2, 10), ternary, n_claims=1, n_studies=N_STUDIES)
    assert rate <= 0.05 + 3 * se, f"FWER {rate:.4f} (SE {se:.4f})"
    t_rate, _ = fwer(Plan(2, 2, 10), ternary, n_claims=1, n_studies=N_STUDIES, test=t_p_values)
    assert t_rate > 0.1, "the simulation no longer sees what the t-test did on ties"


def test_the_simulation_can_fail_testing_every_look_at_alpha():
    """Without spending (Holm at 0.05 at each of the 4 looks: alpha spent at every t) the FWER is well
    above 0.05: the simulation sees what the spending prevents."""
    rng = np.random.default_rng(1)
    rejected, _ = simulate(PLAN16, rng.standard_normal, 6, N_LAW, spend=lambda t, a: a * 4 * np.asarray(t))
    assert rejected.any(axis=1).mean() > 0.08


def test_a_true_effect_stops_early():
    rng = np.random.default_rng(2)
    rejected, decided_at = simulate(REAL, lambda s: rng.standard_normal(s) + 2.0, 6, 2000)
    assert rejected.mean() > 0.99 and decided_at.max(axis=1).mean() < 16


def a_record() -> dict:
    """Two claims over two looks: the first decided at look 1, the second open after look 2."""
    return {
        "arms": ["ppo", "rloo"],
        "claims": ["rloo > ppo on eval/gold_reward", "rloo < ppo on eval/kl"],
        "waves": [{"seeds": [0, 1], "arms": ["ppo", "rloo"]}, {"seeds": [2, 3], "arms": ["ppo", "rloo"]}],
        "looks": [
            {
                "index": 0,
                "seeds": 2,
                "level": [0.0007, 0.0004],
                "n": [2, 2],
                "p": [0.0001, 0.5],
                "decided": ["reproduced", ""],
            },
            {
                "index": 1,
                "seeds": 4,
                "level": [float("nan"), 0.0157],
                "n": [2, 4],
                "p": [0.0001, 0.2],
                "decided": ["", ""],
            },
        ],
        "stopped": "plan.max_seeds=4 reached",
    }


def test_verdict_lines_of_a_record():
    record = a_record()
    assert seeds_run(record) == {"ppo": 4, "rloo": 4}
    lines = verdict_lines(record)
    assert "2 looks at 2, 4 seeds per arm" in lines[0] and "max_seeds=4 reached" in lines[0]
    assert "REPRODUCED" in lines[1] and "at look 1 (2 seeds)" in lines[1]
    assert "INCONCLUSIVE" in lines[2] and "open after look 2 (4 seeds), p 0.2, level 0.0157" in lines[2]


def test_the_report_shows_a_sequential_studys_plan_and_verdicts(tmp_path):
    import json

    from align_lab.results.render import Bullets, Heading
    from align_lab.results.report import plan_blocks

    assert plan_blocks([tmp_path]) == []  # a fixed sweep: no plan.json, no section
    (tmp_path / "plan.json").write_text(json.dumps(a_record()))
    heading, _, bullets = plan_blocks([tmp_path])
    assert isinstance(heading, Heading) and heading.text == "Sequential plan"
    assert isinstance(bullets, Bullets) and bullets.items == verdict_lines(a_record())
