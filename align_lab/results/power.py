"""Power and the variance split of a claim: how many seeds would decide it, and whether more
evaluation samples or more seeds is the cheaper way there (Colas et al. 2018, "How many random seeds?").

For a claim "a > b on eval/X", the runs paired by seed give differences D_s = X_a(s) - X_b(s), with
  Var(D) = sigma^2_eval + sigma^2_seed
where sigma^2_eval is the variance the evaluation's sampling adds to one seed's difference (read from
the runs' per-sample records, eval_samples.jsonl) and sigma^2_seed the rest (training).
For one seed, matched on (prompt_id, sample) at each run's final step, d_ij = x^a_ij - x^b_ij
(common random numbers share the draws; the pairing keeps their covariance) and
  Var_eval(mean d) = (1/P^2) * sum_i s_i^2 / n_i
(s_i^2 the unbiased variance of d over prompt i's n_i samples: the prompts are fixed, only sampling
varies; with one sample per prompt, var(d) / N). sigma^2_eval is its mean over seeds, and
sigma^2_seed = max(0, var_s(D_s) - sigma^2_eval). Metrics without a per-sample field (time/*, train/*)
are all between-seed variance.

Seeds needed, sized so that they cannot mislead (not post-hoc power from the observed effect, which
under no effect prints a small number that more seeds then fail to reach: benchmarks/seeds_needed.py):
the seeds per arm with which a fixed design at the family's level (alpha / claims, the level Holm gives
the worst-ranked claim) has 80% power against a smallest effect of interest delta: the claim's own
("... by 0.02", in the metric's units), sized against the one-sided 80% upper confidence bound of the
observed SD (chi-square on n - 1 df: a few seeds under-estimate it as often as not); else
DEFAULT_MIN_EFFECT_SD SDs of the differences (compare's --min-effect), an effect size that needs the same
seeds whatever the SD, so sized at that many SDs (one story: until 2026-11-29 0.5 x the observed SD
against the upper bound, 0.24-0.37 SD of it). The figure is the paired t test's (statsmodels'
TTestPower at delta / SD), at least the exact sign-flip test's floor (stats.smallest_p_value(n) = 2 / 2^n
must fall below the level). Every line says what it rests on: the seeds, the SD, delta and where delta
came from; an observed effect against the claim's direction is named. With k times the evaluation samples per
prompt, sigma^2_eval / k replaces sigma^2_eval, sigma^2_eval capped at Var(D) (an estimate above it made
more samples need more seeds). Differences all 0 are decided by no number of seeds: no figure. Pure
computation, apart from reading the records.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from align_lab.results import stats
from align_lab.results.runs import COMPLETED
from align_lab.results.seeds import (  # noqa: F401 (the seeds sizing: power's API too)
    DEFAULT_MIN_EFFECT_SD,
    POWER,
    SD_CONFIDENCE,
    pair_seeds,
    sd_upper,
    seeds_needed,
    sign_flip_floor,
    smallest_pairs,
    t_test_seeds,
)
from align_lab.results.tables import per_seed
from align_lab.tracking.samples import SAMPLES_FILE, read_samples

if TYPE_CHECKING:
    import pandas as pd

    from align_lab.results.claims import Claim

EVAL_FACTORS = (2, 4)  # evaluation samples per prompt multiplied by these
Key = tuple[int, int]  # (prompt_id, sample)


def final_records(path: Path) -> tuple[list[dict] | None, str]:
    """(the records of the file's final step, its largest `step`; or None) and why not: a missing
    file, no readable line. Torn lines are skipped (tracking.samples.read_samples)."""
    if not path.is_file():
        return None, f"no {SAMPLES_FILE}"
    records, _ = read_samples(path)
    if not records:
        return None, f"no readable record in {SAMPLES_FILE}"
    last = max(r["step"] for r in records)
    return [r for r in records if r["step"] == last], ""


def field_values(records: list[dict], field: str) -> dict[Key, float]:
    """(prompt_id, sample) -> the record's finite value of `field`."""
    out = {}
    for r in records:
        value = r.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[(int(r.get("prompt_id", -1)), int(r.get("sample", -1)))] = float(value)
    return out


def eval_variance(a: dict[Key, float], b: dict[Key, float]) -> float:
    """Variance of mean(x^a - x^b) due to evaluation sampling, over the keys a and b share:
    (1/P^2) sum_i s_i^2 / n_i when every prompt has >= 2 samples, else var(d) / N; NaN below 2 pairs."""
    by_prompt: dict[int, list[float]] = defaultdict(list)
    for key in sorted(set(a) & set(b)):
        by_prompt[key[0]].append(a[key] - b[key])
    d = np.array([x for xs in by_prompt.values() for x in xs])  # (N,)
    if len(d) < 2:
        return math.nan
    if min(len(xs) for xs in by_prompt.values()) < 2:  # one sample per prompt: samples independent
        return float(d.var(ddof=1)) / len(d)
    per_prompt = [np.var(xs, ddof=1) / len(xs) for xs in by_prompt.values()]  # s_i^2 / n_i
    return float(np.sum(per_prompt)) / len(by_prompt) ** 2


@dataclass(frozen=True)
class ClaimPower:
    claim: str
    n: int  # paired seeds
    effect: float  # mean a - b
    lo: float  # 95% Student-t CI of the mean a - b, in the difference's range
    hi: float
    sd: float  # SD of the paired differences
    eval_var: float  # sigma^2_eval; NaN when unknown
    seed_var: float  # sigma^2_seed; NaN when unknown
    min_effect: float  # the smallest effect of interest the seeds are sized for (metric units); NaN: no SD
    min_effect_set: bool  # the claim named it ("by <effect>"); else DEFAULT_MIN_EFFECT_SD x sd
    level: float  # the fixed design's level per claim: alpha / claims
    seeds: int | None  # for 80% power against min_effect at `level`, the SD at its upper bound
    seeds_more_eval: dict[int, int | None]  # eval factor k -> seeds with k x the samples per prompt
    note: str  # why the split is unknown, or what it means
    against: bool = False  # the observed effect's sign is against the claim's direction

    @property
    def covers_zero(self) -> bool:
        return not (self.lo > 0 or self.hi < 0)

    @property
    def all_zero(self) -> bool:
        """Every paired difference is 0: no number of seeds decides the claim (the sign-flip p is 1)."""
        return self.n >= 2 and self.sd == 0 and self.effect == 0


def _split(total: float, eval_var: float) -> float:
    """sigma^2_seed = max(0, Var(D) - sigma^2_eval); NaN when either is unknown (below 2 seeds)."""
    return max(0.0, total - eval_var) if math.isfinite(eval_var) and math.isfinite(total) else math.nan


def seed_eval_variance(runs: pd.DataFrame, claim: Claim, seed: float, field: str) -> tuple[float, str]:
    """One seed's evaluation variance of the claim's difference, or (NaN, why)."""
    done = runs[(runs["status"] == COMPLETED) & (runs["seed"] == seed)]
    records = []
    for group in (claim.a, claim.b):
        folders = list(done.loc[done["group"] == group, "folder"])
        if len(folders) != 1:
            return math.nan, f"{len(folders)} runs of {group} at seed {seed:g}"
        found, why = final_records(Path(folders[0]) / SAMPLES_FILE)
        if found is None:
            return math.nan, why
        records.append(field_values(found, field))
    var = eval_variance(*records)
    return var, "" if math.isfinite(var) else f"records without {field!r}"


def claim_power(
    claim: Claim, runs: pd.DataFrame, alpha: float, min_effect_sd: float = DEFAULT_MIN_EFFECT_SD
) -> ClaimPower:
    """The effect, its SD split into evaluation and seeds, and the seeds needed, of one claim."""
    empty: dict = {}
    by_group = per_seed(runs, claim.metric)
    a, b = by_group.get(claim.a, empty), by_group.get(claim.b, empty)
    seeds = sorted(set(a.keys()) & set(b.keys()))
    diffs = np.array([a[s] - b[s] for s in seeds], dtype=float)  # (seeds,)
    n, effect, lo, hi = stats.mean_ci(diffs)
    lo, hi = stats.clip_ci(lo, hi, stats.difference_range(claim.metric, runs))
    total = float(diffs.var(ddof=1)) if n >= 2 else math.nan
    sd = math.sqrt(total) if n >= 2 else math.nan
    if not claim.metric.startswith("eval/"):
        eval_var, note = 0.0, "not an evaluation metric: all between-seed variance"
    else:
        field = claim.metric.removeprefix("eval/")
        found = [seed_eval_variance(runs, claim, s, field) for s in seeds]
        whys = sorted({why for _, why in found if why})
        eval_var = float(np.mean([v for v, _ in found])) if found and not whys else math.nan
        note = f"eval split unknown ({'; '.join(whys)})" if whys else ""
    if math.isfinite(eval_var) and math.isfinite(total) and eval_var > total:
        note = (note + "; " if note else "") + (
            f"evaluation variance {eval_var:.3g} > the differences' {total:.3g}: capped at it"
        )
        eval_var = total  # all of Var(D): more samples can only shrink it
    seed_var = _split(total, eval_var)
    named = claim.min_effect is not None
    delta = claim.min_effect if named else min_effect_sd * sd

    def needed(sd_now: float) -> int | None:
        if not math.isfinite(sd_now) or (n >= 2 and sd == 0 and effect == 0):  # all 0: nothing decides
            return None
        # an effect in the metric's units against the SD's upper bound; an effect in SDs on the SD it is
        # a multiple of (one story: "0.5 SD" is 0.5 SD, whatever the SD, not 0.5 s / upper bound)
        return seeds_needed(delta, sd_upper(sd_now, n) if named else sd_now, alpha)

    more = {
        k: needed(math.sqrt(seed_var + eval_var / k)) if math.isfinite(eval_var) else None
        for k in EVAL_FACTORS
    }
    if n < 2:
        note = f"{n} paired seed(s): no SD"
    against = n > 0 and effect != 0 and (effect > 0) != (claim.sign > 0)
    return ClaimPower(
        str(claim), n, effect, lo, hi, sd, eval_var, seed_var, delta, claim.min_effect is not None,
        alpha, needed(sd), more, note, against,
    )  # fmt: skip


def power_table(
    claims: list[Claim],
    runs: pd.DataFrame,
    alpha: float = stats.ALPHA,
    min_effect_sd: float = DEFAULT_MIN_EFFECT_SD,
) -> list[ClaimPower]:
    """Every claim's power at alpha / (number of claims)."""
    return [claim_power(c, runs, alpha / max(1, len(claims)), min_effect_sd) for c in claims]


def sd_text(var: float) -> str:
    return "?" if not math.isfinite(var) else f"{math.sqrt(var):.3g}"


def effect_of_interest(delta: float, named: bool, sd_units: float = DEFAULT_MIN_EFFECT_SD) -> str:
    """`0.02 (the claim's)` or `0.087 (0.5 SD of the differences, the default: ...)`."""
    if named:
        return f"{delta:.3g} (the claim's smallest effect of interest)"
    return (
        f"{delta:.3g} ({sd_units:g} SD of the differences, the default smallest effect of interest: set "
        "one with 'by <effect>' in the claim, or --min-effect)"
    )


def describe(p: ClaimPower, min_effect_sd: float = DEFAULT_MIN_EFFECT_SD) -> str:
    """What the CI says, then the seeds that would decide the claim and what that figure rests on:
    `CI [-0.099, +0.19] covers 0 at 8 seeds. ~52 seeds per arm would decide an effect of 0.087 (...) with
    80% power: a fixed design at the family's level 0.0083, the SD 0.174 from 8 seeds taken at its 80%
    upper bound 0.236 (eval 0.05, seeds 0.17)`."""
    if p.n < 2 or not math.isfinite(p.sd):
        return f"{p.n} paired seed(s): no CI, no SD, no seeds figure" + (f"; {p.note}" if p.note else "")
    interval = "[all seeds equal]" if p.lo == p.hi else f"[{stats.fmt(p.lo)}, {stats.fmt(p.hi)}]"
    text = f"CI {interval} {'covers' if p.covers_zero else 'excludes'} 0 at {p.n} seeds"
    if p.against:
        text += f"; the observed effect {p.effect:+.3g} is against the claim's direction"
    if p.all_zero:
        return text + "; every difference is 0: no number of seeds decides it (the sign-flip p is 1)"
    if p.sd == 0:
        return text + "; every seed gave the same difference: no SD to size more seeds by"
    if p.seeds is None or not math.isfinite(p.min_effect) or p.min_effect == 0:
        return text + "; no seeds figure" + (f" ({p.note})" if p.note else "")
    split = f"eval {sd_text(p.eval_var)}, seeds {sd_text(p.seed_var)}"
    delta = effect_of_interest(p.min_effect, p.min_effect_set, min_effect_sd)
    text += f". ~{p.seeds} seeds per arm would decide an effect of {delta} with {POWER:.0%} power: a fixed "
    if p.min_effect_set:
        text += (
            f"design at the family's level {p.level:.2g}, the SD {p.sd:.3g} from {p.n} seeds taken at its "
            f"{SD_CONFIDENCE:.0%} upper bound {sd_upper(p.sd, p.n):.3g} ({split})"
        )
    else:  # an effect in SDs needs the same seeds whatever the SD: its upper bound would change nothing
        text += f"design at the family's level {p.level:.2g}, the SD {p.sd:.3g} from {p.n} seeds ({split})"
    more = [f"{s} with {k}x eval samples" for k, s in p.seeds_more_eval.items() if s is not None]
    if more and p.eval_var > 0:
        text += f"; {', '.join(more)}"
    return text + (f"; {p.note}" if p.note else "")


def power_lines(
    claims: pd.DataFrame, power: list[ClaimPower], min_effect_sd: float = DEFAULT_MIN_EFFECT_SD
) -> list[str]:
    """One terminal line per inconclusive claim: `  power: <claim>: <describe>`."""
    from align_lab.results.claims import INCONCLUSIVE

    verdicts = dict(zip(claims["claim"], claims["verdict"], strict=True))
    return [
        f"  power: {p.claim}: {describe(p, min_effect_sd)}"
        for p in power
        if verdicts.get(p.claim) == INCONCLUSIVE
    ]
