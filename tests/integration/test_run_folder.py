"""A run folder belongs to one run, sweeps report every failure, and a resumed run's time counts every
segment (issue 25, docs/faults.md): each case as a user meets it, through `python -m align_lab`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SMALL, full_but, run_cli
from tests.integration.test_faults import one_line_error


def start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "align_lab", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(condition, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def metric_lines(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def study_status(folder: Path, forked_cli=None) -> subprocess.CompletedProcess:
    if forked_cli is not None:
        return forked_cli(["status", str(folder)], module="align_lab.study")
    cmd = [sys.executable, "-m", "align_lab.study", "status", str(folder)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def hydra_files(run_dir: Path) -> dict:
    return {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir()}


# ---------------------------------------------------------------- a run folder belongs to one run
# a stray SLURM_PROCID in a shell outside any Slurm job (a copied environment, an allocation's shell):
# the run took no lock (rank 1 of a run across nodes does not), so two runs trained into one folder, rc 0
@pytest.mark.parametrize("env", [{}, {"SLURM_PROCID": "1", "SLURM_JOB_ID": "123"}], ids=["", "stray_procid"])
def test_a_second_process_on_a_live_run_folder_is_refused_naming_the_holder(
    tmp_path, cache_dir, forked_cli, env
):
    from align_lab.folder import holder

    run_dir = tmp_path / "run"
    # long enough that the second command is admitted while the first trains, on a loaded machine too (the
    # full suite of 206b69c beside a hunt: 6 steps had completed as the second was admitted)
    args = [*SMALL, "train.steps=60", f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"]
    first = start(args, env)
    try:
        wait_for(lambda: holder(run_dir) is not None or first.poll() is not None)
        second = forked_cli(args, cwd=ROOT, env=env)
        one_line_error(second, f"hydra.run.dir={run_dir}: in use by a run of pid {first.pid} on ")
        out, err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, err[-3000:]
    assert metric_lines(run_dir) == 60  # the first run's metrics, whole (before: both ran, an empty file)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert holder(run_dir) is None  # released when the run ended


def test_a_second_command_in_the_same_second_runs_in_a_folder_of_its_own(tmp_path, cache_dir, forked_cli):
    """Hunt of 2026-12-04, c80: `for k in 0.05 0.2; do python -m align_lab algo.kl_coef=$k & done` started
    both in one second, so one default folder (outputs/<date>/<time>_<algo>_seed0, named to the second):
    the second was refused. Here a process holds every default folder of the next 20 seconds, as the
    first command holds its own; the command runs in `<its default folder>-<pid>`, said in a note."""
    import datetime

    from align_lab.folder import holder

    now = datetime.datetime.now()
    names = [(now + datetime.timedelta(seconds=s)).strftime("%Y-%m-%d/%H-%M-%S") for s in range(20)]
    folders = [tmp_path / "outputs" / f"{name}_reinforce_pp_seed0" for name in names]
    code = (
        "import sys, time; from align_lab.folder import claim\nlocks = [claim(p) for p in sys.argv[1:]]\n"
        "print('held', flush=True); time.sleep(120)"
    )
    first = subprocess.Popen(
        [sys.executable, "-c", code, *map(str, folders)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout.readline() == "held\n"
        result = forked_cli([*SMALL, "train.steps=2", f"cache_dir={cache_dir}"], cwd=tmp_path)
        assert holder(folders[0]) is not None  # the first's folders, theirs still
    finally:
        first.kill()
        first.wait()
    assert result.returncode == 0, result.stderr[-3000:]
    note = next(line for line in result.stderr.splitlines() if "in use by a run started in the same" in line)
    taken, elsewhere = note.split(": note: ")[1].split(
        " is in use by a run started in the same second; this run goes to "
    )
    assert Path(taken) in folders and elsewhere.startswith(f"{taken}-")
    assert json.loads((Path(elsewhere) / "summary.json").read_text())["status"] == "completed"
    assert not (Path(taken) / "summary.json").exists()


def test_a_folder_with_files_align_lab_did_not_write_is_refused_before_anything_is_written(
    tmp_path, forked_cli
):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "summary.json").write_text('{"my": "own results"}')
    (folder / "notes.txt").write_text("keep")
    result = forked_cli([f"hydra.run.dir={folder}", f"cache_dir={tmp_path / 'cache'}"], cwd=ROOT)
    one_line_error(result, f"hydra.run.dir={folder}: holds files align_lab did not write", "notes.txt")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "summary.json"]  # no .hydra/, no log
    assert (folder / "summary.json").read_text() == '{"my": "own results"}'
    assert not (tmp_path / "cache").exists()


def test_a_refused_rerun_with_another_config_leaves_hydra_and_compare_as_they_were(
    tmp_path, cache_dir, forked_cli
):
    run_dir = tmp_path / "run"
    args = [*SMALL, "train.steps=1", f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"]
    assert forked_cli(args, cwd=ROOT).returncode == 0
    before = hydra_files(run_dir)
    result = forked_cli([*args, "algo.kl_coef=0.5"], cwd=ROOT)
    line = one_line_error(result, f"hydra.run.dir={run_dir}: holds a completed run of another config")
    # hunt of 2026-12-04, r5c: the key named, and the way to its results (no deletion offered)
    assert line.endswith(
        " (algo.kl_coef=0.05 there, 0.5 here); choose another folder, or ask it with algo.kl_coef=0.05 "
        "to see its results"
    ), line
    assert hydra_files(run_dir) == before  # compare --by algo.kl_coef reads .hydra/config.yaml
    # fifteenth hunt: only a key a resume may change (threads, the tracker) was "another config" too
    result = forked_cli([*args, "hardware.num_threads=2", "train.eval_text_chars=7"], cwd=ROOT)
    assert result.returncode == 0 and "align_lab: this run was already completed" in result.stderr, result
    assert hydra_files(run_dir) == before
    from align_lab.results.runs import load_run, lookup

    assert lookup(load_run(run_dir), "algo.kl_coef") == 0.05
    # sixteenth hunt, case 51: its config.resolved.yaml lost, summary.json's record still tells the run
    (run_dir / "config.resolved.yaml").unlink()
    result = forked_cli([*args, "hardware.num_threads=2"], cwd=ROOT)
    assert result.returncode == 0 and "align_lab: this run was already completed" in result.stderr, result
    one_line_error(
        forked_cli([*args, "algo.kl_coef=0.5"], cwd=ROOT),
        "holds a completed run of another config",
        f"delete {run_dir / 'summary.json'} and {run_dir / 'checkpoints'} to run there again",  # 17th hunt
    )
    # seventeenth hunt: and with other train.steps, "another config", whose way out extended the run
    one_line_error(
        forked_cli([*args, "train.steps=2"], cwd=ROOT),
        f"train.steps=2: hydra.run.dir={run_dir} holds this run completed at train.steps=1 (a completed run",
    )
    # fortieth hunt, case 59: with a key a resume may change beside it, "another config" and its delete
    one_line_error(
        forked_cli([*args, "train.steps=2", "hardware.num_threads=2"], cwd=ROOT),
        f"train.steps=2: hydra.run.dir={run_dir} holds this run completed at train.steps=1 (a completed run",
    )


def test_a_refused_sweep_leaves_an_earlier_sweeps_multirun_yaml_as_it_was(tmp_path, forked_cli):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("an earlier sweep's config\n")
    args = ["-m", "algo.lr=1e-3,-1", f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}"]
    one_line_error(
        forked_cli(args, cwd=ROOT),
        "algo.lr=-1.0: must be in (0, 1)",
    )
    assert (sweep / "multirun.yaml").read_text() == "an earlier sweep's config\n"
    assert sorted(p.name for p in sweep.iterdir()) == ["multirun.yaml"]


@pytest.mark.parametrize("where", ["named", "empty"])
def test_a_refused_sweep_into_a_folder_of_the_users_files_leaves_only_those(tmp_path, forked_cli, where):
    """Issue 73 sixth hunt: `-m ... hydra.sweep.dir=<a folder holding your files>` (or empty: the folder
    you are in), refused: Hydra's multirun.yaml of the refused sweep stayed among your files."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine\n")
    sweep_dir = folder if where == "named" else ""
    args = [
        "-m",
        "seed=6",
        f"hydra.sweep.dir={sweep_dir}",
        "algo.clip.low=1.5",
        f"cache_dir={tmp_path / 'c'}",
    ]
    # an empty one is refused as such before Hydra (forty-first hunt, case 34: an unset shell variable)
    said = "algo.clip.low=1.5" if where == "named" else "hydra.sweep.dir=: an empty folder"
    one_line_error(forked_cli(args, cwd=folder), said)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    "every", full_but([1, 100], {1}), ids=["checkpointed", "before_its_first_checkpoint"]
)
def test_a_killed_run_is_died_not_running_and_its_resume_counts_every_segment(
    every, tmp_path, cache_dir, forked_cli
):
    """Twenty-fourth hunt, case 37 (`before_its_first_checkpoint`): killed before its first checkpoint,
    the rerun from step 0 dropped the killed segment's time, the run reading as never interrupted."""
    from align_lab.results.runs import load_run

    run_dir = tmp_path / "run"
    args = [*SMALL, "train.steps=12", f"train.checkpoint_every={every}", f"cache_dir={cache_dir}"]
    args += [f"hydra.run.dir={run_dir}"]
    proc = start(args)
    try:
        wait_for(lambda: metric_lines(run_dir) >= 3 or proc.poll() is not None)
        # held where it is while `study status` starts (seconds, as long as the run's last 9 steps on a
        # fast machine: it once finished first, 2026-11-27), then killed
        os.kill(proc.pid, signal.SIGSTOP)
        assert proc.poll() is None, "the run ended before it could be killed"
        status = study_status(run_dir, forked_cli)
        assert " running " in status.stdout, status.stdout
        os.kill(proc.pid, signal.SIGKILL)  # nothing can say goodbye: summary.json stays "running"
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"
    status = study_status(run_dir, forked_cli)
    assert status.returncode == 1 and " died " in status.stdout and "1 died" in status.stdout, status.stdout
    assert load_run(run_dir).status == "died"  # compare's view

    result = forked_cli(args, cwd=ROOT)  # the same command resumes
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    first, second = summary["segments_s"]
    assert summary["time/segments"] == 2 and first > 0 and second > 0
    # time/total_s = the killed segment (until its last write) + the resumed one (before: the last alone)
    assert summary["time/total_s"] == pytest.approx(first + second, abs=0.5)
    assert summary["time/total_s"] > second


def test_a_sweep_into_a_folder_where_a_sweep_is_running_is_one_line_and_leaves_its_record(
    tmp_path, cache_dir, forked_cli
):
    """Forty-second hunt, case 24: a second sweep into a live sweep's folder was accepted and rewrote its
    multirun.yaml; the first sweep's SIGTERM line, `study status` and `study resume` then gave the second's
    command, which found its runs "already completed" and left the interrupted one as it was."""
    sweep = tmp_path / "sweep"
    args = [*SMALL, f"cache_dir={cache_dir}", f"hydra.sweep.dir={sweep}"]
    first = start(["-m", "seed=0,1", "train.steps=400", *[a for a in args if a != "train.steps=3"]])
    try:
        wait_for(lambda: metric_lines(sweep / "0_reinforce_pp_seed0") >= 1 or first.poll() is not None)
        assert first.poll() is None, "the first sweep ended before the second started"
        record = (sweep / "multirun.yaml").read_bytes()
        result = forked_cli(["-m", "seed=2,3", *args], cwd=ROOT)
    finally:
        first.kill()
        first.wait(timeout=60)
    assert result.returncode == 2, result.stderr[-3000:]
    said = result.stderr.strip().splitlines()[-1]
    assert said.startswith(
        f"align_lab: error: hydra.sweep.dir={sweep}: a sweep there is running (its run "
        "0_reinforce_pp_seed0 in use by pid "
    ), result.stderr[-3000:]
    assert (sweep / "multirun.yaml").read_bytes() == record
    assert not list(sweep.glob("*_seed2"))


FAILS_ONCE = """
import os

def score(prompts, responses):
    if os.path.exists(os.path.join(os.path.dirname(__file__), "FAIL")):
        raise RuntimeError("flaky")
    return [float(len(r.split())) for r in responses]
"""


def test_a_run_that_failed_before_its_first_step_counts_that_segment_as_it_is_resumed(
    tmp_path, cache_dir, forked_cli
):
    """Forty-second hunt, case 15: a reward failing at its first call ("fix it, then resume from step 0"),
    the same command once fixed: the failed segment's time was dropped (time/segments 1), where a failure
    at step 3 kept both."""
    (tmp_path / "flaky.py").write_text(FAILS_ONCE)
    (tmp_path / "FAIL").touch()
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, "train.steps=2", f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    args += ["reward.path=flaky:score"]
    result = forked_cli(args, cwd=tmp_path)
    assert result.returncode == 2 and "then resume from step 0 with" in result.stderr, result.stderr[-3000:]
    failed = json.loads((run_dir / "summary.json").read_text())["segments_s"]
    (tmp_path / "FAIL").unlink()
    result = forked_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["time/segments"] == 2 and summary["segments_s"][0] == failed[0], summary["segments_s"]
    assert summary["time/total_s"] == pytest.approx(sum(summary["segments_s"]), abs=0.5)


def test_an_uninterrupted_run_has_one_segment(tmp_path, cache_dir, forked_cli):
    run_dir = tmp_path / "run"
    args = [*SMALL, "train.steps=1", f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"]
    assert forked_cli(args, cwd=ROOT).returncode == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["time/segments"] == 1
    assert summary["time/total_s"] == pytest.approx(summary["segments_s"][0], abs=0.5)


# ---------------------------------------------------------------- sweeps report every failure
FLAKY = """
def boom(prompts, responses):
    raise RuntimeError("reward server exploded")


def ok(prompts, responses):
    return [float(len(r.split())) for r in responses]
"""


@pytest.mark.parametrize("hardware", full_but(["cpu", "submitit_local"], {"cpu"}))
def test_a_sweep_reports_every_failed_run_in_one_line_and_keeps_the_others(hardware, tmp_path, cache_dir):
    # a reward function that raises at run time (not refusable up front)
    (tmp_path / "flaky_reward.py").write_text(FLAKY)
    sweep = tmp_path / "sweep"
    small = [o for o in SMALL if not o.startswith("reward.")]
    args = ["-m", *small, "train.steps=1", "reward=function", "reward.path=flaky_reward:boom,flaky_reward:ok"]
    args += ["seed=0,1", f"hardware={hardware}", f"cache_dir={cache_dir}", f"hydra.sweep.dir={sweep}"]
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    result = run_cli(args, cwd=ROOT, env={"PYTHONPATH": path})
    err = result.stderr
    assert result.returncode == 1, err[-3000:]
    assert "Traceback" not in err and "Error executing job" not in err, err[-3000:]
    out = result.stdout
    failed = [line for line in out.splitlines() if line.startswith("align_lab: run #") and "failed" in line]
    assert len(failed) == 2, out[-3000:]  # one line each, on stdout, as it failed
    # the user's function named, and the resume command once it is fixed (issue 73: was its exception alone)
    said = "reward.path=flaky_reward:boom: raised RuntimeError: reward server exploded"
    said += f" at {tmp_path / 'flaky_reward.py'}:3; fix it, then resume"  # its file:line (36th hunt, 21)
    for line in failed:
        assert "(reward.path=flaky_reward\\:boom seed=" in line
        assert line.split("): failed: ")[1].startswith(said)
    tail = err[err.index("align_lab: 2 of 4 runs failed:") :].splitlines()
    assert tail[1].startswith(f"  #0 reward.path=flaky_reward\\:boom seed=0: {said}")
    assert tail[2].startswith(f"  #1 reward.path=flaky_reward\\:boom seed=1: {said}")
    statuses = {d.name: json.loads((d / "summary.json").read_text())["status"] for d in sweep.glob("*_seed*")}
    assert sorted(statuses.values()) == ["completed", "completed", "failed", "failed"]
    # status reads the same, with or without a study manifest (submitit / in process)
    status = study_status(sweep)
    assert (
        status.returncode == 1
        and "2 done, 0 running, 0 pending, 0 interrupted, 2 failed, 0 died" in status.stdout
    )


@pytest.mark.fast
def test_a_completed_runs_torn_summary_says_so_and_its_hint_resumes_the_run(tmp_path, cache_dir):
    """Issue 73 fourth hunt: a completed run whose summary.json is torn, its own command said `holds files
    align_lab did not write (summary.json (not one align_lab wrote)); choose an empty or new folder`:
    the folder is its own. Now the line says the summary is damaged and that moving it away resumes the
    run from its checkpoints; followed, the same command completes with the same results."""
    from align_lab.config import ConfigError
    from tests.conftest import run_in_process

    run_dir = tmp_path / "run"
    first = run_in_process(["algo=reinforce_pp", "reward=gold"], run_dir, cache_dir)
    (run_dir / "summary.json").write_text("{garbage")
    with pytest.raises(ConfigError) as e:
        run_in_process(["algo=reinforce_pp", "reward=gold"], run_dir, cache_dir)
    assert str(e.value) == (
        f"hydra.run.dir={run_dir}: its summary.json damaged (Expecting property name enclosed in double "
        f"quotes: line 1 column 2 (char 1)); move {run_dir / 'summary.json'} away to resume the run from its "
        "checkpoints (a completed run's results are then written again), or choose another hydra.run.dir"
    )
    (run_dir / "summary.json").rename(tmp_path / "torn.json")
    again = run_in_process(["algo=reinforce_pp", "reward=gold"], run_dir, cache_dir)
    assert again["status"] == "completed"
    assert again["eval/gold_reward"] == first["eval/gold_reward"]


def test_a_run_made_inside_a_sweeps_folder_is_said_to_join_it_and_the_sweeps_own_runs_are_not(
    tmp_path, cache_dir, forked_cli
):
    """Forty-first hunt, case 30: `hydra.run.dir=<a sweep's folder>/newrun` trained with no line, and compare
    of the sweep then counted it as a further seed of the sweep's. A run added by hand may be meant: said."""
    sweep = tmp_path / "sweep"
    args = [*SMALL, "train.steps=1", f"cache_dir={cache_dir}"]
    result = forked_cli(["-m", "seed=0", *args, f"hydra.sweep.dir={sweep}"], cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lies inside the sweep" not in result.stderr, result.stderr[-3000:]
    result = forked_cli([*args, f"hydra.run.dir={sweep / 'newrun'}"], cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    said = [x for x in result.stderr.splitlines() if "lies inside the sweep" in x]
    assert said == [
        f"align_lab: note: hydra.run.dir={sweep / 'newrun'} lies inside the sweep {sweep} (its "
        "multirun.yaml): compare and `study status` of it will read this run as one of its runs"
    ], result.stderr[-3000:]
