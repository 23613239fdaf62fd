"""The sequential plan by Monte-Carlo (benchmarks/sequential_plan.py, tests/unit/results/test_sequential.py):
whole studies of per-seed differences drawn at once, every look's tests and Holm step-down vectorised
(results/sequential.py has the procedure itself). Pure functions, no I/O."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from align_lab.results.sequential import (
    Plan,
    holm_rejects,
    look_seeds,
    look_thresholds,
    obf_spending,
    p_values,
    step_down,
    t_p_values,
)


def cannot_reach(diffs: np.ndarray, level: float) -> np.ndarray:
    """Rows whose exact sign-flip p is surely > level, without counting patterns (the simulation skips
    them: a p above every threshold is rejected by no step-down, whatever its value). Paley-Zygmund:
    X = sum_i eps_i d_i has E X^2 = Q = sum d^2 and E X^4 <= 3 Q^2, so with theta^2 = S^2 / Q < 1 (S the
    observed sum) p >= P(X^2 > theta^2 Q) >= (1 - theta^2)^2 / 3. diffs (..., n) -> bool (...)."""
    total = diffs.sum(axis=-1)  # (...)
    q = (diffs * diffs).sum(axis=-1)  # (...)
    with np.errstate(invalid="ignore", divide="ignore"):
        theta2 = np.where(q > 0, total * total / q, 0.0)  # (...): all-zero rows have p = 1
    return (theta2 < 1) & ((1 - theta2) ** 2 / 3 > level)


def simulate(
    plan: Plan,
    draw: Callable,
    n_claims: int,
    n_studies: int,
    spend: Callable = obf_spending,
    exact=False,
    test: Callable = p_values,
) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo studies under the plan: draw(shape) gives per-seed differences (studies, claims,
    max_seeds); test(diffs (..., n)) -> p (...) is the look's test (t_p_values: the pre-2026-11-28 one, for
    comparison). Returns (rejected: bool (studies, claims), seeds at which each claim was decided:
    (studies, claims), max_seeds where never)."""
    d = draw((n_studies, n_claims, plan.max_seeds))
    # a test other than the sign-flip one (t_p_values) has no floor: the levels it was run with, not carried
    thresholds = look_thresholds(plan, n_claims, spend, exact, carry=test is p_values)  # (looks, claims + 1)
    rejected = np.zeros((n_studies, n_claims), dtype=bool)
    decided_at = np.full((n_studies, n_claims), plan.max_seeds)
    for n, row in zip(look_seeds(plan), thresholds, strict=True):
        p = np.where(rejected, np.nan, 1.0)  # (studies, claims): closed claims are not tested again
        tested = ~rejected
        if test is p_values:  # the sign-flip p's bound; a t p has none
            tested &= ~cannot_reach(d[..., :n], np.nanmax(row))
        p[tested] = test(d[..., :n][tested])
        now = step_down(p, row)
        decided_at[now] = n
        rejected |= now
    return rejected, decided_at


def fixed_power(n: int, effect: float, n_claims: int, n_studies: int, rng, alpha: float = 0.05) -> float:
    """Per-claim power of the fixed design: n seeds, one t-test per claim, Holm at alpha over the
    claims, every claim with a true effect of `effect` SDs. The t-test, not the sign-flip test compare
    uses: it is exact for these normal differences, and n here runs to 4 x max_seeds, beyond the sign-flip
    test's exact enumeration (30 pairs)."""
    d = rng.standard_normal((n_studies, n_claims, n)) + effect
    return float(holm_rejects(t_p_values(d), alpha).mean())


def expected_seeds(
    plan: Plan, effect: float, n_claims: int, n_studies: int, rng, exact: bool = False
) -> dict:
    """Every claim with a true effect of `effect` SDs (normal differences): the plan's per-claim power,
    its expected seeds per arm (the study stops when all are decided or at max_seeds), and the seeds
    per arm of the fixed design with at least the same per-claim power (None when above 4 * max)."""

    def draw(shape):
        return rng.standard_normal(shape) + effect

    rejected, decided_at = simulate(plan, draw, n_claims, n_studies, exact=exact)
    power = float(rejected.mean())
    fixed = next(
        (n for n in range(2, 4 * plan.max_seeds + 1) if fixed_power(n, effect, n_claims, 2000, rng) >= power),
        None,
    )
    return {
        "effect": effect,
        "power": power,
        "expected_seeds": float(decided_at.max(axis=1).mean()),
        "fixed_seeds": fixed,
    }


def fwer(
    plan: Plan, draw: Callable, n_claims: int, n_studies: int, exact: bool = False, test: Callable = p_values
) -> tuple[float, float]:
    """(family-wise error rate, its Monte-Carlo SE) of the plan when every claim is null."""
    rejected, _ = simulate(plan, draw, n_claims, n_studies, exact=exact, test=test)
    rate = float(rejected.any(axis=1).mean())
    return rate, math.sqrt(max(rate * (1 - rate), 1e-12) / n_studies)
