"""The runs table (one row per run, results/extract.py) -> per-group tables and paired tables.

Only completed runs enter statistics. Runs are paired by seed, a seed's runs averaged; the paired
statistics themselves are `stats.paired_tests`, which the claims (claims.py) use too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from align_lab.results import stats
from align_lab.results.comparison import SFT, sft_label
from align_lab.results.runs import COMPLETED, NEVER_POOLED, Run, format_value, lookup

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd


def per_seed(runs: pd.DataFrame, column: str, require: str | None = None) -> dict[str, pd.Series]:
    """group -> its per-seed mean of `column`, over completed runs with a seed, a value of `column`
    and (if given) of `require`; {} when no run has the column."""
    if column not in runs.columns:
        return {}
    keep = (runs["status"] == COMPLETED) & runs["seed"].notna() & runs[column].notna()
    if require is not None:
        keep &= runs[require].notna()
    done = runs[keep]
    # runs of one config and seed (one run trained twice) first averaged into one, as the group's row
    # counts them (once_per_config): the paired mean used all of them, the row one (seventh hunt of
    # 2026-12-04, cp1: the row's 0.3104 against the pairing's 0.3088 in one group)
    digest = done["config_digest"] if "config_digest" in done else done.index.to_series().astype(str)
    config = digest.where(digest.astype(bool), done.index.to_series().astype(str)).rename("config")
    cells = done.groupby([done["group"], done["seed"], config])[column].mean()
    means = cells.groupby(level=[0, 1]).mean()
    return {g: means[g] for g in set(means.index.get_level_values(0))}


def group_table(runs: pd.DataFrame, groups: list[str], columns: list[str]) -> pd.DataFrame:
    """Per group: n completed, excluded (other statuses), and `<col>:n|mean|lo|hi` for each column: n the
    runs averaged (completed runs with a finite value), the CI kept in the metric's range (metric_ci)."""
    import pandas as pd

    rows = []
    for g in groups:
        mine = runs[runs["group"] == g]
        completed = mine[mine["status"] == COMPLETED]
        done = once_per_config(completed, columns)
        row: dict = {"group": g, "n": len(done), "excluded": len(mine) - len(completed)}
        for col in columns:
            row[f"{col}:n"], row[f"{col}:mean"], row[f"{col}:lo"], row[f"{col}:hi"] = stats.metric_ci(
                col, done[col].to_numpy(), runs
            )
        rows.append(row)
    return pd.DataFrame(rows)


def once_per_config(done: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A group's completed runs with those of one config and seed (summary.json `config_digest`: one run
    trained twice, `seed=0,1,1`) averaged into one row: counted twice, one seed was read as two, its value
    weighed double and the CI's n one too many (fortieth hunt, case 41). Runs of one seed but other
    configs (`--by seed`'s groups) stay apart."""
    if "config_digest" not in done or not done["config_digest"].astype(bool).any():
        return done
    keys = done["config_digest"].where(done["config_digest"].astype(bool) & done["seed"].notna())
    keys = keys.fillna(done.index.to_series().astype(str)) + "|" + done["seed"].astype(str)
    return done.groupby(keys.to_numpy(), sort=False)[columns].mean()


def has_sft(runs: pd.DataFrame, metric: str) -> bool:
    """Whether a completed run reports the metric's SFT value (`<metric>_sft`)."""
    column = f"{metric}_sft"
    return bool(column in runs and runs.loc[runs["status"] == COMPLETED, column].notna().any())


def sft_row(runs: pd.DataFrame, columns: list[str]) -> dict:
    """The group table's SFT row: per column with `<col>_sft` values, their mean and CI over seeds
    (a seed's completed runs averaged: they evaluated the same SFT policy with that seed); n = seeds."""
    done = runs[(runs["status"] == COMPLETED) & runs["seed"].notna()]
    row: dict = {"group": SFT, "excluded": 0}
    seeds: set = set()
    for col in columns:
        by_seed = done.groupby("seed")[f"{col}_sft"].mean().dropna() if f"{col}_sft" in done else None
        seeds |= set() if by_seed is None else set(by_seed.index)
        values = np.array([]) if by_seed is None else by_seed.to_numpy(float)  # (seeds,)
        row[f"{col}:n"], row[f"{col}:mean"], row[f"{col}:lo"], row[f"{col}:hi"] = stats.metric_ci(
            col, values, runs
        )
    row["n"] = len(seeds)
    return row


def sft_references(runs: list[Run], by: list[str]) -> list[str]:
    """Each run's SFT row: "SFT (task=..., model=...)" by the task and model keys of `by` where the runs
    differ in them (compare splits those, never pools them), else "SFT". Runs of two tasks started from
    two SFT policies: one row averaging both would be neither's reference."""
    keys = [k for k in by if k in NEVER_POOLED]
    labels = [", ".join(f"{k}={format_value(lookup(r, k))}" for k in keys) for r in runs]
    return [sft_label(label) if len(set(labels)) > 1 else SFT for label in labels]


def sft_rows(runs: pd.DataFrame, columns: list[str], metric: str) -> list[dict]:
    """The group table's SFT rows: one sft_row per `sft_reference` of the runs table (one "SFT" row when
    the column is absent), each where its runs report the metric's SFT value."""
    refs = runs["sft_reference"] if "sft_reference" in runs else [SFT] * len(runs)
    rows = []
    for label in sorted(set(refs)):
        mine = runs[[r == label for r in refs]]
        if has_sft(mine, metric):
            rows.append(sft_row(mine, columns) | {"group": label})
    return rows


def verdict(
    diff: float, lo: float, hi: float, p_adjusted: float, n: int, baseline: str, family: int = 1
) -> str:
    """A plain-language reading of a paired difference from the exact test alone (its Holm p over a
    family of `family` tests): the words and the p tell one story. The CI (lo, hi) beside them describes
    the difference; it decides nothing, so that a group is never "higher (CI excludes 0)" beside Holm p 1."""
    if n == 0:
        return "no seeds in common with the baseline"
    if n == 1:
        return "one paired seed: no test"
    if p_adjusted < stats.ALPHA:
        return f"{'higher' if diff > 0 else 'lower'} than {baseline}, beyond seed noise"
    floor = min(1.0, stats.smallest_p_value(n) * max(1, family))  # the smallest Holm p n seeds can give
    if floor >= stats.ALPHA:
        over = f" over {family} groups" if family > 1 else ""
        return f"not decided: {n} seeds cannot reach Holm p < {stats.ALPHA}{over}"
    return f"not decided (Holm p {p_adjusted:.3g} >= {stats.ALPHA})"


def none_completed(runs: pd.DataFrame, group: str) -> str | None:
    """`no completed run (2 failed): see Runs` for a group none of whose runs completed (issue 73: it read
    "no seeds in common with the baseline", as if its seeds were the wrong ones); else None."""
    statuses = runs.loc[runs["group"] == group, "status"].value_counts()
    if not len(statuses) or COMPLETED in statuses:
        return None
    listed = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    return f"no completed run ({listed}): see Runs"


def no_value(runs: pd.DataFrame, group: str, column: str) -> str | None:
    """`none of its 3 completed runs has a value of eval/gold_reward ...` for a group whose completed runs
    all lack the metric (NaN in summary.json: the fifth hunt found it read "no seeds in common with the
    baseline"); else None."""
    done = runs[(runs["group"] == group) & (runs["status"] == COMPLETED)]
    if not len(done) or column not in done or done[column].notna().any():
        return None
    return f"none of its {len(done)} completed runs has a value of {column} (NaN or none in summary.json)"


def other_setting(runs: pd.DataFrame, group: str, baseline: str) -> str | None:
    """Why `group` is not paired with the group `baseline`: its runs are of another task (or model), which
    started from another SFT policy on another scale (issue 73: a compute-matched view and --baseline
    paired two tasks' numbers as one's difference); None when they share it, or against SFT."""
    if baseline == SFT or "sft_reference" not in runs:
        return None
    mine, theirs = ({*runs.loc[runs["group"] == g, "sft_reference"]} for g in (group, baseline))
    if not theirs or mine == theirs:
        return None
    setting = ", ".join(sorted(r.removeprefix(f"{SFT} (").removesuffix(")") for r in mine))
    return (
        f"{setting}, unlike {baseline}: never paired across tasks or models (two scales); compare it with "
        "a group of its own"
    )


PAIRED_COLUMNS = ["group", "baseline", "n_pairs", "seeds", "group_mean", "baseline_mean"]
PAIRED_COLUMNS += ["diff", "diff_lo", "diff_hi", "diff_sd", "p", "p_holm", "verdict"]


def paired_table(
    runs: pd.DataFrame, column: str, groups: list[str], baseline: str | Mapping[str, str]
) -> pd.DataFrame:
    """Each group vs the baseline (or its own: `baseline` a group -> baseline map) on `column`, runs
    paired by seed (a seed's runs averaged).

    Baseline SFT: each group's runs against their own `<column>_sft`, the SFT reference they started from.
    diff = group - baseline per seed; mean diff, Student-t CI of the differences, exact sign-flip p
    (Monte-Carlo above 30 pairs), Holm-adjusted across the compared groups (stats.paired_tests).
    """
    import pandas as pd

    base = {g: baseline for g in groups} if isinstance(baseline, str) else dict(baseline)
    by_group = per_seed(runs, column)
    own_sft = per_seed(runs, f"{column}_sft", require=column)
    empty = pd.Series(dtype=float)
    compared = [g for g in groups if g != base[g]]
    apart = {g: why for g in compared if (why := other_setting(runs, g, base[g]))}
    # SFT: each run against its own reference (the same evaluation of the policy it started from)
    bases = [own_sft.get(g, empty) if base[g] == SFT else by_group.get(base[g], empty) for g in compared]
    pairs = [
        (empty, empty) if g in apart else (by_group.get(g, empty), b)
        for g, b in zip(compared, bases, strict=True)
    ]
    tests = stats.paired_tests(pairs, [stats.difference_range(column, runs)] * len(pairs))
    family = sum(t.n > 0 for t in tests)  # Holm's family: a group with no run to pair is none (43rd, 15)
    rows = [
        {
            "group": g,
            "baseline": base[g],
            "n_pairs": t.n,
            "seeds": ",".join(str(int(s)) for s in t.seeds),
            "group_mean": t.a_mean,
            "baseline_mean": t.b_mean,
            "diff": t.diff,
            "diff_lo": t.lo,
            "diff_hi": t.hi,
            "diff_sd": t.sd,
            "p": t.p,
            "p_holm": t.p_holm,
            "verdict": apart.get(g)
            or (t.n == 0 and (none_completed(runs, g) or no_value(runs, g, column)))
            or verdict(t.diff, t.lo, t.hi, t.p_holm, t.n, base[g], family),
        }
        for g, t in zip(compared, tests, strict=True)
    ]
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)
