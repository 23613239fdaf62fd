"""The report's power section: every claim's effect, SD split and seeds needed (power.py computes them)."""

from __future__ import annotations

from align_lab.results import stats
from align_lab.results.power import EVAL_FACTORS, ClaimPower, sd_text
from align_lab.results.seeds import DEFAULT_MIN_EFFECT_SD, POWER, SD_CONFIDENCE, sd_upper


def power_blocks(power: list[ClaimPower], min_effect_sd: float = DEFAULT_MIN_EFFECT_SD) -> list:
    """The report's section: every claim's effect, SD split and seeds needed."""
    from align_lab.results.render import Heading, Paragraph, Table

    def seeds(n: int | None) -> str:
        return "n/a" if n is None else str(n)

    header = ["claim", "pairs", "effect a - b [95% CI]", "SD", "eval SD", "seed SD", "effect of interest"]
    header += ["SD's 80% upper bound", "seeds for 80% power"]
    header += [f"with {k}x eval samples" for k in EVAL_FACTORS] + ["note"]
    rows = [
        [
            p.claim,
            str(p.n),
            stats.fmt_ci(p.effect, p.lo, p.hi),
            stats.fmt(p.sd),
            sd_text(p.eval_var),
            sd_text(p.seed_var),
        ]
        + [stats.fmt(p.min_effect) + ("" if p.min_effect_set else f" ({min_effect_sd:g} SD)")]
        + [
            stats.fmt(sd_upper(p.sd, p.n)) if p.min_effect_set else "not used (effect in SDs)",
            seeds(p.seeds),
            *(seeds(p.seeds_more_eval[k]) for k in EVAL_FACTORS),
        ]
        + ["; ".join(x for x in ("against the claim's direction" if p.against else "", p.note) if x)]
        for p in power
    ]
    return [
        Heading("Power: seeds needed per claim"),
        Paragraph(
            "SD of the paired differences a - b over seeds, split as Var = eval + seed: eval, the variance "
            "evaluation sampling adds (per-sample records, eval_samples.jsonl: (1/P^2) sum_i s_i^2 / n_i of "
            "the paired per-sample differences, averaged over seeds), seed the rest (training). Seeds for "
            f"{POWER:.0%} power: a fixed design's seeds per arm against the smallest effect of interest (the "
            f"claim's 'by <effect>', else {min_effect_sd:g} SD of the differences), never against the "
            "observed effect: the paired t test (statsmodels TTestPower) at alpha / claims (Holm's worst "
            "case, the Bonferroni level), a claim's own effect against the SD's one-sided "
            f"{SD_CONFIDENCE:.0%} upper confidence bound (chi-square: a few seeds under-estimate it), an "
            "effect in SDs at that many SDs (it needs the same seeds whatever the SD), at least the exact "
            "sign-flip "
            "test's floor (2 / 2^n < alpha / claims). With k x eval samples per prompt, eval / k (eval "
            "capped at the total). Differences all 0: no figure (no number of seeds decides them)."
        ),
        Table(header, rows),
    ]
