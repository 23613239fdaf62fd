"""A sweep's claims are checked at launch (issue 34 item 7): an arm that no job has, or a metric no run
of the named arms will report, is a one-line error and exit 2 before any run starts; good claims start
the sweep, and each run's `compare:` hint names the sweep's folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, SMALL, forked


def sweep(tmp_path: Path, cache_dir: Path, claim: str, *extra: str):
    folder = tmp_path / "sweep"
    small = [o for o in SMALL if not (o.startswith("reward.") and "reward=verifier" in extra)]
    seed = [] if any(e.startswith("plan=") for e in extra) else ["seed=0"]  # a plan chooses the seeds
    args = ["-m", *small, f"cache_dir={cache_dir}", "algo=ppo,rloo", *seed, f"hydra.sweep.dir={folder}"]
    return forked()([*args, f"claims=[{claim!r}]", *extra], cwd=ROOT), folder


@pytest.mark.parametrize(
    ("claim", "extra", "message"),
    [
        (
            "rloo > pppo on eval/gold_reward",
            (),
            "claims: 'rloo > pppo on eval/gold_reward' names 'pppo', which no job of this sweep has as its "
            "algo (compare_by); they have ppo, rloo",
        ),
        (
            "rloo > ppo on eval/gold_rewrd",
            (),
            "claims: 'rloo > ppo on eval/gold_rewrd': no run of rloo will report eval/gold_rewrd; its runs "
            "report eval/distinct_1",
        ),
        (  # a robustness grid without x1, the arms' own runs (results/robust.py)
            "rloo > ppo on eval/gold_reward across algo.lr x 1/3,3",
            (),
            "claim 'rloo > ppo on eval/gold_reward across algo.lr x 1/3,3': x 1/3,3: the grid must be 2 or "
            "more distinct multipliers > 0 with 1 among them",
        ),
        (  # toy_prefs has no verifier: no pass@k
            "rloo > ppo on eval/pass@1",
            (),
            "claims: 'rloo > ppo on eval/pass@1': no run of rloo will report eval/pass@1",
        ),
    ],
)
def test_a_claim_naming_a_missing_arm_or_metric_stops_the_sweep_before_any_run(
    tmp_path, cache_dir, claim, extra, message
):
    result, folder = sweep(tmp_path, cache_dir, claim, *extra)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"align_lab: error: {message}"), last
    assert not folder.exists() or not any(p.is_dir() for p in folder.iterdir())  # no run folder


def test_good_claims_start_the_sweep_and_the_hint_names_the_sweep_folder(tmp_path, cache_dir):
    # pass@1 exists on toy_arith (a verifier); time/total_s is never refused
    result, folder = sweep(
        tmp_path,
        cache_dir,
        "rloo > ppo on eval/pass@1",
        "task=toy_arith",
        "reward=verifier",
        "train.steps=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from align_lab.run.summary import compare_command

    hints = [line.strip() for line in result.stderr.splitlines() if "compare:" in line]
    started_with = json.loads(next(folder.glob("*/summary.json")).read_text()).get("pythonpath")
    assert hints == [f"compare:    {compare_command(folder, started_with)}"] * 2  # its PYTHONPATH too


def test_a_sequential_study_refused_for_a_claims_metric_leaves_no_plan_to_refuse_the_fix(tmp_path, cache_dir):
    """Ninth hunt: the refused study left plan.json (its first wave, no run), and the corrected command
    was refused for claims that differ from the recorded ones, told to rerun the refused claims."""
    plan = "plan={start: 2, wave: 2, max_seeds: 4}"
    result, folder = sweep(tmp_path, cache_dir, "rloo > ppo on eval/gold_rewrd", plan)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "no run of rloo will report eval/gold_rewrd" in result.stderr.strip().splitlines()[-1]
    assert not (folder / "plan.json").exists() and not folder.exists(), sorted(folder.iterdir())
