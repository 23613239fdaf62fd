"""python -m align_lab.compare --budget kl end to end: the KL-matched view, a claim at equal KL and the
frontier's matched point, on test_compare's hand-made sweep (numbers worked out in the comments) and on
real toy runs (each run's value checked against its own metrics.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.integration.test_compare import ci, compare, make_sweep, md_table


def test_compare_budget_kl_reads_each_run_at_the_smallest_peak_kl(tmp_path: Path) -> None:
    make_sweep(tmp_path)
    out = tmp_path / "out"
    claim = "reinforce_pp > ppo on eval/gold_reward at equal kl"
    result = compare(
        str(tmp_path / "multirun"), "--out", str(out), "--baseline", "ppo", "--budget", "kl", "--claim", claim
    )
    assert result.returncode == 0, result.stdout + result.stderr
    md = (out / "report.md").read_text()
    # eval/kl = step/4 * KL_SCALE + 0.05 * seed at steps 2 and 4 (the peak at step 4): the smallest peak
    # among the completed runs is ppo seed 0's 0.3 (KL_SCALE 0.3)
    assert "## KL-matched: gold reward at KL 0.3" in md
    table = {r["group"]: r for r in md_table(md, "KL-matched")}
    # each curve from the SFT start (KL 0, gold 0.2), read at KL 0.3:
    # ppo (0.3): seed 0 at its step 4 (0.3): 0.50; seed 1, KL 0.2 -> 0.35 (gold 0.4 -> 0.6):
    #   0.4 + (0.1/0.15) * 0.2 = 0.5333; seed 2, KL 0.25 -> 0.4 (0.5 -> 0.7): 0.5 + (0.05/0.15) * 0.2
    #   = 0.5667; mean 1.6/3 = 0.5333
    # reinforce_pp (0.8): KL 0.4 + 0.05 s at step 2, so 0.3 lies on 0 -> step 2 (gold 0.2 -> g2):
    #   seed 0: 0.2 + (0.3/0.4) * 0.15 = 0.3125; seed 1: 0.2 + (0.3/0.45) * 0.2 = 0.3333;
    #   seed 2: 0.2 + (0.3/0.5) * 0.25 = 0.35; mean 0.9958/3 = 0.3319
    column = "gold reward at KL 0.3 mean [95% CI]"  # the table says where it read (was "at budget")
    assert ci(table["ppo"][column])[0] == pytest.approx(0.5333, abs=1e-3)
    assert ci(table["reinforce_pp"][column])[0] == pytest.approx(0.3319, abs=1e-3)
    # the claim at equal KL: its arms' smallest peak is ppo's 0.3 too; reinforce_pp - ppo per seed
    # 0.3125 - 0.5, 0.3333 - 0.5333, 0.35 - 0.5667 = -0.1875, -0.2, -0.2167 -> mean -0.2014
    rows = {r["claim"]: r for r in md_table(md, "Claims")}
    assert ci(rows[claim]["mean a - b [95% CI]"])[0] == pytest.approx(-0.2014, abs=1e-3)
    assert "read at kl 0.3, the smallest peak KL of its arms' runs" in result.stdout
    assert "Paired by seed vs ppo at the same KL:" in md
    assert (out / "reward_kl_frontier.png").is_file()


def test_at_kl_names_the_runs_that_never_reach_it(tmp_path: Path) -> None:
    make_sweep(tmp_path)
    out = tmp_path / "out"
    result = compare(str(tmp_path / "multirun"), "--out", str(out), "--budget", "kl", "--at-kl", "0.6")
    assert result.returncode == 0, result.stdout + result.stderr
    # peaks: ppo 0.3, 0.35, 0.4; rloo 0.5, 0.55, 0.6; reinforce_pp 0.8, 0.85, 0.9: 5 never reach 0.6
    [note] = [line for line in result.stdout.splitlines() if "never reach" in line]
    assert "at KL 0.6 (chosen with --at-kl): 5 runs never reach it" in note
    assert "ppo seed 0 (peak KL 0.3" in note and "rloo seed 1 (peak KL 0.55" in note
    assert "rloo seed 2" not in note  # its peak is 0.6: read at its last evaluation
    refused = compare(str(tmp_path / "multirun"), "--out", str(out), "--at-kl", "0.6")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "align_lab.compare: error: --at-kl 0.6: only with --budget kl (it is generated_tokens)"
    )


def test_compare_budget_kl_on_real_toy_runs(tmp_path: Path, cache_dir: Path) -> None:
    """2 algorithms x 2 seeds run in-process, evaluated every step, then compared at equal KL: each run's
    value is its own curve read at the common KL by hand (the first segment of its evaluations that
    brackets it), the common KL the smallest peak eval/kl."""
    from omegaconf import OmegaConf

    from tests.conftest import SMALL, compose, run_in_process

    sweep = tmp_path / "multirun" / "kl"
    for num, (algo, seed) in enumerate((a, s) for a in ("ppo", "rloo") for s in (0, 1)):
        overrides = [f"algo={algo}", f"seed={seed}", "train.eval_every=1"]
        run_dir = sweep / f"{num}_{algo}_seed{seed}"
        cfg, names = compose([*SMALL, f"cache_dir={cache_dir}", *overrides])
        (run_dir / ".hydra").mkdir(parents=True)
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
        (run_dir / ".hydra" / "hydra.yaml").write_text(
            yaml.safe_dump({"hydra": {"runtime": {"choices": names}}})
        )
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        assert run_in_process(overrides, run_dir, cache_dir)["status"] == "completed"
    out = tmp_path / "report"
    result = compare(
        str(sweep),
        "--out",
        str(out),
        "--budget",
        "kl",
        "--claim",
        "rloo > ppo on eval/gold_reward at equal kl",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    curves = {}
    for folder in sorted(sweep.iterdir()):
        records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        evals = [r for r in records if "eval/kl" in r]
        sft = next(r["eval/gold_reward_sft"] for r in evals)
        curves[str(folder)] = [(0.0, sft)] + [(r["eval/kl"], r["eval/gold_reward"]) for r in evals]
    common = min(max(k for k, _ in c) for c in curves.values())
    assert len(curves) == 4 and common > 0

    def by_hand(points: list[tuple[float, float]]) -> float:
        for (k0, g0), (k1, g1) in zip(points, points[1:], strict=False):
            if min(k0, k1) <= common <= max(k0, k1):
                return g0 if k1 == k0 else g0 + (common - k0) / (k1 - k0) * (g1 - g0)
        raise AssertionError("every run reaches the smallest peak")

    import pandas as pd

    runs = pd.read_csv(out / "runs.csv")
    read = dict(zip(runs["folder"], runs["eval/gold_reward@kl"], strict=True))
    assert read == pytest.approx({f: by_hand(c) for f, c in curves.items()}, abs=1e-9)
    assert f"## KL-matched: gold reward at KL {common:.4g}" in (out / "report.md").read_text()
    assert f"read at kl {common:.4g}" in result.stdout
