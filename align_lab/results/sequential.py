"""Sequential studies: test a study's claims after every wave of seeds without inflating its error rate.

The procedure (docs/studies.md, "Sequential studies"): group-sequential alpha spending with a
Bonferroni split across looks and Holm across the claims still open.

- Look k happens after n_k = min(start + (k-1) * wave, max_seeds) seeds per arm; its information
  fraction is t_k = n_k / max_seeds.
- Its level is alpha_k = spend(t_k) - spend(t_{k-1}), with Lan & DeMets' (1983) O'Brien-Fleming-type
  spending function spend(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), so sum_k alpha_k = alpha.
- At look k every open claim gets the two-sided paired Student-t p-value of its per-seed differences
  a - b; Holm's step-down at level alpha_k over the open claims rejects some; a rejected claim is
  decided (reproduced when the mean difference has the claim's sign, else contradicted) and closed.

Why the family-wise error rate over looks and claims is <= alpha, whatever the correlation between
looks (they share seeds) and between claims (they share arms): a claim closes only when it is rejected,
so before the first false rejection every true null is still open; Holm at look k then falsely rejects
only if some true null has p <= alpha_k / m0 (m0 true nulls), probability <= alpha_k; a union bound over
looks gives <= sum_k alpha_k = alpha. Bonferroni across looks forgoes the joint distribution of the
looks (which an exact group-sequential boundary would use) and so is conservative, but it needs only
valid p-values at each look.

Why the t-test and not the exact sign-flip test of compare: the sign-flip p of n pairs is >= 2 / 2**n,
so at 8 seeds it cannot go below 0.0078 while the O'Brien-Fleming level of that look, split over six
claims, is 0.00012: the early looks could never decide. The t-test's p has no such floor; its validity
at small n rests on roughly normal differences, which tests/unit/results/test_sequential.py checks by
simulation for normal, heavy-tailed and skewed differences.

Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Plan:
    """A study's sequential plan (the `plan:` key of a sweep file)."""

    start: int  # seeds per arm in the first wave
    wave: int  # seeds per arm added by each later wave
    max_seeds: int  # seeds per arm at most
    budget_s: float | None = None  # wall-time budget of the whole plan (None: no budget)
    alpha: float = 0.05  # family-wise error rate over every look and claim


def check_plan(plan: Plan) -> None:
    """A one-line ValueError naming the key, its value and what is allowed."""
    for key in ("start", "wave", "max_seeds"):
        value = getattr(plan, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"plan.{key}={value!r}: must be an integer >= 1")
    if plan.start < 2:
        raise ValueError(f"plan.start={plan.start}: must be >= 2 (a paired test needs 2 seeds)")
    if plan.max_seeds < plan.start:
        raise ValueError(f"plan.max_seeds={plan.max_seeds}: must be >= plan.start={plan.start}")
    if plan.budget_s is not None and not plan.budget_s > 0:
        raise ValueError(f"plan.budget_s={plan.budget_s!r}: must be > 0 seconds, or null (no budget)")
    if not 0 < plan.alpha < 1:
        raise ValueError(f"plan.alpha={plan.alpha!r}: must be in (0, 1)")


def look_seeds(plan: Plan) -> list[int]:
    """Seeds per arm at each look: start, start + wave, ..., up to max_seeds (the last look at max)."""
    n = list(range(plan.start, plan.max_seeds, plan.wave))
    return n + [plan.max_seeds]


def wave_seeds(plan: Plan, look: int) -> range:
    """The seeds wave `look` (0-based) runs: 0..start-1, then the next `wave` ones, capped at max_seeds."""
    n = look_seeds(plan)
    return range(0 if look == 0 else n[look - 1], n[look])


def obf_spending(t: float | np.ndarray, alpha: float) -> np.ndarray:
    """Lan-DeMets O'Brien-Fleming-type alpha spent by information fraction t: 2 - 2 Phi(z_{1-a/2}/sqrt t)."""
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    z = sps.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore"):
        return np.where(t > 0, 2 - 2 * sps.norm.cdf(z / np.sqrt(t)), 0.0)


def look_levels(plan: Plan, spend: Callable = obf_spending) -> np.ndarray:
    """alpha_k of each look: spend(t_k) - spend(t_{k-1}), t_k = n_k / max_seeds; they sum to alpha."""
    t = np.array(look_seeds(plan), dtype=float) / plan.max_seeds  # (looks,)
    spent = spend(t, plan.alpha)  # (looks,)
    return np.diff(spent, prepend=0.0)


def t_p_values(diffs: np.ndarray) -> np.ndarray:
    """Two-sided paired Student-t p-values along the last axis (NaNs ignored); NaN with < 2 values;
    differences all equal: 0 when they are not 0, else 1. diffs: (..., seeds) -> (...)."""
    d = np.asarray(diffs, dtype=float)
    n = np.sum(np.isfinite(d), axis=-1)  # (...)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(d, axis=-1) if d.shape[-1] else np.full(n.shape, np.nan)
        sd = np.sqrt(np.nansum((d - mean[..., None]) ** 2, axis=-1) / (n - 1))
        t = np.abs(mean) / (sd / np.sqrt(n))
        p = 2 * sps.t.sf(t, np.maximum(n - 1, 1))
    p = np.where(sd == 0, np.where(mean == 0, 1.0, 0.0), p)
    return np.where(n >= 2, p, np.nan)


def holm_rejects(p: np.ndarray, level: float) -> np.ndarray:
    """Holm's step-down at `level` along the last axis over the finite p (NaN: not in the family).
    p: (..., claims) -> bool (..., claims)."""
    p = np.asarray(p, dtype=float)
    finite = np.isfinite(p)
    m = finite.sum(axis=-1, keepdims=True)  # (..., 1)
    order = np.argsort(np.where(finite, p, np.inf), axis=-1, kind="stable")
    sorted_p = np.take_along_axis(np.where(finite, p, np.inf), order, axis=-1)
    rank = np.arange(p.shape[-1])
    passes = sorted_p <= level / np.maximum(m - rank, 1)  # (..., claims), sorted
    passes = np.cumprod(passes, axis=-1).astype(bool)  # step-down: stop at the first failure
    out = np.zeros_like(passes)
    np.put_along_axis(out, order, passes, axis=-1)
    return out & finite


@dataclass(frozen=True)
class Look:
    """One look's outcome: its level and each claim's n, p and decision ('' while open)."""

    index: int
    level: float
    n: list[int]
    p: list[float]
    decided: list[str]  # per claim: "reproduced", "contradicted" or "" (open, or decided earlier)


def decide_look(
    index: int, level: float, diffs: Sequence[np.ndarray], signs: Sequence[int], open_: Sequence[bool]
) -> Look:
    """Look `index`: Holm at `level` over the open claims' paired t-tests. diffs[j]: claim j's per-seed
    a - b (any length); signs[j]: +1 for 'a > b', -1 for 'a < b'; open_[j]: not decided earlier."""
    p = np.array([t_p_values(np.asarray(d, dtype=float)) if len(d) else np.nan for d in diffs])  # (claims,)
    p_open = np.where(np.asarray(open_, dtype=bool), p, np.nan)
    rejected = holm_rejects(p_open, level)
    decided = []
    for j, d in enumerate(diffs):
        if not rejected[j]:
            decided.append("")
        else:
            agrees = np.sign(np.nanmean(d)) == signs[j]
            decided.append("reproduced" if agrees else "contradicted")
    return Look(
        index,
        float(level),
        [int(np.isfinite(d).sum()) for d in map(np.asarray, diffs)],
        [float(x) for x in p],
        decided,
    )


def simulate(
    plan: Plan, draw: Callable, n_claims: int, n_studies: int, spend: Callable = obf_spending
) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo studies under the plan: draw(shape) gives per-seed differences (studies, claims,
    max_seeds). Returns (rejected: bool (studies, claims), seeds at which each claim was decided:
    (studies, claims), max_seeds where never)."""
    d = draw((n_studies, n_claims, plan.max_seeds))
    levels = look_levels(plan, spend)
    rejected = np.zeros((n_studies, n_claims), dtype=bool)
    decided_at = np.full((n_studies, n_claims), plan.max_seeds)
    for n, level in zip(look_seeds(plan), levels, strict=True):
        p = np.where(rejected, np.nan, t_p_values(d[..., :n]))  # (studies, claims)
        now = holm_rejects(p, level)
        decided_at[now] = n
        rejected |= now
    return rejected, decided_at


def fixed_power(n: int, effect: float, n_claims: int, n_studies: int, rng, alpha: float = 0.05) -> float:
    """Per-claim power of the fixed design: n seeds, one t-test per claim, Holm at alpha over the
    claims, every claim with a true effect of `effect` SDs."""
    d = rng.standard_normal((n_studies, n_claims, n)) + effect
    return float(holm_rejects(t_p_values(d), alpha).mean())


def expected_seeds(plan: Plan, effect: float, n_claims: int, n_studies: int, rng) -> dict:
    """Every claim with a true effect of `effect` SDs (normal differences): the plan's per-claim power,
    its expected seeds per arm (the study stops when all are decided or at max_seeds), and the seeds
    per arm of the fixed design with at least the same per-claim power (None when above 4 * max)."""

    def draw(shape):
        return rng.standard_normal(shape) + effect

    rejected, decided_at = simulate(plan, draw, n_claims, n_studies)
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


def fwer(plan: Plan, draw: Callable, n_claims: int, n_studies: int) -> tuple[float, float]:
    """(family-wise error rate, its Monte-Carlo SE) of the plan when every claim is null."""
    rejected, _ = simulate(plan, draw, n_claims, n_studies)
    rate = float(rejected.any(axis=1).mean())
    return rate, math.sqrt(max(rate * (1 - rate), 1e-12) / n_studies)
