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

Seeds for 80% power: the paired (one-sample) t test's, statsmodels' TTestPower at effect mean(D) /
sd(D) and alpha / claims (the level Holm gives the worst-ranked claim: Bonferroni's, conservative),
and at least the exact sign-flip test's floor (stats.smallest_p_value(n) = 2 / 2^n must fall below
alpha / claims). With k times the evaluation samples per prompt, sigma^2_eval / k replaces
sigma^2_eval. Pure computation, apart from reading the records.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from align_lab.results import stats
from align_lab.results.runs import COMPLETED
from align_lab.results.tables import per_seed
from align_lab.tracking.samples import SAMPLES_FILE, read_samples

if TYPE_CHECKING:
    import pandas as pd

    from align_lab.results.claims import Claim

POWER = 0.8
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


def sign_flip_floor(alpha: float) -> int:
    """The fewest pairs whose exact two-sided sign-flip p can fall below alpha: 2 / 2^n < alpha
    (strict, as claims.claim_verdict's Holm p < ALPHA)."""
    n = 1
    while not stats.smallest_p_value(n) < alpha:
        n += 1
    return n


def t_test_seeds(effect: float, sd: float, alpha: float, power: float = POWER) -> float:
    """Pairs the two-sided paired t test needs for `power` at effect / sd (statsmodels TTestPower)."""
    from statsmodels.stats.power import TTestPower
    from statsmodels.tools.sm_exceptions import ConvergenceWarning  # its import sets "always"

    if sd == 0:
        return 2.0
    size = abs(effect) / sd
    with warnings.catch_warnings():  # a root finder that does not converge says so with NaN
        warnings.simplefilter("ignore", ConvergenceWarning)
        n = float(
            TTestPower().solve_power(effect_size=size, alpha=alpha, power=power, alternative="two-sided")
        )
    return n if math.isfinite(n) else float(smallest_pairs(size, alpha, power))


def smallest_pairs(size: float, alpha: float, power: float = POWER) -> int:
    """The smallest n >= 2 whose two-sided paired t test has `power` at effect size `size`, by search
    over TTestPower().power: where statsmodels' root finder returns NaN (an effect of 100 SD: n = 2)."""
    from statsmodels.stats.power import TTestPower

    def enough(n: int) -> bool:
        return TTestPower().power(effect_size=size, nobs=n, alpha=alpha, alternative="two-sided") >= power

    high = 2
    while not enough(high):
        high *= 2
    low = max(2, high // 2)
    while low < high:  # the smallest n in [low, high] with enough power
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid + 1, high)
    return high


def seeds_needed(effect: float, sd: float, alpha: float, power: float = POWER) -> int | None:
    """max(ceil(t test's pairs), sign-flip floor); None without an effect or an SD."""
    if not math.isfinite(effect) or effect == 0 or not math.isfinite(sd):
        return None
    return max(math.ceil(t_test_seeds(effect, sd, alpha, power) - 1e-9), sign_flip_floor(alpha))


@dataclass(frozen=True)
class ClaimPower:
    claim: str
    n: int  # paired seeds
    effect: float  # mean a - b
    sd: float  # SD of the paired differences
    eval_var: float  # sigma^2_eval; NaN when unknown
    seed_var: float  # sigma^2_seed; NaN when unknown
    seeds: int | None  # for 80% power at alpha / claims
    seeds_more_eval: dict[int, int | None]  # eval factor k -> seeds with k x the samples per prompt
    note: str  # why the split is unknown, or what it means


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


def claim_power(claim: Claim, runs: pd.DataFrame, alpha: float) -> ClaimPower:
    """The effect, its SD split into evaluation and seeds, and the seeds needed, of one claim."""
    empty: dict = {}
    by_group = per_seed(runs, claim.metric)
    a, b = by_group.get(claim.a, empty), by_group.get(claim.b, empty)
    seeds = sorted(set(a.keys()) & set(b.keys()))
    diffs = np.array([a[s] - b[s] for s in seeds], dtype=float)  # (seeds,)
    n = len(diffs)
    effect = float(diffs.mean()) if n else math.nan
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
    seed_var = _split(total, eval_var)
    more = {
        k: seeds_needed(effect, math.sqrt(seed_var + eval_var / k), alpha)
        if math.isfinite(eval_var)
        else None
        for k in EVAL_FACTORS
    }
    if n < 2:
        note = f"{n} paired seed(s): no SD"
    return ClaimPower(
        str(claim), n, effect, sd, eval_var, seed_var, seeds_needed(effect, sd, alpha), more, note
    )


def power_table(claims: list[Claim], runs: pd.DataFrame, alpha: float = stats.ALPHA) -> list[ClaimPower]:
    """Every claim's power at alpha / (number of claims)."""
    return [claim_power(c, runs, alpha / max(1, len(claims))) for c in claims]


def _sd(var: float) -> str:
    return "?" if not math.isfinite(var) else f"{math.sqrt(var):.3g}"


def describe(p: ClaimPower) -> str:
    """`effect +0.021, SD 0.045 (eval 0.030, seeds 0.034): ~31 seeds for 80% power (21 with 4x eval
    samples)`, or why there is no such figure."""
    if not math.isfinite(p.effect) or p.effect == 0:
        return f"no effect observed ({p.n} paired seeds)"
    if not math.isfinite(p.sd):
        return f"effect {p.effect:+.3g}; {p.note}"
    split = f"eval {_sd(p.eval_var)}, seeds {_sd(p.seed_var)}"
    text = f"effect {p.effect:+.3g}, SD {p.sd:.3g} ({split}): ~{p.seeds} seeds for {POWER:.0%} power"
    more = [f"{s} with {k}x eval samples" for k, s in p.seeds_more_eval.items() if s is not None]
    if more and p.eval_var > 0:
        text += f" ({', '.join(more)})"
    return text + (f"; {p.note}" if p.note else "")


def power_lines(claims: pd.DataFrame, power: list[ClaimPower]) -> list[str]:
    """One terminal line per inconclusive claim: `  power: <claim>: <describe>`."""
    from align_lab.results.claims import INCONCLUSIVE

    verdicts = dict(zip(claims["claim"], claims["verdict"], strict=True))
    return [f"  power: {p.claim}: {describe(p)}" for p in power if verdicts.get(p.claim) == INCONCLUSIVE]


def power_blocks(power: list[ClaimPower]) -> list:
    """The report's section: every claim's effect, SD split and seeds needed."""
    from align_lab.results.render import Heading, Paragraph, Table

    def seeds(n: int | None) -> str:
        return "n/a" if n is None else str(n)

    header = ["claim", "pairs", "effect a - b", "SD", "eval SD", "seed SD", "seeds for 80% power"]
    header += [f"with {k}x eval samples" for k in EVAL_FACTORS] + ["note"]
    rows = [
        [p.claim, str(p.n), stats.fmt(p.effect), stats.fmt(p.sd), _sd(p.eval_var), _sd(p.seed_var)]
        + [seeds(p.seeds), *(seeds(p.seeds_more_eval[k]) for k in EVAL_FACTORS), p.note]
        for p in power
    ]
    return [
        Heading("Power: seeds needed per claim"),
        Paragraph(
            "SD of the paired differences a - b over seeds, split as Var = eval + seed: eval, the variance "
            "evaluation sampling adds (per-sample records, eval_samples.jsonl: (1/P^2) sum_i s_i^2 / n_i of "
            "the paired per-sample differences, averaged over seeds), seed the rest (training). Seeds for "
            f"{POWER:.0%} power: the paired t test (statsmodels TTestPower) at effect / SD and alpha / "
            "claims (Holm's worst case, the Bonferroni level: conservative), at least the exact sign-flip "
            "test's floor (2 / 2^n < alpha / claims). With k x eval samples per prompt, eval / k."
        ),
        Table(header, rows),
    ]
