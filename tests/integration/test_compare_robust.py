"""A robustness claim end to end: a study folder whose saved claims hold one claim across a grid of
algo.kl_coef (each arm's runs at its chosen value x 1/2, 1, 2), compared by `python -m align_lab.compare`.
The p-values are worked out by hand in the comments (tests/unit/results/test_results_robust.py's)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.integration.test_compare import compare, md_table, records, write_run
from tests.unit.results.test_results_robust import ALL_UP, LARGEST_DOWN, SMALLEST_DOWN

CLAIM = "rloo > ppo on eval/gold_reward across algo.kl_coef x 1/2,1,2"
CHOSEN = {"rloo": 0.1, "ppo": 0.05}  # each arm's own kl_coef; the grid is x 1/2, 1, 2 of it
POINTS = {0.5: ALL_UP, 1.0: SMALLEST_DOWN, 2.0: LARGEST_DOWN}  # rloo - ppo per seed, over 1024


def make_study(root: Path) -> Path:
    """8 seeds of rloo and ppo at each grid point (48 runs): ppo's final gold 0.5, rloo's 0.5 + d / 1024."""
    study = root / "multirun" / "robust"
    for m, diffs in POINTS.items():
        for algo in ("rloo", "ppo"):
            for seed, d in enumerate(diffs):
                gold = 0.5 + (d / 1024 if algo == "rloo" else 0.0)
                folder = study / f"{algo}_x{m:g}_seed{seed}"
                rows = records(algo, (0.3, gold), seed)
                summary = {k: v for k, v in rows[-1].items() if k.startswith("eval/")}
                write_run(
                    folder, algo, seed, status="completed", records=rows, summary=summary,
                    kl_coef=CHOSEN[algo] * m,
                )  # fmt: skip
                config = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
                config["claims"] = [CLAIM]  # the study's sweep file declares it, as claims: does
                (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    return study


def test_compare_says_where_a_claim_across_a_grid_holds(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    out = tmp_path / "out"
    result = compare(str(study), "--out", str(out), "--baseline", "ppo")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # Holm over the 3 points: p 0.0078125 (x1/2), 0.015625 (x1), 1 (x2) -> 0.0234375, 0.03125, 1
    assert f"  HOLDS AT SOME POINTS {CLAIM}: decided by x1/2 (Holm p 0.0234), x1 (Holm p 0.0312)" in lines
    assert any(line.startswith("    x1/2 (rloo algo.kl_coef 0.05, ppo 0.025): a - b = ") for line in lines)
    assert any(
        line.startswith("    x2 (rloo algo.kl_coef 0.2, ppo 0.1):") and "Holm p 1" in line for line in lines
    )
    md = (out / "report.md").read_text()
    rows = md_table(md, "Robustness")
    assert [(r["point"], r["Holm p"]) for r in rows] == [("x1/2", "0.0234"), ("x1", "0.0312"), ("x2", "1")]
    # the tables compare the runs at x1 only: 8 seeds per arm, no WARNING about kl_coef differing
    table = {r["group"]: r for r in md_table(md, "Final metrics per group")}
    assert table["ppo"]["n"] == "8" and table["rloo"]["n"] == "8"
    assert "32 runs at the grid points of" in result.stdout and "WARNING" not in result.stdout
