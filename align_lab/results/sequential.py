"""Sequential studies: test a study's claims after every wave of seeds without inflating its error rate.

The procedure (docs/studies.md, "Sequential studies"): alpha spending over the looks with Lan &
DeMets' O'Brien-Fleming-type function, Bonferroni across looks, Holm across the claims still open.

- Look k happens after n_k = min(start + (k-1) * wave, max_seeds) seeds per arm; its information
  fraction is t_k = n_k / max_seeds, and spend(t) = 2 - 2 Phi(z_{1-a/2} / sqrt(t)) is the part of alpha
  spent by t (all of it at t = 1). Look k's level is alpha_k = spend(t_k) - spend(t_{k-1}), except that a
  look whose level no p-value of n_k pairs can reach with all m claims open (alpha_k / m < 2 / 2^n_k,
  below: Holm's first step is at alpha_k / m) spends nothing and
  passes its alpha_k on to the next look (`look_levels`): the levels are fixed by the plan before any
  data, and they still sum to alpha.
- At look k every open claim gets the exact two-sided sign-flip p-value of its per-seed differences
  a - b (stats.sign_flip_p_values, the test of compare's fixed design); Holm's step-down at alpha_k
  over the open claims rejects some; a rejected claim is decided (reproduced when the mean difference
  has the claim's sign, else contradicted) and closed, and its arms get no more seeds for it.

Why the family-wise error rate over looks and claims is <= alpha, whatever the correlation between looks
(they share seeds) and between claims (they share arms), and whatever the law of the differences, as long
as it is symmetric about 0 under no effect (identical arms with common random numbers are exchangeable):
a claim closes only when it is rejected, so before the first false rejection every true null is still
open; Holm at look k then rejects a true null only if one of the m0 true nulls has p <= alpha_k / m0,
probability <= alpha_k as the sign-flip p is exact for every symmetric law, discrete ones with ties
included; a union bound over the looks gives <= sum_k alpha_k = alpha.

Why not the paired t-test (used here until 2026-11-28): its p has no floor, but it is exact only for
normal differences. Discrete metrics tie (pass@1 over 32 x 2 samples, win rates over 72 prompts): equal
non-zero differences gave t p = 0, decided at any look, and a null of differences in {-1, 0, +1} had a
family-wise error rate of 0.078 (plan 4/4/16, 5 claims) and 0.148 (plan 2/2/10, 1 claim) against 0.05.
The floor is not the sign-flip test's weakness: a test that is valid for every symmetric law must be valid
given |d|, where the 2^n sign patterns are equally likely, so none can reject at a level below 2 / 2^n
(n = 8 seeds: 0.0078). Early looks whose level is below it pass their alpha on instead of wasting it.

The exact group-sequential boundary (`boundary_levels`, recursive integration; Holm by Maurer & Bretz
2013) would keep 0.038 of 0.05 for the last look where Bonferroni keeps 0.018, but it models the looks'
statistics by the normal theory (correlation sqrt(n_j / n_k)), and the statistics of small samples are
less correlated: simulated with t-tests, it spent 0.0525 for one claim at alpha 0.05 (start 4, wave 4,
max 24) and 0.057 with waves of one seed (start 2, max 10), so it is kept for comparison only (exact=True).

Pure functions, no I/O. The plan's simulation (family-wise error rate, expected seeds) is
sequential_simulation.py.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from align_lab.results.stats import sign_flip_p_values, smallest_p_value


def scipy_stats():
    """scipy on first use: Hydra imports every plugin module (hydra_plugins/align_lab_launcher imports
    this one) at each start of `python -m align_lab`, and a top-level scipy import cost every command,
    a one-line config error too, about a second before it could answer."""
    from scipy import stats

    return stats


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
    number = isinstance(plan.budget_s, int | float) and not isinstance(plan.budget_s, bool)
    if plan.budget_s is not None and not (number and plan.budget_s > 0):
        raise ValueError(f"plan.budget_s={plan.budget_s!r}: must be > 0 seconds, or null (no budget)")
    if not isinstance(plan.alpha, int | float) or isinstance(plan.alpha, bool) or not 0 < plan.alpha < 1:
        quoted = " (it is text: quoted?)" if isinstance(plan.alpha, str) else ""
        raise ValueError(f"plan.alpha={plan.alpha!r}: must be a number in (0, 1){quoted}")


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
    sps = scipy_stats()
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    z = sps.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore"):
        return np.where(t > 0, 2 - 2 * sps.norm.cdf(z / np.sqrt(t)), 0.0)


def look_levels(
    plan: Plan, spend: Callable = obf_spending, carry: bool = True, claims: int = 1
) -> np.ndarray:
    """alpha_k of each look: spend(t_k) - spend(t_{k-1}), t_k = n_k / max_seeds, where the first step of
    Holm's step-down over `claims` claims (alpha_k / claims) is below the smallest sign-flip p its n_k
    pairs can give (2 / 2^n_k: no claim could be decided there) the look's level is 0 and its alpha goes
    to the next look (carry=False: not, the levels a test without a floor would use); they sum to alpha.
    (looks,)"""
    n = look_seeds(plan)
    spent = spend(np.array(n, dtype=float) / plan.max_seeds, plan.alpha)  # (looks,)
    raw = np.diff(spent, prepend=0.0)  # (looks,)
    levels, carried = np.zeros(len(n)), 0.0
    for k, (seeds, alpha_k) in enumerate(zip(n, raw, strict=True)):
        level = carried + alpha_k
        # Holm rejects nothing at a look unless its smallest p passes level / (claims open); a look whose
        # alpha cannot be used with every claim open is carried: before the first look that can decide,
        # every claim is open (2/2/10 with 5 claims: look 4, 0.0284 / 5 = 0.0057 < 2/2^8 = 0.0078)
        reachable = not carry or smallest_p_value(seeds) <= level / claims or k == len(n) - 1
        levels[k], carried = (level, 0.0) if reachable else (0.0, level)
    return levels


def p_values(diffs: np.ndarray) -> np.ndarray:
    """The exact two-sided sign-flip p of each claim's per-seed differences along the last axis (NaNs
    ignored); NaN with < 2 values. diffs: (..., seeds) -> (...)."""
    d = np.asarray(diffs, dtype=float)
    finite = np.isfinite(d)
    if finite.all():  # the simulation's case: one length, one vectorised call
        return sign_flip_p_values(d) if d.shape[-1] >= 2 else np.full(d.shape[:-1], np.nan)
    flat, counts = d.reshape(-1, d.shape[-1]), finite.reshape(-1, d.shape[-1]).sum(axis=1)
    out = np.array([sign_flip_p_values(row[np.isfinite(row)]) for row in flat], dtype=float)  # (rows,)
    return np.where(counts >= 2, out, np.nan).reshape(d.shape[:-1])


def t_p_values(diffs: np.ndarray) -> np.ndarray:
    """Two-sided paired Student-t p-values along the last axis (NaNs ignored); NaN with < 2 values;
    differences all equal: 0 when they are not 0, else 1. diffs: (..., seeds) -> (...). Only the fixed
    design's power under normal differences (`fixed_power`) uses it: no claim is decided by it (why: the
    module's docstring)."""
    sps = scipy_stats()
    d = np.asarray(diffs, dtype=float)
    n = np.sum(np.isfinite(d), axis=-1)  # (...)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(d, axis=-1) if d.shape[-1] else np.full(n.shape, np.nan)
        sd = np.sqrt(np.nansum((d - mean[..., None]) ** 2, axis=-1) / (n - 1))
        t = np.abs(mean) / (sd / np.sqrt(n))
        p = 2 * sps.t.sf(t, np.maximum(n - 1, 1))
    p = np.where(sd == 0, np.where(mean == 0, 1.0, 0.0), p)
    return np.where(n >= 2, p, np.nan)


def boundary_levels(info: Sequence[float], alpha: float, spend: Callable = obf_spending, grid: int = 401):
    """Nominal two-sided p-levels c_k of the group-sequential test of one hypothesis at overall level
    alpha, looks at information `info` (seeds): P(|Z_j| < z(c_j), j < k; |Z_k| >= z(c_k)) = spend(t_k) -
    spend(t_{k-1}) under H0, Z_k = S_k / sqrt(I_k) with independent normal increments of S (Armitage,
    McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19: recursive numerical integration on a grid
    of the continuation region). (looks,)"""
    sps = scipy_stats()
    from scipy import optimize

    info = np.asarray(info, dtype=float)  # (looks,)
    spent = np.diff(spend(info / info[-1], alpha), prepend=0.0)  # (looks,)
    z = np.full(len(info), np.inf)
    s = w = f = None
    for k in range(len(info)):
        if k == 0:
            z[0] = sps.norm.isf(spent[0] / 2) if spent[0] > 0 else np.inf
        elif spent[k] > 0:
            sd = math.sqrt(info[k] - info[k - 1])

            def exit_prob(c, k=k, sd=sd, s=s, w=w, f=f):
                b = c * math.sqrt(info[k])
                return np.sum(w * f * (sps.norm.sf((b - s) / sd) + sps.norm.cdf((-b - s) / sd))) - spent[k]

            z[k] = optimize.brentq(exit_prob, 0.01, 40.0, xtol=1e-12)
        edge = min(z[k], 12.0) * math.sqrt(info[k])  # the continuation region of S_k
        s_next = np.linspace(-edge, edge, grid)  # (grid,)
        w_next = np.full(grid, s_next[1] - s_next[0])
        w_next[[0, -1]] /= 2  # trapezoid weights
        if k == 0:
            f = sps.norm.pdf(s_next / math.sqrt(info[0])) / math.sqrt(info[0])  # (grid,) density of S_1
        else:  # density of S_k on its continuation region: the previous one convolved with the increment
            f = (w * f) @ (sps.norm.pdf((s_next[None, :] - s[:, None]) / sd) / sd)
        s, w = s_next, w_next
    return 2 * sps.norm.sf(z)


@functools.lru_cache(maxsize=32)
def look_thresholds(
    plan: Plan, n_claims: int, spend: Callable = obf_spending, exact: bool = False, carry: bool = True
):
    """thresholds[k, r]: the p-level at look k of a claim when r claims are left in Holm's step-down
    (r = 1..n_claims; column 0 unused). Bonferroni across looks (the procedure): alpha_k / r, alpha_k =
    spend(t_k) - spend(t_{k-1}), carried past looks where alpha_k / n_claims is below the sign-flip
    floor (look_levels: one schedule for every r, so Holm's proof holds as it is). exact=True: the exact
    normal-theory boundary at alpha / r of each claim (boundary_levels; Holm by Maurer & Bretz 2013),
    liberal with t-tests (docs). (looks, n_claims + 1), read-only (cached)."""
    info = look_seeds(plan)
    out = np.full((len(info), n_claims + 1), np.nan)
    for r in range(1, n_claims + 1):
        out[:, r] = (
            boundary_levels(info, plan.alpha / r, spend)
            if exact
            else look_levels(plan, spend, carry, n_claims) / r
        )
    out.flags.writeable = False
    return out


def step_down(p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Holm's step-down along the last axis over the finite p (NaN: not in the family): the i-th smallest
    (0-based) of m is rejected, with all smaller ones, when p <= thresholds[m - i]. thresholds: (claims + 1,);
    Holm at level a is thresholds[r] = a / r. p: (..., claims) -> bool (..., claims)."""
    p = np.asarray(p, dtype=float)
    finite = np.isfinite(p)
    m = finite.sum(axis=-1, keepdims=True)  # (..., 1)
    order = np.argsort(np.where(finite, p, np.inf), axis=-1, kind="stable")
    sorted_p = np.take_along_axis(np.where(finite, p, np.inf), order, axis=-1)
    left = np.maximum(m - np.arange(p.shape[-1]), 1)  # (..., claims): claims still in the step
    passes = sorted_p <= np.asarray(thresholds)[np.minimum(left, len(thresholds) - 1)]
    passes = np.cumprod(passes, axis=-1).astype(bool)  # step-down: stop at the first failure
    out = np.zeros_like(passes)
    np.put_along_axis(out, order, passes, axis=-1)
    return out & finite


def holm_rejects(p: np.ndarray, level: float) -> np.ndarray:
    """Holm's step-down at `level` (thresholds level / r)."""
    n = np.asarray(p).shape[-1]
    return step_down(p, level / np.maximum(np.arange(n + 1), 1))


@dataclass(frozen=True)
class Look:
    """One look's outcome: each claim's n, p, the nominal level it was held to (NaN: closed, or not
    reached in the step-down) and its decision ('' while open)."""

    index: int
    n: list[int]
    p: list[float]
    level: list[float]
    decided: list[str]  # per claim: "reproduced", "contradicted" or "" (open, or decided earlier)


def decide_look(
    index: int, thresholds: np.ndarray, diffs: Sequence, signs: Sequence[int], open_: Sequence[bool]
) -> Look:
    """Look `index`: the step-down with `thresholds` (look_thresholds' row) over the open claims' exact
    sign-flip tests. diffs[j]: claim j's per-seed a - b (any length); signs[j]: +1 for 'a > b', -1 for
    'a < b'; open_[j]: not decided earlier."""
    p = np.array([p_values(np.asarray(d, dtype=float)) if len(d) else np.nan for d in diffs])  # (claims,)
    p_open = np.where(np.asarray(open_, dtype=bool), p, np.nan)
    rejected = step_down(p_open, thresholds)
    finite = np.isfinite(p_open)
    rank = np.argsort(np.argsort(np.where(finite, p_open, np.inf), kind="stable"), kind="stable")  # (claims,)
    level = np.where(finite, np.asarray(thresholds)[np.maximum(finite.sum() - rank, 1)], np.nan)
    decided = []
    for j, d in enumerate(diffs):
        agrees = bool(rejected[j]) and np.sign(np.nanmean(np.asarray(d, dtype=float))) == signs[j]
        decided.append(("reproduced" if agrees else "contradicted") if rejected[j] else "")
    n = [int(np.isfinite(np.asarray(d, dtype=float)).sum()) for d in diffs]
    return Look(index, n, [float(x) for x in p], [float(x) for x in level], decided)
