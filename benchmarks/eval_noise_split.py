"""How much of each arm's spread over seeds is evaluation sampling (docs/real_model_study.md).

    python benchmarks/eval_noise_split.py <study folder> [field]   # field of eval_samples.jsonl: gold_reward

For each completed run, the evaluation variance of its mean of `field` (results/power.py's
eval_variance of its final-step records against a zero arm: (1/P^2) sum_i s_i^2 / n_i, prompts fixed);
then per arm: Var over seeds of the run means = mean evaluation variance + training variance.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from align_lab.results.power import eval_variance, field_values, final_records


def arm_rows(root: Path, field: str) -> dict[str, list[tuple[float, float]]]:
    """arm -> (run mean of field, its evaluation variance) per completed run."""
    arms: dict[str, list[tuple[float, float]]] = {}
    for run in sorted(root.glob("*_seed*")):
        summary = run / "summary.json"
        if not summary.is_file() or json.loads(summary.read_text()).get("status") != "completed":
            continue
        records, _ = final_records(run / "eval_samples.jsonl")
        x = field_values(records or [], field)
        if not x:
            continue
        arm = run.name.split("_", 1)[1].rsplit("_seed", 1)[0]
        arms.setdefault(arm, []).append(
            (float(np.mean(list(x.values()))), eval_variance(x, dict.fromkeys(x, 0.0)))
        )
    return arms


def main() -> None:
    root, field = Path(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "gold_reward")
    print(f"{'arm':<20} seeds  mean    SD over seeds  eval SD per run  eval share of the variance")
    for arm, rows in sorted(arm_rows(root, field).items()):
        means, evs = np.array([m for m, _ in rows]), np.array([v for _, v in rows])
        total = float(means.var(ddof=1)) if len(means) > 1 else math.nan
        share = f"{evs.mean() / total:.0%}" if total > 0 else "n/a"
        print(
            f"{arm:<20} {len(rows):<5}  {means.mean():.3f}   {math.sqrt(total):.3f}          "
            f"{math.sqrt(evs.mean()):.3f}            {share}"
        )


if __name__ == "__main__":
    main()
