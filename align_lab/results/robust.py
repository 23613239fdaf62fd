"""Robustness claims: "rloo > ppo on eval/gold_reward across algo.lr x 1/3,1,3" tests the claim at each
point of a grid of one key, each arm's chosen value times each multiplier, and says whether it holds at
every point, at some (which), or at none.

The grid's runs are ordinary runs of the sweep folder whose config differs from the arm's own runs only in
the key. An arm's chosen value c is the value of its completed runs for which every value they have is
c x m for a multiplier m (within TOLERANCE); where several fit, the one most runs have. Grid point m pairs
arm a's runs at c_a x m with arm b's at c_b x m by seed (a seed's runs averaged), tests them with the exact
sign-flip test (stats.paired_tests), and Holm corrects over every point of every robustness claim
together: so the points where the claim holds (Holm p < alpha, the claimed sign) are all right together
with probability >= 1 - alpha, and "every" and "some" are read off that one set. The runs off x1 are kept
out of the rest of the comparison (set_aside), so no group pools two values of the key. Pure computation.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from align_lab.results import stats
from align_lab.results.claims import Claim, check_claims
from align_lab.results.extract import final_value, is_completed, number
from align_lab.results.runs import Run, group_label, lookup, run_seed
from align_lab.results.stats import ALPHA, PairedTest, fmt, fmt_ci, fmt_p

TOLERANCE = 0.05  # a run's value is c x m when within 5% of it (3.3e-6 for 1e-5 x 1/3)
HOLDS_EVERY, HOLDS_SOME = "holds at every point", "holds at some points"
REVERSED, NOT_SHOWN, NOT_TESTED = "reversed at some points", "not shown at any point", "not tested"


@dataclass(frozen=True)
class Point:
    label: str  # "x1/3"
    values: tuple[float, float]  # the key's value of arm a's and of arm b's runs here
    test: PairedTest  # a - b by seed, p and Holm p


@dataclass(frozen=True)
class Robustness:
    claim: Claim
    points: tuple[Point, ...]
    verdict: str
    decided_by: str  # the points that decided it, with their Holm p ("x1/3 (Holm p 0.023), x1 (...)")


def point_of(value: float, chosen: float, multipliers: Sequence[float]) -> int | None:
    """The grid point (index of its multiplier m) of a run whose key has `value`: value = chosen x m."""
    if chosen == 0 or not math.isfinite(value):
        return None
    return next((i for i, m in enumerate(multipliers) if abs(value / (chosen * m) - 1) <= TOLERANCE), None)


def chosen_value(values: Sequence[float], multipliers: Sequence[float]) -> float | None:
    """The arm's chosen value: one of its values that puts every value on the grid, the most common such
    (then the smallest); None when none does."""
    counts = Counter(v for v in values if math.isfinite(v))
    fits = [c for c in counts if all(point_of(v, c, multipliers) is not None for v in counts)]
    return min(fits, key=lambda c: (-counts[c], c)) if fits else None


def grid_of(
    runs: Sequence[Run], by: list[str], claim: Claim, arm: str
) -> tuple[float | None, dict[int, int]]:
    """(the arm's chosen value, run index -> grid point) over the arm's completed runs with the key."""
    mine = [i for i, r in enumerate(runs) if is_completed(r) and group_label(r, by) == arm]
    values = {i: number(lookup(runs[i], claim.across)) for i in mine}
    chosen = chosen_value(list(values.values()), claim.multipliers)
    if chosen is None:
        return None, {}
    points = {i: point_of(v, chosen, claim.multipliers) for i, v in values.items()}
    return chosen, {i: p for i, p in points.items() if p is not None}


def set_aside(runs: list[Run], by: list[str], claims: Sequence[Claim]) -> tuple[list[Run], list[str]]:
    """(the runs without those at grid points other than x1, one note per claim that set runs aside)."""
    aside: set[int] = set()
    notes = []
    for c in claims:
        one = c.multipliers.index(1.0)
        mine = {i for arm in (c.a, c.b) for i, p in grid_of(runs, by, c, arm)[1].items() if p != one}
        aside |= mine
        if mine:
            notes.append(
                f"{len(mine)} runs at the grid points of '{c}' other than x1 are kept out of the tables and "
                f"the other claims (a group never pools two values of {c.across}); the robustness lines test "
                "them."
            )
    return [r for i, r in enumerate(runs) if i not in aside], notes


def split_robust(
    runs: list[Run], by: list[str], claims: Sequence[Claim], reported: set[str]
) -> tuple[list[Run], list[Claim], list[Claim], list[str]]:
    """(the runs but those off x1, the other claims, the claims across a grid, the notes); a claim across
    a grid must name groups the runs have and a metric they report (a one-line ValueError)."""
    robust = [c for c in claims if c.across]
    check_claims(robust, sorted({group_label(r, by) for r in runs}), reported)
    kept, notes = set_aside(runs, by, robust)
    return kept, [c for c in claims if not c.across], robust, notes


def per_seed(runs: Sequence[Run], indices: list[int], metric: str) -> dict[int, float]:
    """seed -> the mean final metric of those runs at that seed (finite values only)."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for i in indices:
        value, seed = final_value(runs[i], metric), run_seed(runs[i])
        if seed is not None and math.isfinite(value):
            by_seed[seed].append(value)
    return {s: sum(v) / len(v) for s, v in by_seed.items()}


def robustness(
    runs: list[Run], by: list[str], claims: Sequence[Claim], alpha: float = ALPHA
) -> list[Robustness]:
    """Each robustness claim tested at every grid point, Holm over all their points together."""
    pairs, where = [], []
    for c in claims:
        (ca, a), (cb, b) = grid_of(runs, by, c, c.a), grid_of(runs, by, c, c.b)
        for k, m in enumerate(c.multipliers):
            at = [[i for i, p in arm.items() if p == k] for arm in (a, b)]
            pairs.append((per_seed(runs, at[0], c.metric), per_seed(runs, at[1], c.metric)))
            where.append((c, f"x{c.grid[k]}", (ca or math.nan) * m, (cb or math.nan) * m))
    tests = stats.paired_tests(pairs, [stats.difference_range(c.metric) for c, *_ in where])
    points = [(cc, Point(label, (va, vb), t)) for (cc, label, va, vb), t in zip(where, tests, strict=True)]
    return [verdict(c, tuple(p for cc, p in points if cc is c), alpha) for c in claims]


def verdict(claim: Claim, points: tuple[Point, ...], alpha: float = ALPHA) -> Robustness:
    """Where the claim holds (Holm p < alpha and the claimed sign), where it is reversed, and the words."""
    holds = [p for p in points if p.test.p_holm < alpha and (p.test.diff > 0) == (claim.sign > 0)]
    flips = [p for p in points if p.test.p_holm < alpha and p not in holds]
    if not any(p.test.n for p in points):
        return Robustness(claim, points, NOT_TESTED, "no paired seeds at any point")
    said = holds or flips
    if holds:
        words = HOLDS_EVERY if len(holds) == len(points) else HOLDS_SOME
        words += f"; reversed at {', '.join(p.label for p in flips)}" if flips else ""
    else:
        words = REVERSED if flips else NOT_SHOWN
    decided = ", ".join(f"{p.label} (Holm p {fmt_p(p.test.p_holm)})" for p in said)
    if not said:
        best = min(points, key=lambda p: p.test.p_holm if math.isfinite(p.test.p_holm) else 2.0)
        decided = f"none: the smallest Holm p is {best.label}'s {fmt_p(best.test.p_holm)}"
    return Robustness(claim, points, words, decided)


def robust_lines(results: Sequence[Robustness]) -> list[str]:
    """The terminal's lines: each claim's verdict and the points that decided it, then each point."""
    if not results:
        return []
    total = sum(len(r.points) for r in results)
    n = len(results)
    lines = [f"robustness ({n} claim{'s' * (n > 1)} across a grid, Holm over {total} grid points together):"]
    for r in results:
        lines.append(f"  {r.verdict.upper()} {r.claim}: decided by {r.decided_by}")
        lines += [f"    {point_text(r.claim, p)}" for p in r.points]
    return lines


def point_text(claim: Claim, p: Point) -> str:
    """`x1/3 (rloo algo.lr 3.333e-06, ppo 1e-05): a - b = 0.1 [0.05, 0.15], 8 seeds, p 0.0078, Holm p
    0.023`."""
    t = p.test
    return (
        f"{p.label} ({claim.a} {claim.across} {fmt(p.values[0])}, {claim.b} {fmt(p.values[1])}): a - b = "
        f"{fmt_ci(t.diff, t.lo, t.hi)}, {t.n} seeds, p {fmt_p(t.p)}, Holm p {fmt_p(t.p_holm)}"
    )


def robust_blocks(results: Sequence[Robustness]) -> list:
    """The report's section: each claim's verdict and deciding points, then a row per grid point."""
    from align_lab.results.render import Bullets, Heading, Paragraph, Table

    if not results:
        return []
    header = ["claim", "point", "a's value", "b's value", "pairs", "mean a - b [95% CI]", "p", "Holm p"]
    rows = [
        [str(r.claim), p.label, fmt(p.values[0]), fmt(p.values[1]), str(p.test.n)]
        + [fmt_ci(p.test.diff, p.test.lo, p.test.hi), fmt_p(p.test.p), fmt_p(p.test.p_holm)]
        for r in results
        for p in r.points
    ]
    return [
        Heading("Robustness: claims across a grid of one key"),
        Paragraph(
            "Each claim tested at every point of its grid (each arm's chosen value of the key times each "
            "multiplier; the runs paired by seed, the exact sign-flip test), Holm-corrected over every point "
            f"of these claims together: it holds at a point where the Holm p < {ALPHA} with the claimed "
            "sign, and the points that did so decided the verdict. The runs off x1 are kept out of the "
            "tables above."
        ),
        Bullets([f"{r.verdict.upper()}: {r.claim}: decided by {r.decided_by}" for r in results]),
        Table(header, rows),
    ]
