"""A study's claims as hypotheses: "rloo > ppo on eval/gold_reward" -> reproduced, contradicted or
inconclusive, from the runs paired by seed (stats.paired_tests: the paired sign-flip test and the
Student-t CI of the paired differences, as in the report's paired tables), Holm-corrected over the
study's claims. The verdict is the test's alone (one story: the words and the p agree); the CI
describes the difference. A claim may name its smallest effect of interest, "... by 0.02" (in the
metric's units), for the seeds-needed line (power.py), and may be read "... at equal <budget>" (kl, or a
compute budget): its two arms' runs at their common point (matched.py) instead of their final values.
Pure computation; report.py renders it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING

from align_lab.results import stats
from align_lab.results.extract import BUDGETS, OVER_STEPS, logged_metric
from align_lab.results.stats import ALPHA
from align_lab.results.tables import per_seed

if TYPE_CHECKING:
    import pandas as pd

SYNTAX = (
    '"<group> > <group> on <metric>" (or <), optionally "... by <smallest effect of interest>" and then '
    '"... at equal <budget>", e.g. "rloo > ppo on eval/gold_reward", "rloo > ppo on eval/pass@1 by 0.02" '
    'or "rloo > ppo on eval/gold_reward at equal kl"; or, tested at each point of a grid of one key '
    '(each arm\'s chosen value times each multiplier, 1 among them), "... across <key> x <multipliers>", '
    'e.g. "rloo > ppo on eval/gold_reward across algo.lr x 1/3,1,3"'
)
_CLAIM = re.compile(
    r"^\s*(?P<a>[^\s<>]+)\s*(?P<op>[<>])\s*(?P<b>[^\s<>]+)\s+on\s+(?P<metric>\S+)"
    r"(?:\s+by\s+(?P<by>\S+))?(?:\s+at\s+equal\s+(?P<at>\S+))?"
    r"(?:\s+across\s+(?P<across>\S+)\s+x\s+(?P<grid>\S+))?\s*$"
)
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"


@dataclass(frozen=True)
class Claim:
    """`a op b on metric`: the metric of group a is higher (op '>') or lower ('<') than group b's."""

    a: str
    op: str
    b: str
    metric: str
    min_effect: float | None = None  # the smallest effect of interest, in the metric's units ("by 0.02")
    at: str | None = None  # "at equal kl": a budget (extract.BUDGETS) the arms are read at; None: final
    across: str | None = None  # "across algo.lr x 1/3,1,3": the key of a robustness grid (robust.py)
    grid: tuple[str, ...] = ()  # its multipliers of each arm's chosen value, as written ("1/3")

    def __str__(self) -> str:
        by = f" by {self.min_effect:g}" if self.min_effect is not None else ""
        at = f" at equal {self.at}" if self.at else ""
        across = f" across {self.across} x {','.join(self.grid)}" if self.across else ""
        return f"{self.a} {self.op} {self.b} on {self.metric}{by}{at}{across}"

    @property
    def multipliers(self) -> tuple[float, ...]:
        return tuple(float(Fraction(m)) for m in self.grid)

    @property
    def column(self) -> str:
        """The runs table's column the claim reads: its metric, or its arms' values at equal <budget>."""
        return f"{self.metric}@{self.at} ({self.a} vs {self.b})" if self.at else self.metric

    @property
    def sign(self) -> int:
        """+1 when the claim says a - b > 0, -1 when it says a - b < 0."""
        return 1 if self.op == ">" else -1


def parse_claim(text: str) -> Claim:
    """One claim from its text; a malformed one is a one-line ValueError naming it and the syntax."""
    m = _CLAIM.match(str(text))
    if not m:
        raise ValueError(f"claim {text!r}: not understood; write {SYNTAX}")
    if m["a"] == m["b"]:
        raise ValueError(f"claim {text!r}: compares {m['a']} with itself")
    claim = Claim(m["a"], m["op"], m["b"], m["metric"], _min_effect(text, m["by"]), _at(text, m))
    return replace(claim, across=m["across"], grid=_grid(text, m)) if m["across"] else claim


def _grid(text: str, m: re.Match) -> tuple[str, ...]:
    """The multipliers after "across <key> x": 2 or more distinct numbers > 0 (fractions such as 1/3
    allowed), 1 among them (the chosen value, whose runs are the study's own); else a one-line ValueError."""
    grid = tuple(m["grid"].split(","))
    try:
        values = [Fraction(g) for g in grid]
    except (ValueError, ZeroDivisionError):
        values = []
    if len(values) < 2 or min(values) <= 0 or len(set(values)) < len(values) or 1 not in values:
        raise ValueError(
            f"claim {text!r}: x {m['grid']}: the grid must be 2 or more distinct multipliers > 0 with 1 "
            "among them (1 is each arm's chosen value), e.g. 1/3,1,3"
        )
    if m["at"]:
        raise ValueError(f"claim {text!r}: a grid ('across') is read at final values, not 'at equal'")
    return grid


def _at(text: str, m: re.Match) -> str | None:
    """The budget after "at equal": one of extract.BUDGETS, for a metric read along the evaluations."""
    if m["at"] is None:
        return None
    if m["at"] not in BUDGETS:
        raise ValueError(f"claim {text!r}: at equal {m['at']}: allowed: {', '.join(BUDGETS)}")
    if OVER_STEPS.match(m["metric"]):
        raise ValueError(f"claim {text!r}: {m['metric']} is over every step: no value at equal {m['at']}")
    return m["at"]


def _min_effect(text: str, by: str | None) -> float | None:
    """The number after "by": finite and > 0, else a one-line ValueError."""
    if by is None:
        return None
    try:
        value = float(by)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"claim {text!r}: by {by}: the smallest effect of interest must be a number > 0")
    return value


def parse_claims(texts) -> list[Claim]:
    """Claims in order, each once."""
    claims: list[Claim] = []
    for text in texts:
        claim = parse_claim(text)
        if claim not in claims:
            claims.append(claim)
    return claims


def check_claims(claims: list[Claim], groups: list[str], metrics: set[str]) -> None:
    """Each claim names groups that exist and a metric the runs report: else a one-line ValueError."""
    for c in claims:
        for g in (c.a, c.b):
            if g not in groups:
                raise ValueError(f"claim '{c}': no group {g!r}; the groups are {', '.join(groups)}")
        if logged_metric(c.metric) not in metrics:
            known = ", ".join(sorted(m for m in metrics if "/" in m))
            raise ValueError(f"claim '{c}': no runs report {c.metric!r}; they report {known}")


def claim_verdict(
    claim: Claim, diff: float, lo: float, hi: float, p_holm: float, n: int, family: int = 1
) -> tuple[str, str]:
    """(verdict, why) of one claim from the paired difference a - b: the exact test's Holm p decides and
    the mean's sign gives the direction; the CI (lo, hi) only adds a word where it disagrees (a skewed
    difference), never a verdict of its own. family: the claims Holm corrects over."""
    if n < 2:
        return INCONCLUSIVE, f"{n} paired seed(s): no test"
    floor = stats.smallest_p_value(n)
    if not p_holm < ALPHA:
        if floor >= ALPHA:
            return INCONCLUSIVE, f"{n} paired seeds: the exact test cannot go below p = {floor:.3g}"
        if floor * family >= ALPHA:  # Holm multiplies the smallest p by the claims still in the step
            return INCONCLUSIVE, (
                f"{n} paired seeds: Holm p cannot go below {family} x {floor:.3g} = {floor * family:.3g} "
                f"over {family} claims"
            )
        return INCONCLUSIVE, f"Holm p = {p_holm:.3g} >= {ALPHA}"
    disagrees = "" if lo > 0 or hi < 0 else "; the t CI covers 0 (skewed differences): read it"
    if (diff > 0) == (claim.sign > 0):
        return REPRODUCED, disagrees.removeprefix("; ")
    return CONTRADICTED, "significant, in the opposite direction" + disagrees


CLAIM_COLUMNS = ["claim", "n_pairs", "a_mean", "b_mean", "diff", "diff_lo", "diff_hi", "p", "p_holm"]


def claim_table(claims: list[Claim], runs: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: paired seeds, mean a - b with its 95% Student-t CI, p, Holm p, verdict."""
    import pandas as pd

    empty = pd.Series(dtype=float)
    pairs = []
    for c in claims:
        by_group = per_seed(runs, c.column)
        pairs.append((by_group.get(c.a, empty), by_group.get(c.b, empty)))
    tests = stats.paired_tests(pairs, [stats.difference_range(c.metric, runs) for c in claims])
    rows = [
        [str(c), t.n, t.a_mean, t.b_mean, t.diff, t.lo, t.hi, t.p, t.p_holm]
        for c, t in zip(claims, tests, strict=True)
    ]
    table = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    verdicts = [
        claim_verdict(c, t.diff, t.lo, t.hi, t.p_holm, t.n, len(claims))
        for c, t in zip(claims, tests, strict=True)
    ]
    table["verdict"] = [v for v, _ in verdicts]
    table["why"] = [w for _, w in verdicts]
    return table


def saved_claims(runs) -> list[str]:
    """The claims the runs' saved configs declare (a study's sweep file `claims:`), in order, once."""
    seen: list[str] = []
    for run in runs:
        for text in run.config.get("claims") or []:
            if str(text) not in seen:
                seen.append(str(text))
    return seen


def check_algorithm_names(claims, by: list[str]) -> None:
    """Grouped by algorithm, a claim must name registered algorithms (checked before reading runs)."""
    if by != ["algo"]:
        return
    from align_lab import registry

    known = registry.choices("algo")
    for c in claims:
        for name in (c.a, c.b):
            if name not in known:
                raise ValueError(f"claim '{c}': no algorithm {name!r}; allowed: {', '.join(known)}")
