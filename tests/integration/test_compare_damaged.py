"""python -m align_lab.compare on damaged inputs (docs/faults.md, "Damaged inputs to compare"): each
damaged file gives a note naming it and what was left out, or a one-line refusal; no figure is dropped
or changed in silence. test_compare.py's hand-built sweep, with one input damaged per test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.test_compare import compare, make_sweep

TORN_PLAN = '{"plan": {"start": 2, "wave": 2'  # a write cut short
NOT_A_PLAN = '{"claims": ["ppo > rloo on step"], "looks": [{"index": 0}]}'  # JSON, not as written
SEEDS_A_WORD = json.dumps(
    {"arms": ["ppo"], "claims": [], "looks": [], "waves": [{"arms": ["ppo"], "seeds": "0,1"}]}
)


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (TORN_PLAN, "cannot be read (JSONDecodeError: "),
        (NOT_A_PLAN, "not a plan record (KeyError: 'seeds')"),
        # fourth hunt of 2026-12-04: pr_Q4, "0,1" counted as 3 seeds run; pc_Q2, a named pipe hung compare
        (SEEDS_A_WORD, "not a plan record (TypeError: waves[].seeds='0,1': not a list of seeds)"),
        (None, "a named pipe, not a plan record: not read"),
    ],
    ids=["torn", "not_a_record", "seeds_a_word", "a_named_pipe"],
)
def test_a_damaged_plan_json_is_a_note_naming_it(tmp_path: Path, damage: str | None, said: str) -> None:
    sweep = make_sweep(tmp_path)
    (sweep / "plan.json").write_text(damage) if damage is not None else os.mkfifo(sweep / "plan.json")
    out = tmp_path / "out"
    result = compare(str(sweep), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    note = f"note: {sweep / 'plan.json'}: {said}"
    (line,) = [x for x in result.stdout.splitlines() if x.strip().startswith(note)]
    assert line.endswith("the sequential plan's looks and verdicts (the study's verdicts) are left out")
    assert "sequential plan (plan.json)" not in result.stdout  # no verdicts from a damaged record
    assert f"{sweep / 'plan.json'}: {said}" in (out / "report.md").read_text()
    assert damage is None or (sweep / "plan.json").read_text() == damage  # compare only reads


def write_samples(run_dir: Path, tail: str = "") -> None:
    """2 prompts x 2 samples at the final step 4 (gold 0.1, 0.3 and 0.2, 0.6: a finite evaluation
    variance), then `tail` (damaged lines)."""
    golds = {(0, 0): 0.1, (0, 1): 0.3, (1, 0): 0.2, (1, 1): 0.6}
    lines = [
        json.dumps(
            {"step": 4, "prompt_id": p, "sample": s, "prompt": f"q{p}", "response": "r", "gold_reward": g}
        )
        for (p, s), g in golds.items()
    ]
    (run_dir / "eval_samples.jsonl").write_text("\n".join(lines) + "\n" + tail)


def sweep_with_samples(root: Path) -> Path:
    """test_compare's sweep, every completed run with its eval_samples.jsonl."""
    sweep = make_sweep(root)
    for run_dir in sweep.iterdir():
        if (run_dir / "summary.json").is_file() and '"completed"' in (run_dir / "summary.json").read_text():
            write_samples(run_dir)
    return sweep


def notes(stdout: str) -> list[str]:
    return [
        line.strip().removeprefix("note: ") for line in stdout.splitlines() if line.startswith("  note: ")
    ]


def test_a_missing_samples_file_is_a_note_naming_what_it_left_out(tmp_path: Path) -> None:
    # ppo seed 0 has no eval_samples.jsonl: ppo's noise share comes from its seeds 1 and 2 alone, the
    # claim on eval/gold_reward that names ppo loses its evaluation split, and seed 0 (every group has
    # it: the smallest such seed) is the Samples section's seed, so ppo's column goes
    sweep = sweep_with_samples(tmp_path)
    gone = sweep / "0_ppo_seed0" / "eval_samples.jsonl"
    gone.unlink()
    out = tmp_path / "out"
    result = compare(str(sweep), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    said = (
        f"{gone}: missing; left out of the evaluation-noise share of ppo (from 2 of its 3 runs), the "
        "power split of 'reinforce_pp > ppo on eval/gold_reward', the Samples section's ppo column."
    )
    assert said in notes(result.stdout)
    assert said in (out / "report.md").read_text()
    assert sum(str(gone.parent) in n for n in notes(result.stdout)) == 1  # one note for the file


def test_a_garbled_samples_file_is_a_note_with_the_lines_skipped(tmp_path: Path) -> None:
    # rloo seed 0's file ends with a torn line and a line that is not JSON: 2 lines skipped, its 4
    # records read; rloo is in no claim on an eval/ metric (rloo < ppo is on time/total_s)
    sweep = sweep_with_samples(tmp_path)
    torn = sweep / "6_rloo_seed0" / "eval_samples.jsonl"
    write_samples(torn.parent, tail='{"step": 4, "prompt_id": 1, "sa\n\x00\x00garbage\n')
    result = compare(str(sweep), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"{torn}: 2 damaged lines skipped (torn or not a JSON record); the evaluation-noise share of rloo, "
        "the Samples section read its other 4 records."
    ) in notes(result.stdout)
    assert not any("eval_samples.jsonl" in n for n in notes(result.stdout) if str(torn) not in n)


def test_a_samples_section_left_with_no_column_says_so(tmp_path: Path) -> None:
    # every group's seed-0 run lost its file: the section has nothing to show; each note says so
    sweep = sweep_with_samples(tmp_path)
    for name in ("0_ppo_seed0", "3_reinforce_pp_seed0", "6_rloo_seed0"):
        (sweep / name / "eval_samples.jsonl").unlink()
    out = tmp_path / "out"
    result = compare(str(sweep), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    left = [n for n in notes(result.stdout) if "the Samples section" in n]
    assert len(left) == 3 and all(
        n.endswith("(not shown: no run at seed 0 has readable samples).") for n in left
    )
    assert "## Samples" not in (out / "report.md").read_text()


def test_a_study_that_kept_no_samples_has_no_note(tmp_path: Path) -> None:
    # no run wrote eval_samples.jsonl (keep_eval_samples=false, or runs from before it): nothing damaged
    result = compare(str(make_sweep(tmp_path)), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any("eval_samples.jsonl" in n for n in notes(result.stdout))


def test_wandb_on_runs_of_no_named_study_is_refused_in_one_line(tmp_path: Path) -> None:
    # runs of study=default (conf/config.yaml's: no study named), which never logged to W&B: the compare
    # run's group, and the dashboard's filter, would be "default", every unnamed study's group
    sweep = make_sweep(tmp_path)
    for config in sweep.glob("*/.hydra/config.yaml"):
        config.write_text(config.read_text().replace("study: toy_compare", "study: default"))
    out = tmp_path / "out"
    env = {"WANDB_MODE": "offline", "HOME": str(tmp_path), "WANDB_API_KEY": "", "NETRC": str(tmp_path / "no")}
    result = compare(str(sweep), "--out", str(out), "--wandb", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("align_lab.compare: error: --wandb: the runs name no study (study=default")
    assert not out.exists()  # refused before any report
    assert compare(str(sweep), "--out", str(out)).returncode == 0  # without --wandb: the report


def test_wandb_on_runs_of_no_named_study_that_logged_to_wandb_scopes_the_dashboard_by_their_ids(
    tmp_path: Path,
) -> None:
    # a sweep run the README's way (python -m align_lab -m algo=...,... seed=0,1: study=default, W&B
    # offline files in each run, wandb_run_id.txt): before, refused as the runs above are
    sweep = make_sweep(tmp_path)
    ids = []
    for i, config in enumerate(sorted(sweep.glob("*/.hydra/config.yaml"))):
        config.write_text(config.read_text().replace("study: toy_compare", "study: default"))
        (config.parent.parent / "wandb_run_id.txt").write_text(f"run{i:05d}\n")
        ids.append(f"run{i:05d}")
    out = tmp_path / "out"
    env = {"WANDB_MODE": "offline", "HOME": str(tmp_path), "WANDB_API_KEY": "", "NETRC": str(tmp_path / "no")}
    result = compare(str(sweep), "--out", str(out), "--wandb", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "align_lab.compare: W&B offline: compare run in " in result.stdout
    spec = json.loads((out / "wandb_report.json").read_text())["report_spec"]["spec"]
    study = spec["blocks"][[b["type"] for b in spec["blocks"]].index("panel-grid")]["metadata"]["runSets"][0]
    scope = study["filters"]["filters"][1]
    assert (scope["key"]["name"], scope["op"], scope["value"]) == ("name", "IN", ids)  # W&B's "name": ID


@pytest.mark.fast
def test_a_run_given_twice_through_a_link_or_a_copy_is_counted_once(tmp_path: Path) -> None:
    """compare <run> <link to it> (or a cp -r copy) read one seed as two: `n=2 ... [all seeds equal]`
    (third fresh hunt, issue 73). A copy is the same summary.json config_digest, seed and start time."""
    import shutil

    from align_lab.results.runs import load_runs

    make_sweep(tmp_path)
    run = next((tmp_path / "multirun").rglob("0_*_seed0"))
    summary = json.loads((run / "summary.json").read_text())
    summary |= {"config_digest": "abc", "started": 1.5}
    (run / "summary.json").write_text(json.dumps(summary))
    shutil.copytree(run, tmp_path / "copy")
    (tmp_path / "link").symlink_to(run, target_is_directory=True)
    runs, problems = load_runs([run, tmp_path / "link", tmp_path / "copy"])
    given = {str(run), str(tmp_path / "link"), str(tmp_path / "copy")}
    [kept] = [str(r.folder) for r in runs]  # the first in path order; the other two named
    assert sorted(p.split(":")[0] for p in problems if "the same run as" in p) == sorted(given - {kept})


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("0.5", "text, not a number"),
        (float("inf"), "not a finite number within float32's range"),
        (1e308, "not a finite number within float32's range"),  # fifth hunt: a matplotlib traceback
    ],
)
def test_a_summary_metric_that_is_text_or_infinite_is_a_note_and_its_logged_value_is_read(
    tmp_path: Path, value, kind
) -> None:
    """Issue 73 fourth hunt: summary.json `eval/gold_reward: "0.5"` was read as 0.5 in silence, and
    `Infinity` left the run's seed unpaired (`n=0 ... no seeds in common with the baseline`) with no
    word why. Now a note names the file, key and value, and the run's last logged value is read."""
    from align_lab.results.extract import final_value, last_value
    from align_lab.results.runs import load_run

    make_sweep(tmp_path)
    run_dir = next((tmp_path / "multirun").rglob("0_*_seed0"))
    summary = json.loads((run_dir / "summary.json").read_text())
    logged = last_value(load_run(run_dir).metrics, "eval/gold_reward")
    assert logged == logged and summary["eval/gold_reward"] == logged  # a number, as written
    # a text value that align_lab writes by design is no damage (the fifth hunt: every run was noted)
    summary |= {"rollout/decode_matmul": "exact"}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    assert load_run(run_dir).problems == []
    (run_dir / "summary.json").write_text(json.dumps(summary | {"eval/gold_reward": value}))
    run = load_run(run_dir)
    said = (
        f"summary.json: eval/gold_reward is {json.dumps(value)} ({kind}): its last logged value read instead"
    )
    assert run.problems == [said] and final_value(run, "eval/gold_reward") == logged
    result = compare(str(tmp_path / "multirun"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{run_dir}: {said}" in result.stdout


def test_a_completed_runs_empty_metrics_file_is_a_note(tmp_path: Path) -> None:
    """Issue 73 fourth hunt: a completed run whose metrics.jsonl was emptied read only as `Not in the
    compute-matched view (no generated tokens used or logged, e.g. offline pairwise training)`."""
    from align_lab.results.runs import load_run

    make_sweep(tmp_path)
    run_dir = next((tmp_path / "multirun").rglob("0_*_seed0"))
    (run_dir / "metrics.jsonl").write_text("")
    said = "metrics.jsonl: empty, though the run completed: it has no curves or budget"
    assert load_run(run_dir).problems == [said]
    result = compare(str(tmp_path / "multirun"), "--out", str(tmp_path / "out"))
    assert f"{run_dir}: {said}" in result.stdout, result.stdout


@pytest.mark.fast
def test_a_group_whose_runs_have_no_value_of_the_metric_says_so(tmp_path: Path) -> None:
    """Issue 73 fifth hunt: a group whose every completed run has eval/gold_reward NaN in summary.json
    read `n=0 ... no seeds in common with the baseline`, as if its seeds were the wrong ones."""
    import pandas as pd

    from align_lab.results.tables import paired_table

    runs = pd.DataFrame(
        {
            "group": ["a", "a", "b", "b"],
            "seed": [0, 1, 0, 1],
            "status": ["completed"] * 4,
            "eval/gold_reward": [float("nan"), float("nan"), 0.5, 0.6],
        }
    )
    [row] = paired_table(runs, "eval/gold_reward", ["a", "b"], "b").to_dict("records")
    assert row["n_pairs"] == 0
    assert row["verdict"] == (
        "none of its 2 completed runs has a value of eval/gold_reward (NaN or none in summary.json)"
    )


def test_a_metrics_value_past_float32s_range_is_left_out_with_a_note_and_the_report_is_drawn(
    tmp_path: Path,
) -> None:
    """Issue 73 fifth hunt: a completed run's metrics.jsonl holding eval/gold_reward 1e308 on one line
    (a value no run writes) gave a 23-frame traceback from matplotlib's ticks, rc 1, and no report."""
    make_sweep(tmp_path)
    run_dir = next((tmp_path / "multirun").rglob("0_*_seed0"))
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    first = json.loads(lines[0]) | {"eval/gold_reward": 1e308}
    (run_dir / "metrics.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    result = compare(str(tmp_path / "multirun"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    said = (
        f"{run_dir}: metrics.jsonl: 1 value past float32's range left out (a run writes none), the first "
        f"eval/gold_reward 1e+308 at step {first['step']}"
    )
    assert said in result.stdout and (tmp_path / "out" / "report.html").is_file()


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_while_compare_writes_its_report_is_one_line(tmp_path: Path, name: str) -> None:
    """Twenty-fourth hunt, case 32: Ctrl-C while compare wrote its figures: a 28-56-line KeyboardInterrupt
    traceback; SIGTERM: rc 143 and no word at all, the report left unfinished."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    sweep, out = make_sweep(tmp_path), tmp_path / "out"
    command = [sys.executable, "-m", "align_lab.compare", str(sweep), "--out", str(out)]
    comparing = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.png")) and comparing.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # its first figure: the report is being written
    comparing.send_signal(getattr(signal, name))
    _, err = comparing.communicate(timeout=120)
    assert comparing.returncode == 128 + getattr(signal, name), err[-3000:]
    assert err.strip() == (
        f"align_lab.compare: interrupted by {name}; the report in {out} may be unfinished: rerun the command"
    ), err[-3000:]


@pytest.mark.parametrize("command", ["compare", "study status", "study resume"])
def test_a_reader_that_stops_reading_is_no_error(tmp_path: Path, command: str) -> None:
    """Twenty-fourth hunt, cases 46-47: `compare <sweep> | head -1`: a 9-line BrokenPipeError traceback;
    `study status <sweep> | head -1`: "cannot write <the sweep folder> (Broken pipe); make it writable",
    rc 2. The command ends as it would, its own exit code, nothing on stderr."""
    import shlex
    import subprocess
    import sys

    from tests.conftest import ROOT

    sweep = make_sweep(tmp_path)
    module, *verb = command.split()
    args = [sys.executable, "-m", f"align_lab.{module}", *verb, str(sweep)]
    args += ["--out", str(tmp_path / "out")] if module == "compare" else []
    script = f"{shlex.join(args)} | true; echo rc=${{PIPESTATUS[0]}}"  # the reader gone before a line
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    alone = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == f"rc={alone.returncode}" and done.stderr == "", done.stderr[-3000:]


@pytest.mark.parametrize("command", ["compare", "study status"])
def test_a_full_stdout_is_one_line_naming_stdout(tmp_path: Path, command: str) -> None:
    """Twenty-fifth hunt, cases 4-5: `> /dev/full`: compare's 12-line OSError traceback, and `study status`
    "cannot write <the sweep folder> (No space left on device); make it writable". Twenty-sixth hunt, case
    3: then rc 0, so `study status > s.txt && ...` went on with what was lost: rc 1."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    sweep = make_sweep(tmp_path)
    module, *verb = command.split()
    args = [sys.executable, "-m", f"align_lab.{module}", *verb, str(sweep)]
    args += ["--out", str(tmp_path / "out")] if module == "compare" else []
    with open("/dev/full", "w") as full:
        done = subprocess.run(args, cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert (
        done.stderr.strip()
        == "align_lab: cannot write to stdout (No space left on device); what it would say is lost"
    ), done.stderr[-3000:]
    assert done.returncode == 1
