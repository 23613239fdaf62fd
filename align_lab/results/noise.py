"""How much of a group's spread over seeds is evaluation noise: one group's final `eval/X` over its seeds
has variance Var_s = sigma^2_eval + sigma^2_seed, where sigma^2_eval is the variance that sampling the
evaluation adds to one run's mean (power.eval_variance of the run's per-sample records against zero:
(1/P^2) sum_i s_i^2 / n_i over its prompts), averaged over the group's runs, and sigma^2_seed =
max(0, Var_s - sigma^2_eval) the rest (training). The split is a decomposition of
sigma^2_eval + sigma^2_seed = max(Var_s, sigma^2_eval): eval share sigma^2_eval / that, seed share
sigma^2_seed / that, adding up to 100%. Where the seeds spread less than evaluation alone would
(Var_s < sigma^2_eval, e.g. runs that train the same policy from shared stages), the eval share is 100%
and the line says so, with both SDs, rather than printing a share above 100%. A share near 100% says more
evaluation samples narrow the group's CI; near 0, more seeds (docs/compare.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from align_lab.results.power import eval_variance, field_values, final_records
from align_lab.results.runs import COMPLETED
from align_lab.tracking.samples import SAMPLES_FILE

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class GroupNoise:
    group: str
    n: int  # completed runs with a value and per-sample records
    sd: float  # SD of the final metric over those runs
    eval_sd: float  # sqrt of the mean evaluation variance of one run's mean

    @property
    def share(self) -> float:
        """The eval share sigma^2_eval / (sigma^2_eval + sigma^2_seed) in [0, 1] (the seed share is 1 minus
        it); NaN below 2 runs or where neither the seeds nor evaluation spread (below 1e-12: rounding)."""
        total = max(self.sd**2, self.eval_sd**2)  # sigma^2_eval + max(0, Var_s - sigma^2_eval)
        return self.eval_sd**2 / total if self.n >= 2 and total > 1e-24 else math.nan

    @property
    def below_eval(self) -> bool:
        """The seeds spread less than evaluation alone would: Var_s < sigma^2_eval."""
        return self.sd < self.eval_sd


def run_eval_variance(folder: Path, field: str) -> float:
    """One run's evaluation variance of its mean `field` at its final step; NaN without records."""
    records, _ = final_records(Path(folder) / SAMPLES_FILE)
    values = field_values(records, field) if records else {}
    return eval_variance(values, dict.fromkeys(values, 0.0)) if values else math.nan


def group_noise(runs: pd.DataFrame, metric: str) -> list[GroupNoise]:
    """Every group's spread over seeds and its evaluation part, for an `eval/` metric; [] otherwise."""
    if not metric.startswith("eval/") or metric not in runs.columns:
        return []
    field = metric.removeprefix("eval/")
    done = runs[(runs["status"] == COMPLETED) & runs[metric].notna()]
    out = []
    for group, all_rows in sorted(done.groupby("group"), key=lambda kv: str(kv[0])):
        rows = all_rows.drop_duplicates("seed")  # a seed's copies are one seed (38th hunt, case 39)
        variances = [run_eval_variance(f, field) for f in rows["folder"]]
        kept = [(v, x) for v, x in zip(variances, rows[metric], strict=True) if math.isfinite(v)]
        if len(kept) < 2:
            continue
        values = np.array([x for _, x in kept], dtype=float)
        eval_sd = math.sqrt(float(np.mean([v for v, _ in kept])))
        out.append(GroupNoise(str(group), len(kept), float(values.std(ddof=1)), eval_sd))
    return out


def split_text(g: GroupNoise) -> str:
    """`eval 10% + seeds 90% (SD 0.113, eval 0.0366)`, and why the eval share is 100% where it is."""
    text = f"eval {g.share:.0%} + seeds {1 - g.share:.0%} (SD {g.sd:.3g}, eval {g.eval_sd:.3g}"
    return text + (": the seeds spread less than evaluation alone would)" if g.below_eval else ")")


def noise_line(noise: list[GroupNoise]) -> list[str]:
    """`  evaluation noise and seeds in each group's variance over seeds: dpo eval 100% + seeds 0% ...`."""
    shares = [f"{g.group} {split_text(g)}" for g in noise if math.isfinite(g.share)]
    if not shares:
        return []
    return ["  evaluation noise and seeds in each group's variance over seeds: " + "; ".join(shares)]


def noise_blocks(noise: list[GroupNoise]) -> list:
    """The report's section: each group's SD over seeds, its evaluation part and the split of the two."""
    from align_lab.results.render import Heading, Paragraph, Table

    if not noise:
        return []
    rows = [
        [g.group, str(g.n), f"{g.sd:.3g}", f"{g.eval_sd:.3g}"]
        + ([f"{g.share:.0%}", f"{1 - g.share:.0%}"] if math.isfinite(g.share) else ["n/a", "n/a"])
        + ["the seeds spread less than evaluation alone would" if g.below_eval else ""]
        for g in noise
    ]
    return [
        Heading("Evaluation noise in each group's spread"),
        Paragraph(
            "SD of the final metric over a group's seeds, and the SD that sampling the evaluation alone adds "
            "to one run's mean ((1/P^2) sum_i s_i^2 / n_i over the run's per-sample records, averaged over "
            "runs). The variance splits as eval + seeds = 100%: eval^2 / max(SD^2, eval^2) and the rest "
            "(docs/compare.md). An eval share near 100% says more evaluation samples narrow the CI; near "
            "0, more seeds."
        ),
        Table(["group", "runs", "SD over seeds", "evaluation SD", "eval share", "seed share", "note"], rows),
    ]
