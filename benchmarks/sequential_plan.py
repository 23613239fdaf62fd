"""The sequential plan of docs/studies.md by simulation: its look levels, its family-wise error rate
when every claim is null, and its expected seeds per arm under a true effect against the fixed design
of the same per-claim power (align_lab/results/sequential.py).

    python -m benchmarks run sequential_plan [--studies 100000] [--start 4 --wave 4 --max-seeds 24]
"""

from __future__ import annotations

import time

import numpy as np

from align_lab.results.sequential import Plan, expected_seeds, fwer, look_levels, look_seeds, look_thresholds
from benchmarks.harness import arguments, report

NEEDS = ()
SMOKE = ("--studies", "200", "--power-studies", "200")

REAL_CLAIMS = [(2, 0), (2, 5), (3, 4), (3, 0), (1, 0), (1, 0)]  # sweeps/real_arith.yaml's arms per claim


def shared_arms(rng, draw_arm):
    def draw(shape):
        arms = draw_arm((shape[0], 6, shape[2]))  # (studies, arms, seeds)
        return np.stack([arms[:, a] - arms[:, b] for a, b in REAL_CLAIMS], axis=1)

    return draw


def main(argv: list[str] | None = None) -> None:
    p = arguments(__doc__)
    p.add_argument("--studies", type=int, default=100_000)
    p.add_argument("--power-studies", type=int, default=20_000, help="studies per effect size")
    p.add_argument("--start", type=int, default=4)
    p.add_argument("--wave", type=int, default=4)
    p.add_argument("--max-seeds", type=int, default=24)
    p.add_argument("--claims", type=int, default=6)
    a = p.parse_args(argv)
    rows = []
    plan, rng, began = Plan(a.start, a.wave, a.max_seeds), np.random.default_rng(0), time.time()
    print(
        f"plan start {plan.start}, wave {plan.wave}, max_seeds {plan.max_seeds}, alpha {plan.alpha}, "
        f"{a.claims} claims"
    )
    print("looks (seeds per arm):", look_seeds(plan))
    print("alpha spent by look:  ", " ".join(f"{x:.5f}" for x in look_levels(plan)))
    table = look_thresholds(plan, a.claims, exact=True)  # (looks, claims + 1)
    for r in (a.claims, 1):
        print(
            f"exact boundary (comparison only), nominal p-level at alpha/{r}:",
            " ".join(f"{x:.2g}" for x in table[:, r]),
        )
    nulls = {
        "normal differences": lambda s: rng.standard_normal(s),
        "heavy-tailed differences (t, 3 df)": lambda s: rng.standard_t(3, s),
        "identical lognormal arms, real claim graph": shared_arms(rng, lambda s: rng.lognormal(0, 1, s)),
        "identical exponential arms, real claim graph": shared_arms(rng, lambda s: rng.exponential(1, s)),
        "skewed mean-0 differences (exponential - 1)": lambda s: rng.exponential(1, s) - 1,
    }
    for exact in (False, True):
        name = "exact boundary (comparison only)" if exact else "Bonferroni across looks (the procedure)"
        print(f"{name}: family-wise error rate, every claim null ({a.studies} studies):")
        for law, draw in nulls.items():
            rate, se = fwer(plan, draw, a.claims, a.studies, exact=exact)
            print(f"  {law:<46} {rate:.4f} (SE {se:.4f})")
            rows.append({"boundary": "exact" if exact else "bonferroni", "case": law, "fwer": rate, "se": se})
        print(f"  every claim with a true effect (normal differences, {a.power_studies} studies):")
        print("  effect  power   E[seeds per arm] sequential   fixed design, same power")
        for effect in (0.5, 0.75, 1.0, 1.5, 2.0):
            r = expected_seeds(plan, effect, a.claims, a.power_studies, rng, exact=exact)
            print(f"  {effect:<6g}  {r['power']:.3f}   {r['expected_seeds']:<28.1f} {r['fixed_seeds']}")
            case = f"effect {effect:g}: power {r['power']:.3f}, fixed design {r['fixed_seeds']} seeds"
            rows.append({"boundary": "exact" if exact else "bonferroni", "case": case, **r})
    print(f"({time.time() - began:.0f} s)")
    report("sequential_plan", a, rows, ["boundary", "case", "fwer", "se", "expected_seeds"])


if __name__ == "__main__":
    main()
