"""compare with a run that train.stop_at ended early (align_lab/results/stopped.py): it is named with its
step and compute, its final value is said to be carried forward, and the compute-matched view reads every
run at the stopped run's budget. Synthetic folders (tests/integration/test_compare.py's writer), every
expected number worked out by hand below."""

from __future__ import annotations

import csv

import pytest
import yaml

from tests.integration.test_compare import ci, compare, md_table, records, write_run

# ppo: 100 generated tokens a step, evaluations at steps 2 (200 tokens) and 4 (400 tokens)
# rloo: 150 a step, evaluations at steps 2 (300) and 4 (600); seed 0 stopped at step 2 (300 tokens)
GOLD = {
    ("ppo", 0): (0.30, 0.50),
    ("ppo", 1): (0.40, 0.60),
    ("rloo", 0): (0.40, 0.40),
    ("rloo", 1): (0.50, 0.65),
}


def make(root):
    sweep = root / "multirun" / "2025-01-01" / "12-00-00"
    for num, ((algo, seed), gold) in enumerate(GOLD.items()):
        stopped = (algo, seed) == ("rloo", 0)
        rows = records(algo, gold, seed, steps=2 if stopped else 4)
        summary = {k: v for k, v in rows[-1].items() if k.startswith("eval/")} | {"time/total_s": 10.0}
        if stopped:
            summary["stopped"] = {
                "reason": "stop_at",
                "metric": "eval/gold_reward",
                "threshold": 0.35,
                "value": 0.40,
                "step": 2,
                "steps": 4,
                "generated_tokens": 300,
            }
        folder = sweep / f"{num}_{algo}_seed{seed}"
        write_run(folder, algo, seed, status="completed", records=rows, summary=summary)
        config = folder / ".hydra" / "config.yaml"  # test_compare's claims name its study's groups, not these
        config.write_text(yaml.safe_dump(yaml.safe_load(config.read_text()) | {"claims": []}))
    return sweep


def test_a_stopped_run_is_named_and_compared_at_equal_compute(tmp_path):
    sweep = make(tmp_path)
    out = tmp_path / "out"
    result = compare(str(tmp_path / "multirun"), "--out", str(out), "--baseline", "ppo")
    assert result.returncode == 0, result.stdout + result.stderr
    folder = sweep / "2_rloo_seed0"
    assert (
        f"note: rloo seed 0 stopped early at step 2 of 4 (train.stop_at: eval/gold_reward = 0.4 >= 0.35) "
        f"after 300 generated tokens ({folder})." in result.stdout
    )
    # the common budget: the smallest final generated tokens, min(400, 400, 300, 600) = 300
    assert (
        "note: Final values of the 1 run that stopped early are their values at the stop, carried forward "
        "against runs that trained on with more compute; the compute-matched view compares every run at "
        "300 generated tokens, at or below each stopped run's budget (equal compute, no run read past its "
        "stop)." in result.stdout
    )
    md = (out / "report.md").read_text()
    assert "## Compute-matched: gold reward at 300 generated tokens" in md
    matched = {r["group"]: r for r in md_table(md, "Compute-matched")}
    column = "gold reward at budget mean [95% CI]"
    # ppo at 300 tokens, between its evaluations at 200 and 400: g2 + (100/200)(g4 - g2):
    #   0.30 + 0.10 = 0.40; 0.40 + 0.10 = 0.50 -> mean 0.45
    # rloo: seed 0's stop is at 300 tokens: 0.40; seed 1's first evaluation is at 300: 0.50 -> mean 0.45
    assert ci(matched["ppo"][column])[0] == pytest.approx(0.45, abs=1e-3)
    assert ci(matched["rloo"][column])[0] == pytest.approx(0.45, abs=1e-3)
    # the final values: rloo seed 0's 0.40 carried forward, seed 1's 0.65 -> mean 0.525; ppo (0.50 + 0.60) / 2
    final = {r["group"]: r for r in md_table(md, "Final metrics")}
    assert ci(final["rloo"]["gold reward mean [95% CI]"])[0] == pytest.approx(0.525, abs=1e-3)
    assert ci(final["ppo"]["gold reward mean [95% CI]"])[0] == pytest.approx(0.55, abs=1e-3)
    with open(out / "runs.csv") as f:
        stops = {(r["group"], r["seed"]): r["stopped_at_step"] for r in csv.DictReader(f)}
    assert stops[("rloo", "0")] == "2.0" and stops[("ppo", "0")] == "" and stops[("rloo", "1")] == ""


def test_no_note_when_no_run_stopped(tmp_path):
    make(tmp_path)
    for summary in (tmp_path / "multirun").rglob("summary.json"):
        summary.write_text(summary.read_text().replace('"stopped"', '"was_stopped"'))
    result = compare(str(tmp_path / "multirun"), "--out", str(tmp_path / "out"), "--baseline", "ppo")
    assert result.returncode == 0, result.stderr
    assert "stopped early" not in result.stdout


@pytest.mark.parametrize(
    "budget, said, rule",
    [
        # records() logs time/step_s 2.0 a step: the stop at step 2 came after 2 x 2.0 = 4 s
        ("wall_time", "after 4 wall time", "compares every run at 4 wall time"),
        # eval/kl at step 2 = 2/4 x KL_SCALE["rloo"] (0.5) + 0.05 x seed 0 = 0.25, the smallest peak KL
        # (ppo's 0.3 and 0.35, rloo seed 1's 0.55): the view reads every run at 0.25
        ("kl", "at KL 0.25", "the KL-matched view reads every run at KL 0.25 (no run read past its stop)"),
    ],
)
def test_a_stopped_run_is_named_with_what_it_spent_on_every_budget(tmp_path, budget, said, rule):
    sweep = make(tmp_path)
    result = compare(str(tmp_path / "multirun"), "--out", str(tmp_path / "out"), "--budget", budget)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"(train.stop_at: eval/gold_reward = 0.4 >= 0.35) {said} ({sweep / '2_rloo_seed0'})." in result.stdout
    )
    assert rule in result.stdout and "nan" not in result.stdout
