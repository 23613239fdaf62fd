"""Sequential studies (docs/studies.md): a plan's waves on the toy world, in the in-process launcher;
a decided claim stops the plan; an undecidable one runs it to max_seeds; SIGKILL mid-wave and the same
command resumes without training a completed run again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from align_lab.results.plan_record import read_record
from tests.conftest import FULL, ROOT, SMALL, forked

PLAN = "plan={start: 2, wave: 2, max_seeds: 6}"


def study_args(cache_dir, sweep: Path, *extra, plan: str = PLAN) -> list[str]:
    return ["-m", "hardware=cpu", *SMALL, f"cache_dir={cache_dir}", "train.steps=2", plan, *extra,
            f"hydra.sweep.dir={sweep}"]  # fmt: skip


def run_folders(sweep: Path) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if (p / ".hydra").is_dir())


def test_a_decided_claim_stops_the_plan_after_its_first_wave(tmp_path, cache_dir):
    # the arms differ by train.steps, so every seed's "step" differs by exactly 3 - 2 = 1: equal non-zero
    # differences, whose exact sign-flip p is 2 / 2**6 = 0.03125 at 6 seeds (the t-test gave them p = 0 at
    # any look); plan 6/1/7: look 1's level 2 - 2 Phi(1.96 / sqrt(6/7)) = 0.03426 >= 0.03125: decided there
    sweep = tmp_path / "decided"
    args = study_args(
        cache_dir,
        sweep,
        "train.steps=2,3",
        "compare_by=train.steps",
        'claims=["3 > 2 on step"]',
        plan="plan={start: 6, wave: 1, max_seeds: 7}",
    )
    result = forked()(args, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "REPRODUCED   3 > 2 on step: at look 1 (6 seeds)" in result.stdout, result.stdout[-2000:]
    assert "align_lab: look 1 of the plan\nplan: 1 looks at 6 seeds per arm" in result.stdout  # as it looks
    assert result.stdout.count("REPRODUCED ") == 1  # the last look's block was said twice (fourth hunt)
    record = read_record(sweep)
    assert len(record["looks"]) == 1 and record["stopped"] == "every claim decided"
    assert record["seeds_run"] == {"2": 6, "3": 6}
    assert record["looks"][0]["p"] == [2 / 2**6]
    assert record["looks"][0]["level"] == [pytest.approx(0.034260, abs=1e-6)]
    assert run_folders(sweep) == sorted(f"{i}_reinforce_pp_seed{i // 2}" for i in range(12))
    # the same command again: the recorded wave's runs are complete, so nothing is launched
    metrics = {name: (sweep / name / "metrics.jsonl").stat().st_mtime_ns for name in run_folders(sweep)}
    again = forked()(args, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "REPRODUCED   3 > 2 on step: at look 1 (6 seeds)" in again.stdout
    assert {
        name: (sweep / name / "metrics.jsonl").stat().st_mtime_ns for name in run_folders(sweep)
    } == metrics
    assert read_record(sweep)["looks"] == record["looks"]


@FULL
def test_a_plan_killed_mid_wave_resumes_without_training_a_completed_run_again(tmp_path, cache_dir):
    # two identical arms (they differ only by their study name): every difference is 0, p = 1, so the
    # claim stays open and the plan runs both its waves: 2 + 2 seeds x 2 arms = 8 runs, killed in the
    # second (a third wave would add 4 runs and nothing the kill tests)
    sweep = tmp_path / "killed"
    claim = 'claims=["x > y on step"]'
    plan = "plan={start: 2, wave: 2, max_seeds: 4}"
    args = study_args(cache_dir, sweep, "study=x,y", "compare_by=study", claim, plan=plan)
    cmd = [sys.executable, "-m", "align_lab", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def in_wave_two() -> bool:  # look 1 recorded and wave 2's first run training
        record = read_record(sweep) or {}
        return (
            len(record.get("looks", [])) == 1 and (sweep / "4_reinforce_pp_seed2" / "metrics.jsonl").exists()
        )

    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not in_wave_two():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert in_wave_two(), "the plan did not reach wave 2"
    done = {}
    for name in run_folders(sweep):
        summary = json.loads((sweep / name / "summary.json").read_text())
        if summary["status"] == "completed":
            metrics = sweep / name / "metrics.jsonl"
            done[name] = (metrics.read_bytes(), metrics.stat().st_mtime_ns)
    assert {"0_reinforce_pp_seed0", "3_reinforce_pp_seed1"} <= set(done)  # wave 1 completed

    result = forked()(args, cwd=ROOT)  # the same command again
    assert result.returncode == 0, result.stderr[-2000:]
    for name, (text, mtime) in done.items():
        metrics = sweep / name / "metrics.jsonl"
        assert (metrics.read_bytes(), metrics.stat().st_mtime_ns) == (text, mtime), f"{name} trained again"
    record = read_record(sweep)
    assert [look["seeds"] for look in record["looks"]] == [2, 4]
    assert record["stopped"] == "plan.max_seeds=4 reached" and record["seeds_run"] == {"x": 4, "y": 4}
    assert [look["p"] for look in record["looks"]] == [[1.0], [1.0]]
    assert run_folders(sweep) == sorted(f"{num}_reinforce_pp_seed{num // 2}" for num in range(8))
    assert "INCONCLUSIVE x > y on step: open after look 2 (4 seeds)" in " ".join(result.stdout.split())


@pytest.mark.fast
def test_a_refused_plan_is_one_line_and_leaves_no_sweep_folder(tmp_path, cache_dir):
    # a plan chooses the seeds, so a swept seed is refused before anything runs; the folder Hydra made
    # for the sweep (holding only its multirun.yaml) is removed again, as for any refused sweep
    sweep = tmp_path / "refused"
    claim = 'claims=["3 > 2 on step"]'
    args = study_args(cache_dir, sweep, "train.steps=2,3", "compare_by=train.steps", claim, "seed=0,1")
    result = forked()(args, cwd=ROOT)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "a plan chooses the seeds" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not sweep.exists()


@pytest.mark.fast
@pytest.mark.parametrize(
    "damage",
    ['{"plan": {"start": 2, "wave": 2', '{"plan": {"start": 2}, "looks": [{"index": 0}]}'],
    ids=["torn", "not_a_record"],
)
def test_a_damaged_plan_json_is_refused_in_one_line_and_left_as_it_is(tmp_path, cache_dir, damage):
    # the record holds the waves, the looks and elapsed_s (the time budget spent): the launcher must not
    # start a fresh plan over it, which would restart the budget at 0 s; nothing runs, nothing is written
    sweep = tmp_path / "damaged"
    sweep.mkdir()
    (sweep / "plan.json").write_text(damage)
    (sweep / "multirun.yaml").write_text("# the sweep that wrote plan.json\n")
    claim = 'claims=["3 > 2 on step"]'
    args = study_args(cache_dir, sweep, "train.steps=2,3", "compare_by=train.steps", claim)
    result = forked()(args, cwd=ROOT)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert f"hydra.sweep.dir={sweep}: {sweep / 'plan.json'}: " in line and "left as it is" in line
    assert (sweep / "plan.json").read_text() == damage
    assert (sweep / "multirun.yaml").read_text() == "# the sweep that wrote plan.json\n"
    assert sorted(p.name for p in sweep.iterdir()) == ["multirun.yaml", "plan.json"]


@pytest.mark.fast
def test_a_run_key_changed_between_looks_is_one_line_naming_it_and_nothing_is_rewritten(tmp_path, cache_dir):
    # wave 1 recorded its jobs with sft.epochs=3; the rerun has sft.epochs=2 (SMALL): a claim's differences
    # would mix two configs. It was a RuntimeError traceback ("plan changed?") after Hydra had rewritten
    # multirun.yaml with the refused sweep's config; now one line naming the key, both files as they were
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from align_lab.results.plan_record import seeds_run

    sweep = tmp_path / "changed"
    sweep.mkdir()
    claim = 'claims=["3 > 2 on step"]'
    args = study_args(cache_dir, sweep, "train.steps=2,3", "compare_by=train.steps", claim)
    task = [a for a in args if a != "-m" and not a.startswith("hydra.")]
    (batch,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(task), None)
    before = [[o.replace("sft.epochs=2", "sft.epochs=3") for o in job] for job in batch]
    jobs = [[*job, f"seed={s}"] for s in (0, 1) for job in before]  # wave 1: seeds 0, 1 of each arm
    record = {
        "plan": {"start": 2, "wave": 2, "max_seeds": 6, "budget_s": None, "alpha": 0.05},
        "claims": ["3 > 2 on step"],
        "compare_by": "train.steps",
        "arms": ["2", "3"],
        "waves": [{"seeds": [0, 1], "arms": ["2", "3"], "jobs": jobs}],
        "looks": [],
        "elapsed_s": 1.0,
        "stopped": "",
    }
    record["seeds_run"] = seeds_run(record)
    (sweep / "plan.json").write_text(json.dumps(record, indent=1))
    (sweep / "multirun.yaml").write_text("# the sweep that wrote plan.json\n")
    written = (sweep / "plan.json").read_text()
    result = forked()(args, cwd=ROOT)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"align_lab: error: hydra.sweep.dir={sweep}: wave 1 of its plan.json ran arm 2 with sft.epochs=3, "
        "this sweep has sft.epochs=2; a plan's runs keep one config across its looks: rerun with the "
        "recorded value, or choose another hydra.sweep.dir"
    )
    assert (sweep / "plan.json").read_text() == written
    assert (sweep / "multirun.yaml").read_text() == "# the sweep that wrote plan.json\n"
    assert sorted(p.name for p in sweep.iterdir()) == ["multirun.yaml", "plan.json"]


def test_a_replay_whose_arms_list_their_keys_in_another_order_runs_its_recorded_wave(tmp_path, cache_dir):
    # the same sweep, its keys typed in another order: check_replay compares each arm's keys and values,
    # so the runs are the same; the wave's jobs, compared as lists, raised RuntimeError("plan changed?")
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from align_lab.results.plan_record import seeds_run

    sweep = tmp_path / "reordered"
    sweep.mkdir()
    claim = 'claims=["3 > 2 on step"]'
    plan = "plan={start: 2, wave: 2, max_seeds: 2}"
    args = study_args(cache_dir, sweep, "train.steps=2,3", "compare_by=train.steps", claim, plan=plan)
    task = [a for a in args if a != "-m" and not a.startswith("hydra.")]
    (batch,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(task), None)
    jobs = [[*reversed(job), f"seed={s}"] for s in (0, 1) for job in batch]  # wave 1, keys reversed
    record = {
        "plan": {"start": 2, "wave": 2, "max_seeds": 2, "budget_s": None, "alpha": 0.05},
        "claims": ["3 > 2 on step"],
        "compare_by": "train.steps",
        "arms": ["2", "3"],
        "waves": [{"seeds": [0, 1], "arms": ["2", "3"], "jobs": jobs}],
        "looks": [],
        "elapsed_s": 1.0,
        "stopped": "",
    }
    record["seeds_run"] = seeds_run(record)
    (sweep / "plan.json").write_text(json.dumps(record, indent=1))
    result = forked()(args, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert run_folders(sweep) == sorted(f"{i}_reinforce_pp_seed{i // 2}" for i in range(4))
    assert len(read_record(sweep)["looks"]) == 1
