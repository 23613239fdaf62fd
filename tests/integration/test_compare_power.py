"""python -m align_lab.compare prints a power line per inconclusive claim and writes the power table,
on test_compare.py's synthetic study with per-sample records written into its runs by hand."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_compare import CLAIMS, GOLD, compare, make_sweep, md_table
from tests.unit.results.test_results_power import smallest_n

# 2 prompts x 2 samples, zero-mean patterns around each run's final gold reward; the paired d of a seed
# then has within-prompt deviations 0.1 * ((1, 0) - (0, 0)) and 0.1 * ((0.5, 0.5) - (0, 1)):
# s^2 = 0.005 for both prompts, eval variance (0.005/2 + 0.005/2) / 2^2 = 0.00125 at every seed
PATTERN = {
    "reinforce_pp": {(0, 0): 0.05, (0, 1): -0.05, (1, 0): 0.0, (1, 1): 0.0},
    "ppo": {(0, 0): -0.025, (0, 1): -0.025, (1, 0): -0.025, (1, 1): 0.075},
}


def add_samples(sweep: Path) -> None:
    for algo, pattern in PATTERN.items():
        for seed, (_, final) in GOLD[algo].items():
            (folder,) = sweep.glob(f"*_{algo}_seed{seed}")
            lines = [
                {"step": 4, "prompt_id": p, "sample": s, "gold_reward": final + e}
                for (p, s), e in pattern.items()
            ]
            text = "".join(json.dumps(r) + "\n" for r in lines)
            (folder / "eval_samples.jsonl").write_text(text, encoding="utf-8")


def test_compare_prints_the_power_of_each_inconclusive_claim(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path)
    add_samples(sweep)
    out = tmp_path / "out"
    result = compare(str(tmp_path / "multirun"), "--out", str(out), "--baseline", "ppo")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("  power: ")]
    # reinforce_pp - ppo: D = 0.15, 0.10, 0.20: mean 0.15, var 0.0025, SD 0.05; eval 0.00125 (SD 0.0354),
    # seeds 0.0025 - 0.00125 (SD 0.0354); CI 0.15 +- 4.3027 * 0.05 / sqrt(3) = [0.0258, 0.274].
    # Sized for the default effect of interest 0.5 SD = 0.025, not the observed 0.15, at effect size 0.5
    # (an effect in SDs needs the same seeds whatever the SD) at alpha 0.05 / 2 claims; with 2x eval
    # samples SD sqrt(0.00125 + 0.000625) = 0.0433013, 4x: sqrt(0.00125 + 0.0003125) = 0.0395285.
    # rloo - ppo wall time: -40, -40, -55: mean -45, var (25 + 25 + 100) / 2 = 75, SD 8.66, no eval part:
    # CI -45 +- 4.3027 * 8.66 / sqrt(3) = [-66.5, -23.5]; effect of interest 4.33: effect size 0.5
    n0, n2, n4 = (smallest_n(0.025 / sd, 0.025) for sd in (0.05, 0.0433013, 0.0395285))
    assert lines[0].startswith(
        f"  power: {CLAIMS[0]}: CI [0.02579, 0.2742] excludes 0 at 3 seeds. ~{n0} seeds per arm would decide "
        "an effect of 0.025 (0.5 SD of the differences, the default smallest effect of interest"
    )
    assert lines[0].endswith(
        "the family's level 0.025, the SD 0.05 from 3 seeds (eval 0.0354, seeds 0.0354); "
        f"{n2} with 2x eval samples, {n4} with 4x eval samples"
    )
    assert lines[1].startswith(
        f"  power: {CLAIMS[1]}: CI [-66.51, -23.49] excludes 0 at 3 seeds. ~{n0} seeds"
    )
    assert lines[1].endswith("not an evaluation metric: all between-seed variance")
    assert len(lines) == 2
    rows = {r["claim"]: r for r in md_table((out / "report.md").read_text(), "Power: seeds needed per claim")}
    assert list(rows) == CLAIMS
    assert (rows[CLAIMS[0]]["eval SD"], rows[CLAIMS[0]]["seeds for 80% power"]) == ("0.0354", str(n0))
    assert "Power: seeds needed per claim" in (out / "report.html").read_text()


def test_without_records_the_split_is_unknown(tmp_path: Path) -> None:
    make_sweep(tmp_path)
    result = compare(str(tmp_path / "multirun"), "--out", str(tmp_path / "out"), "--baseline", "ppo")
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith(f"  power: {CLAIMS[0]}: "))
    assert "(eval ?, seeds ?); eval split unknown (no eval_samples.jsonl)" in line
