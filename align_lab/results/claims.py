"""A study's claims as hypotheses: "rloo > ppo on eval/gold_reward" -> reproduced, contradicted or
inconclusive, from the runs paired by seed (the paired sign-flip test and the Student-t CI of the
paired differences), Holm-corrected over the study's claims. Pure computation; report.py renders it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from align_lab.results import stats
from align_lab.results.runs import COMPLETED

if TYPE_CHECKING:
    import pandas as pd

ALPHA = 0.05
SYNTAX = '"<group> > <group> on <metric>" (or <), e.g. "rloo > ppo on eval/gold_reward"'
_CLAIM = re.compile(r"^\s*(?P<a>[^\s<>]+)\s*(?P<op>[<>])\s*(?P<b>[^\s<>]+)\s+on\s+(?P<metric>\S+)\s*$")
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"


@dataclass(frozen=True)
class Claim:
    """`a op b on metric`: the metric of group a is higher (op '>') or lower ('<') than group b's."""

    a: str
    op: str
    b: str
    metric: str

    def __str__(self) -> str:
        return f"{self.a} {self.op} {self.b} on {self.metric}"

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
    return Claim(m["a"], m["op"], m["b"], m["metric"])


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
        if c.metric not in metrics:
            known = ", ".join(sorted(m for m in metrics if "/" in m))
            raise ValueError(f"claim '{c}': no runs report {c.metric!r}; they report {known}")


def claim_verdict(claim: Claim, diff: float, lo: float, hi: float, p_holm: float, n: int) -> tuple[str, str]:
    """(verdict, why) of one claim from the paired difference a - b: its mean, CI and Holm p."""
    if n < 2:
        return INCONCLUSIVE, f"{n} paired seed(s): no test"
    floor = stats.smallest_p_value(n)
    if not p_holm < ALPHA:
        if floor >= ALPHA:
            return INCONCLUSIVE, f"{n} paired seeds: the exact test cannot go below p = {floor:.3g}"
        return INCONCLUSIVE, f"Holm p = {p_holm:.3g} >= {ALPHA}"
    if lo > 0 or hi < 0:
        agrees = (diff > 0) == (claim.sign > 0)
        return (REPRODUCED, "") if agrees else (CONTRADICTED, "significant, in the opposite direction")
    return INCONCLUSIVE, "the CI covers 0"


def claim_table(claims: list[Claim], runs: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: paired seeds, mean a - b with its 95% Student-t CI, p, Holm p, verdict."""
    import pandas as pd

    from align_lab.results.aggregate import mean_ci

    rows = []
    for c in claims:
        done = runs[(runs["status"] == COMPLETED) & runs["seed"].notna() & runs[c.metric].notna()]
        per_seed = done.groupby(["group", "seed"])[c.metric].mean()
        a = per_seed[c.a] if c.a in per_seed.index.get_level_values(0) else pd.Series(dtype=float)
        b = per_seed[c.b] if c.b in per_seed.index.get_level_values(0) else pd.Series(dtype=float)
        seeds = sorted(set(a.index) & set(b.index))
        diffs = np.array([a[s] - b[s] for s in seeds], dtype=float)  # (pairs,)
        n, mean, lo, hi = mean_ci(diffs)
        rows.append(
            {
                "claim": str(c),
                "n_pairs": n,
                "a_mean": float(np.mean([a[s] for s in seeds])) if seeds else math.nan,
                "b_mean": float(np.mean([b[s] for s in seeds])) if seeds else math.nan,
                "diff": mean,
                "diff_lo": lo,
                "diff_hi": hi,
                "p": stats.sign_flip_p_value(diffs),
            }
        )
    columns = ["claim", "n_pairs", "a_mean", "b_mean", "diff", "diff_lo", "diff_hi", "p"]
    table = pd.DataFrame(rows, columns=columns)
    table["p_holm"] = stats.holm(table["p"].to_numpy(dtype=float)) if len(table) else []
    verdicts = [
        claim_verdict(c, r.diff, r.diff_lo, r.diff_hi, r.p_holm, int(r.n_pairs))
        for c, r in zip(claims, table.itertuples(), strict=True)
    ]
    table["verdict"] = [v for v, _ in verdicts]
    table["why"] = [w for _, w in verdicts]
    return table
