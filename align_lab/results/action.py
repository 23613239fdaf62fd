"""The one line a researcher acts on, first after the group table: what the study decided, and for what
it did not, how many seeds would decide it (power.py: for a smallest effect of interest, never for the
observed effect). Pure computation on a Comparison."""

from __future__ import annotations

import math
from collections import Counter

from align_lab.results import stats
from align_lab.results.claims import INCONCLUSIVE
from align_lab.results.comparison import Comparison
from align_lab.results.power import EVAL_FACTORS
from align_lab.results.seeds import DEFAULT_MIN_EFFECT_SD, POWER, pair_seeds


def action_line(c: Comparison, min_effect_sd: float = DEFAULT_MIN_EFFECT_SD) -> str:
    """`decided: ...; not decided: ... ~N seeds ... would decide ...`, from the claims where the study has
    them, else from each group against the baseline."""
    if c.claims is not None and len(c.claims):
        return _claims_action(c)
    return _groups_action(c, min_effect_sd)


def _claims_action(c: Comparison) -> str:
    verdicts = Counter(c.claims["verdict"])
    open_ = [p for p, v in zip(c.power or [], c.claims["verdict"], strict=False) if v == INCONCLUSIVE]
    decided = len(c.claims) - verdicts[INCONCLUSIVE]
    kinds = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()) if v != INCONCLUSIVE)
    text = f"{decided} of {len(c.claims)} claims decided" + (f" ({kinds})" if kinds else "")
    if not open_:
        return text + "."
    zero = [p for p in open_ if p.all_zero]
    sized = [p for p in open_ if not p.all_zero]
    if zero:  # no number of seeds decides them: not among those a seeds figure would decide
        text += (
            f"; {len(zero)} open with every paired difference 0, which no number of seeds decides "
            f"({', '.join(p.claim for p in zero)})"
        )
    figures = [p.seeds for p in sized if p.seeds is not None]
    if not sized:
        return text + "."
    if not figures:
        return text + f"; {len(sized)} open, with no SD to size more seeds by (power lines below)."
    return (
        text + f"; the {len(sized)} {'other ' if zero else ''}open need up to ~{max(figures)} seeds per arm "
        f"to be decided with {POWER:.0%} power if their effect is at least their smallest effect of "
        f"interest (fixed design, power lines below){more_samples(sized, max(figures))}."
    )


def more_samples(open_: list, seeds: int) -> str:
    """`; with 4x evaluation samples ... ~M seeds: cheaper than seeds while evaluation takes under X% of
    a run` where k x samples per prompt need fewer seeds: M runs of cost 1 + (k - 1) e (e: evaluation's
    share of a run's time) against `seeds` runs of cost 1 is cheaper while e < (seeds / M - 1) / (k - 1).
    The k with the largest such share; '' where no k needs fewer seeds."""
    options = []  # (break-even share, k, seeds with k x samples)
    for k in EVAL_FACTORS:
        figures = [p.seeds_more_eval.get(k) for p in open_]
        if figures and None not in figures and max(figures) < seeds:
            options.append(((seeds / max(figures) - 1) / (k - 1), k, max(figures)))
    if not options:
        return ""
    share, k, fewer = max(options)
    return (
        f"; with {k}x evaluation samples per prompt (train.eval_samples) ~{fewer} would do: more samples "
        f"are cheaper than seeds while evaluation takes under {min(share, 1):.0%} of a run's time"
    )


def _groups_action(c: Comparison, min_effect_sd: float) -> str:
    paired = c.paired
    if not len(paired):
        return f"Only one group: nothing to decide on {c.metric}."
    beyond = paired[paired["verdict"].str.endswith("beyond seed noise")]
    rest = paired[~paired["verdict"].str.endswith("beyond seed noise")]
    text = "decided: " + ", ".join(f"{r.group} {r.verdict.split(',')[0]}" for r in beyond.itertuples())
    text = text if len(beyond) else f"no group decided against {c.baseline}"
    if not len(rest):
        return text + "."
    unpaired = rest["n_pairs"].fillna(0) == 0  # no completed run, another task: more seeds decide nothing
    if unpaired.any():
        text += (
            f"; not compared (no paired seed; see each one's line): {', '.join(rest.loc[unpaired, 'group'])}"
        )
        rest = rest[~unpaired]
        if not len(rest):
            return text + "."
    zero = (rest["diff_sd"] == 0) & (rest["diff"] == 0)  # every paired difference 0
    if zero.any():
        text += (
            f"; not decided, every paired difference 0, which no number of seeds decides: "
            f"{', '.join(rest.loc[zero, 'group'])}"
        )
        rest = rest[~zero]
        if not len(rest):
            return text + "."
    tested = max(1, int((paired["n_pairs"] > 0).sum()))  # Holm's family (forty-third hunt, case 15)
    level = stats.ALPHA / tested  # Holm's worst-ranked test: the Bonferroni level
    figures = {r.group: pair_seeds(r.diff_sd, r.n_pairs, level, min_effect_sd) for r in rest.itertuples()}
    known = [n for n in figures.values() if n is not None]
    names = ", ".join(rest["group"])
    if not known:
        return text + f"; not decided: {names}, with no SD to size more seeds by."
    pairs = sorted({int(n) for n in rest["n_pairs"] if not math.isnan(n)})
    basis = f"{pairs[0]}" if len(pairs) == 1 else f"{pairs[0]}-{pairs[-1]}"
    return (
        text + f"; not decided: {names}: ~{max(known)} seeds per group would decide a difference of "
        f"{min_effect_sd:g} SD of its paired differences with {POWER:.0%} power (fixed design at the "
        f"family's level {level:.2g}; a difference in SDs needs these seeds whatever the SD, here from "
        f"{basis} seeds; --min-effect sets the effect)."
    )
