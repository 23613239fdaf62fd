"""The report's notes on the compute-matched (KL-matched) view: final metrics at unequal compute, runs
the view cannot place or read, and the group the view pairs with where the baseline has no value there.
Each task (model) is its own scale: its runs' budgets are compared among themselves."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from align_lab.results.comparison import SFT, Comparison
from align_lab.results.extract import BUDGETS
from align_lab.results.runs import COMPLETED

if TYPE_CHECKING:
    import pandas as pd

UNEQUAL_COMPUTE = 1.10  # final budgets differing by more than 10% are called unequal


def matched_baseline_notes(
    base: str, matched_base: str, at_kl: bool = False, each: bool = False
) -> list[str]:
    """Which group the matched view pairs with where the baseline has no value there; `each`: the runs
    span several SFT references (tasks, models), each paired within its own."""
    view = "KL-matched" if at_kl else "compute-matched"
    if matched_base == base:
        return []
    if base == SFT:
        equal = "at one KL, where SFT (KL 0)" if at_kl else "at equal compute, where SFT (no compute)"
        within = ", each within its own task (model)" if each else ""
        return [
            f"The {view} view compares groups {equal} has no value; there groups are paired with "
            f"{matched_base}{within}."
        ]
    return [f"The baseline {base} is not in the {view} view; there groups are paired with {matched_base}."]


def budget_notes(runs: pd.DataFrame, budget_key: str, label: str) -> list[str]:
    done = runs[runs["status"] == COMPLETED]
    finals = done[budget_key]
    refs = done["sft_reference"] if "sft_reference" in done else finals.map(lambda _: SFT)
    notes = []
    for ref in sorted(set(refs)):  # tasks (models) are two scales: each its own range and common budget
        ok = finals[(refs == ref) & (finals > 0)]
        if len(ok) and ok.max() > UNEQUAL_COMPUTE * ok.min():
            lo, hi = done.loc[ok.idxmin()], done.loc[ok.idxmax()]
            # "the runs of SFT (task=...)" read as SFT's runs, which use no compute (hunt 76, cm1)
            among = f" among the runs of {ref.removeprefix(f'{SFT} (').removesuffix(')')}" * (
                refs.nunique() > 1
            )
            notes.append(
                f"Final metrics are at unequal compute{among}: {label} range from {lo[budget_key]:,.0f} "
                f"({lo['group']}, seed {lo['seed']:g}) to {hi[budget_key]:,.0f} ({hi['group']}, seed "
                f"{hi['seed']:g}); the compute-matched view compares {'them' if among else 'every group'} "
                "at the same budget."
            )
    lacking = sorted(set(done.loc[~(finals > 0), "group"]))
    if lacking:
        hint = "" if budget_key == BUDGETS["trained_tokens"] else "; --budget trained_tokens places them"
        notes.append(
            f"Not in the compute-matched view (no {label} used or logged, e.g. offline pairwise "
            f"training): {', '.join(lacking)}{hint}."
        )
    return notes


def unvalued_notes(c: Comparison) -> list[str]:
    """Completed runs that used the budget but have no value at the common budget: none of their
    evaluations lies at or below it and the metric has no SFT value to start their curves at 0."""
    table, key, label = c.runs, BUDGETS[c.budget], c.budget.replace("_", " ")
    done = table[(table["status"] == COMPLETED) & (table[key] > 0)]
    missing = done[done[f"{c.metric}@{c.budget}"].isna()]
    if missing.empty:
        return []
    counts = Counter(missing["group"])
    at = c.common_said(label) if c.common_by else f"{c.common_budget:,.4g} {label}"
    listed = ", ".join(f"{g} ({n} of {sum(done['group'] == g)} runs)" for g, n in sorted(counts.items()))
    return [
        f"No value at the common budget ({at}) for {listed}: none of their "
        f"evaluations is at or below it and {c.metric} has no SFT value to start their curves at 0, so the "
        "compute-matched view leaves them out; an earlier evaluation (train.eval_every) or another --budget "
        "places them."
    ]
