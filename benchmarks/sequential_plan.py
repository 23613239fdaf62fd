"""The sequential plan of docs/studies.md by simulation: its look levels, its family-wise error rate
when every claim is null (continuous and discrete laws, the latter also under the paired t-test the plan
used before 2026-11-28), and its expected seeds per arm under a true effect against the fixed design of the
same per-claim power (align_lab/results/sequential.py).

    python -m benchmarks run sequential_plan [--studies 20000] [--start 4 --wave 4 --max-seeds 24]
        [--exact-boundary]
"""

from __future__ import annotations

import time

import numpy as np

from align_lab.results.sequential import (
    Plan,
    check_plan,
    look_levels,
    look_seeds,
    look_thresholds,
    t_p_values,
)
from align_lab.results.sequential_simulation import expected_seeds, fwer
from benchmarks.harness import arguments, report
from benchmarks.options import at_least

NEEDS = ()
SMOKE = ("--studies", "200", "--power-studies", "100", "--max-seeds", "12")

REAL_CLAIMS = [(2, 0), (2, 5), (3, 4), (3, 0), (1, 0), (1, 0)]  # sweeps/real_arith.yaml's arms per claim


def shared_arms(draw_arm):
    """Null claims as differences of six identical arms with the real study's claim graph (its first
    --claims claims, repeated past six)."""

    def draw(shape):
        arms = draw_arm((shape[0], 6, shape[2]))  # (studies, arms, seeds)
        graph = [REAL_CLAIMS[j % len(REAL_CLAIMS)] for j in range(shape[1])]
        return np.stack([arms[:, a] - arms[:, b] for a, b in graph], axis=1)  # (studies, claims, seeds)

    return draw


def pass_at_1(rng, questions: int = 32, samples: int = 2):
    """An arm's pass@1 over 32 questions x 2 samples (solve rates 0.03-0.97): a grid of 1/64, ties."""
    solve = np.linspace(0.03, 0.97, questions)  # (questions,)
    return lambda s: (rng.random((*s, questions, samples)) < solve[:, None]).mean(axis=(-2, -1))


def win_rate(rng, prompts: int = 72):
    """An arm's win rate over 72 judged prompts: win / tie / loss 0.80 / 0.05 / 0.15 (rates near 0.82)."""
    return lambda s: rng.choice([1.0, 0.5, 0.0], p=[0.80, 0.05, 0.15], size=(*s, prompts)).mean(axis=-1)


def null_laws(rng) -> dict:
    """name -> (draw, symmetric): the differences' law when no claim holds."""
    return {
        "normal differences": (lambda s: rng.standard_normal(s), True),
        "heavy-tailed differences (t, 3 df)": (lambda s: rng.standard_t(3, s), True),
        "identical lognormal arms, real claim graph": (shared_arms(lambda s: rng.lognormal(0, 1, s)), True),
        "identical exponential arms, real claim graph": (shared_arms(lambda s: rng.exponential(1, s)), True),
        "differences in {-1, 0, +1}": (lambda s: rng.integers(-1, 2, s).astype(float), True),
        "pass@1 over 32 x 2 draws, real claim graph": (shared_arms(pass_at_1(rng)), True),
        "win rate over 72 prompts, real claim graph": (shared_arms(win_rate(rng)), True),
        "skewed mean-0 differences (exponential - 1)": (lambda s: rng.exponential(1, s) - 1, False),
    }


def main(argv: list[str] | None = None) -> None:
    p = arguments(__doc__)
    p.add_argument("--studies", type=at_least(1), default=20_000)
    p.add_argument("--power-studies", type=at_least(1), default=4_000, help="studies per effect size")
    p.add_argument("--start", type=at_least(1), default=4)
    p.add_argument("--wave", type=at_least(1), default=4)
    p.add_argument("--max-seeds", type=at_least(1), default=24)
    p.add_argument("--claims", type=at_least(1), default=6)
    p.add_argument("--exact-boundary", action="store_true", help="also the exact boundary (comparison only)")
    a = p.parse_args(argv)
    rows = []
    plan, rng, began = Plan(a.start, a.wave, a.max_seeds), np.random.default_rng(0), time.time()
    try:
        check_plan(plan)  # what a study's plan= is held to (plan.start >= 2, plan.max_seeds >= plan.start)
    except ValueError as e:
        p.error(f"{e} (--start, --wave, --max-seeds)")
    print(
        f"plan start {plan.start}, wave {plan.wave}, max_seeds {plan.max_seeds}, alpha {plan.alpha}, "
        f"{a.claims} claims"
    )
    print("looks (seeds per arm):", look_seeds(plan))
    print("alpha spent by look:  ", " ".join(f"{x:.5f}" for x in look_levels(plan, claims=a.claims)))
    print("(before 2026-11-29: carried by 2/2^n alone):", " ".join(f"{x:.5f}" for x in look_levels(plan)))
    print("(before: t-test, none carried):", " ".join(f"{x:.5f}" for x in look_levels(plan, carry=False)))
    if a.exact_boundary:
        table = look_thresholds(plan, a.claims, exact=True)  # (looks, claims + 1)
        for r in (a.claims, 1):
            print(
                f"exact boundary (comparison only), nominal p-level at alpha/{r}:",
                " ".join(f"{x:.2g}" for x in table[:, r]),
            )
    cases = [("sign-flip", "Bonferroni across looks, exact sign-flip test (the procedure)", {})]
    cases += [("t-test", "Bonferroni across looks, paired t-test (before 2026-11-28)", {"test": t_p_values})]
    cases += [("exact", "exact boundary (comparison only)", {"exact": True})] if a.exact_boundary else []
    for tag, name, how in cases:
        print(f"{name}: family-wise error rate, every claim null ({a.studies} studies):")
        for law, (draw, symmetric) in null_laws(rng).items():
            began_law = time.time()
            rate, se = fwer(plan, draw, a.claims, a.studies, **how)
            mark = "" if symmetric else "   (not symmetric: outside what the test promises)"
            print(f"  {law:<46} {rate:.4f} (SE {se:.4f}) {time.time() - began_law:5.0f} s{mark}")
            rows.append({"boundary": tag, "case": law, "fwer": rate, "se": se})
        if tag == "t-test":
            continue
        print(f"  every claim with a true effect (normal differences, {a.power_studies} studies):")
        print("  effect  power   E[seeds per arm] sequential   fixed t-test design, same power")
        for effect in (0.5, 0.75, 1.0, 1.5, 2.0):
            r = expected_seeds(plan, effect, a.claims, a.power_studies, rng, exact=how.get("exact", False))
            print(f"  {effect:<6g}  {r['power']:.3f}   {r['expected_seeds']:<28.1f} {r['fixed_seeds']}")
            case = f"effect {effect:g}: power {r['power']:.3f}, fixed design {r['fixed_seeds']} seeds"
            rows.append({"boundary": tag, "case": case, **r})
    print(f"({time.time() - began:.0f} s)")
    report("sequential_plan", a, rows, ["boundary", "case", "fwer", "se", "expected_seeds"])


if __name__ == "__main__":
    main()
