"""Seeds-needed lines under no effect and under the effect they are sized for (align_lab/results/power.py):
the post-hoc figure compare printed until 2026-11-28 (80% power at the observed effect and SD) against
the figure it prints now (80% power at a smallest effect of interest, the SD at its 80% upper bound).

For pilots of n0 seeds of normal paired differences (SD 1), each figure's distribution, and what running
that many seeds then gives: the share of fresh fixed designs (paired t test at the family's level) that
decide. Under no effect the post-hoc figure is small and more seeds then fail to decide (they cannot: there
is nothing to find), though the line promised 80% power; the new figure does not depend on the observed
effect, and under a true effect of the effect of interest it delivers at least the promised power.

    python -m benchmarks run seeds_needed [--pilots 2000] [--claims 6] [--effect 0.5]
"""

from __future__ import annotations

import time

import numpy as np

from align_lab.results.seeds import sd_upper, seeds_needed
from align_lab.results.sequential import t_p_values
from benchmarks.harness import arguments, report
from benchmarks.options import at_least, positive

NEEDS = ()
SMOKE = ("--pilots", "40", "--runs", "40")
CAP = 1000  # seeds a fresh design is run with at most (a figure above it counts as CAP)


def decided_share(seeds: list[int], effect: float, level: float, runs: int, rng) -> float:
    """Share of fresh fixed designs, one per figure and `runs` each, that decide at `level` (t test)."""
    hits = 0
    for n in seeds:
        d = rng.standard_normal((runs, min(n, CAP))) + effect  # (runs, n)
        hits += int(np.sum(t_p_values(d) < level))
    return hits / (runs * len(seeds))


def main(argv: list[str] | None = None) -> None:
    p = arguments(__doc__)
    p.add_argument("--pilots", type=at_least(2), default=2000)  # a pilot's SD needs 2 seeds
    p.add_argument("--runs", type=at_least(1), default=200, help="fresh designs per figure")
    p.add_argument("--claims", type=at_least(1), default=6)
    p.add_argument("--effect", type=positive, default=0.5, help="the smallest effect of interest, in SDs")
    a = p.parse_args(argv)
    rng, began, rows = np.random.default_rng(0), time.time(), []
    level = 0.05 / a.claims
    known = seeds_needed(a.effect, 1.0, level)
    print(f"{a.claims} claims (level {level:.3g}); effect of interest {a.effect} SD; SD known: {known} seeds")
    print("n0  figure     under no effect: median [10%, 90%]   share of 2 x n0 or fewer   decided then"
          "   under the effect of interest: decided then")  # fmt: skip
    for n0 in (2, 4, 8):
        pilots = rng.standard_normal((a.pilots, n0))  # (pilots, n0): no effect
        mean, sd = pilots.mean(axis=1), pilots.std(axis=1, ddof=1)
        figures = {
            "post-hoc": [seeds_needed(m, s, level) or CAP for m, s in zip(mean, sd, strict=True)],
            "now": [seeds_needed(a.effect, sd_upper(s, n0), level) or CAP for s in sd],
        }
        for name, seeds in figures.items():
            q10, q50, q90 = np.percentile(seeds, [10, 50, 90])
            small = float(np.mean(np.array(seeds) <= 2 * n0))
            null = decided_share(seeds[:200], 0.0, level, a.runs, rng)
            real = decided_share(seeds[:200], a.effect, level, a.runs, rng)
            print(
                f"{n0:<3} {name:<10} {q50:6.0f} [{q10:.0f}, {q90:.0f}]{'':<17} {small:<26.3f} "
                f"{null:<15.3f} {real:.3f}"
            )
            rows.append({"n0": n0, "figure": name, "median": q50, "p10": q10, "p90": q90,
                         "share_small": small, "decided_null": null, "decided_effect": real})  # fmt: skip
    print(f"({time.time() - began:.0f} s)")
    report("seeds_needed", a, rows, ["n0", "figure", "median", "p10", "decided_null", "decided_effect"])


if __name__ == "__main__":
    main()
