"""A tuned study end to end (docs/studies.md, "Tuned studies"): sweeps/tuned_rloo_vs_ppo.yaml at a tiny
size on the toy world, in the in-process launcher: each arm tuned by Hydra's Optuna sweeper on the same
budget at its own seed and tuning split, the chosen values run on fresh seeds, compare shows the tuning;
killed mid-trial, the same command finishes that trial in its folder and trains no completed run again;
once finished, it runs nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import FULL, ROOT, SMALL, forked, run_cli
from tests.integration.test_studies import slurm  # noqa: F401 (the fixture: the test Slurm cluster)

pytestmark = pytest.mark.slow  # 8 runs then 2: about a minute on 2 cores


def args(cache_dir, sweep: Path, *extra, hardware: str = "cpu") -> list[str]:
    return ["--config-dir", "sweeps", "--config-name", "tuned_rloo_vs_ppo", f"hardware={hardware}", *SMALL,
            f"cache_dir={cache_dir}", "train.steps=2", "tune.trials=2", "tune.parallel=1", "seed=0", *extra,
            f"hydra.sweep.dir={sweep}"]  # fmt: skip


def overrides(run: Path) -> list[str]:
    return yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())


def mtimes(folder: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in folder.glob("*/metrics.jsonl")}


@FULL
def test_a_tuned_study_tunes_each_arm_then_runs_the_choice_on_fresh_seeds(cache_dir, tmp_path):
    sweep = tmp_path / "study"
    storage = f"sqlite:///{sweep / 'tuning' / 'optuna.db'}"
    # killed while ppo's second trial trains: rloo tuned, ppo's trial 0 complete, its trial 1 RUNNING
    cmd = [sys.executable, "-m", "align_lab", *args(cache_dir, sweep)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = sweep / "tuning" / "ppo" / "1_ppo_seed1000" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not second.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ppo = optuna.load_study(study_name="ppo", storage=storage).trials
    assert [t.state.name for t in ppo] == ["COMPLETE", "RUNNING"], "not killed in ppo's trial 1"
    done = {
        **mtimes(sweep / "tuning" / "rloo"),
        "0_ppo_seed1000": mtimes(sweep / "tuning" / "ppo")["0_ppo_seed1000"],
    }

    first = forked()(args(cache_dir, sweep), cwd=ROOT)  # the same command again: resumes
    assert first.returncode == 0, first.stderr[-3000:]
    for folder in ("rloo", "ppo"):
        now = mtimes(sweep / "tuning" / folder)
        assert all(now[n] == t for n, t in done.items() if n in now), "a completed trial trained again"
    record = json.loads((sweep / "tuning.json").read_text())
    for arm in ("rloo", "ppo"):
        study = optuna.load_study(study_name=arm, storage=storage)
        # the equal budget, 2 each; ppo's trial 1 finished in its own folder, no third trial
        assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
        folders = sorted(p.name for p in (sweep / "tuning" / arm).iterdir() if p.is_dir())
        assert folders == [f"0_{arm}_seed1000", f"1_{arm}_seed1000"]  # the tuning seed, each trial its folder
        trial = overrides(sweep / "tuning" / arm / folders[0])
        assert {"seed=1000", "tuning_split=0.2", "claims=[]"} <= set(trial)
        assert any(o.startswith("algo.lr=") for o in trial) and any(
            o.startswith("algo.kl_coef=") for o in trial
        )
        assert record["arms"][arm]["chosen"]["params"] == study.best_params
    # the claims' runs: each arm's chosen values on the fresh seed 0, in the study folder
    claims = {p.name: overrides(p) for p in sweep.iterdir() if (p / ".hydra").is_dir()}
    assert sorted(claims) == ["0_rloo_seed0", "1_ppo_seed0"]
    for name, arm in (("0_rloo_seed0", "rloo"), ("1_ppo_seed0", "ppo")):
        chosen = record["arms"][arm]["chosen"]["params"]
        assert {f"{k}={v}" for k, v in chosen.items()} | {"seed=0"} <= set(claims[name])
        assert not any(o.startswith("tuning_split") for o in claims[name])  # evaluated on the eval prompts
    assert "evaluation (18 prompts" in first.stderr  # the claims: the task's 18 eval prompts
    tuning_eval = (sweep / "tuning" / "ppo" / "0_ppo_seed1000" / "app.log").read_text()
    assert "evaluation (20 prompts" in tuning_eval  # a trial: round(102 x 0.2) = 20 of the training prompts
    # compare: the claim over the study's runs only (not the trials), and the tuning beside it
    from align_lab.compare import main

    assert main([str(sweep)]) == 0
    report = (sweep / "compare" / "report.md").read_text()
    assert "## Tuning" in report and "rloo: chose algo.lr=" in report and "best so far:" in report
    # the same command again: a finished study runs nothing
    before = {**mtimes(sweep), **mtimes(sweep / "tuning" / "rloo"), **mtimes(sweep / "tuning" / "ppo")}
    again = forked()(args(cache_dir, sweep), cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "policy optimisation:" not in again.stderr
    assert before == {
        **mtimes(sweep),
        **mtimes(sweep / "tuning" / "rloo"),
        **mtimes(sweep / "tuning" / "ppo"),
    }
    assert [len(optuna.load_study(study_name=a, storage=storage).trials) for a in ("rloo", "ppo")] == [2, 2]


def test_a_tuned_study_with_unequal_budgets_is_refused_before_any_run(cache_dir, tmp_path):
    sweep = tmp_path / "study"
    refused = forked()(args(cache_dir, sweep, "tune.trials={rloo: 2, ppo: 3}"), cwd=ROOT)
    assert refused.returncode != 0
    assert "tune.trials: unequal budgets (rloo 2, ppo 3)" in refused.stderr
    assert not (sweep / "tuning" / "optuna.db").exists()


def test_a_tuned_study_on_the_slurm_cluster_tunes_and_decides_there(slurm, cache_dir, tmp_path):  # noqa: F811
    """The same study through Slurm (hardware=slurm_cpu, the test cluster scripts/test.sh starts): each
    trial and each claims run is a Slurm job; rerun, it submits nothing."""
    sweep = tmp_path / "study"
    cmd = args(cache_dir, sweep, "tune.trials=1", hardware="slurm_cpu")
    first = run_cli(cmd, cwd=ROOT, env=slurm)
    assert first.returncode == 0, first.stderr[-3000:]
    manifests = [sweep / "tuning" / arm / "study.json" for arm in ("rloo", "ppo")] + [sweep / "study.json"]
    for manifest in manifests:
        record = json.loads(manifest.read_text())
        assert record["cluster"] == "slurm" and all(r["job_id"] for r in record["runs"]), manifest
    record = json.loads((sweep / "tuning.json").read_text())
    for arm in ("rloo", "ppo"):
        chosen = record["arms"][arm]["chosen"]["params"]
        trial = overrides(sweep / "tuning" / arm / f"0_{arm}_seed1000")
        assert {f"{k}={v}" for k, v in chosen.items()} <= set(trial)  # one trial: it is the choice
        assert (sweep / "tuning" / arm / f"0_{arm}_seed1000" / "summary.json").is_file()
    claims = sorted(p.name for p in sweep.iterdir() if (p / "summary.json").is_file())
    assert claims == ["0_rloo_seed0", "1_ppo_seed0"]
    before = {**mtimes(sweep), **mtimes(sweep / "tuning" / "rloo"), **mtimes(sweep / "tuning" / "ppo")}
    again = run_cli(cmd, cwd=ROOT, env=slurm)
    assert again.returncode == 0, again.stderr[-3000:]
    assert before == {
        **mtimes(sweep),
        **mtimes(sweep / "tuning" / "rloo"),
        **mtimes(sweep / "tuning" / "ppo"),
    }
