"""study/status.py run_state: what `study status` says of a run from its folder and its job's end."""

from __future__ import annotations

import json

import pytest

from align_lab.study import status
from align_lab.study.status import DIED, run_state


@pytest.mark.parametrize("cluster, ended", [("local", "FINISHED"), ("slurm", "COMPLETED")])
def test_a_run_killed_mid_steps_whose_job_ended_is_died_and_resumable_not_a_jobs_normal_end(
    cluster, ended, tmp_path, monkeypatch
):
    """Twenty-third hunt, case 9: a local sweep's run killed with kill -9 at step 107 (its summary still
    `running`, nobody holding its run.lock): `failed [job 14604 ended (FINISHED) before the run
    completed]`, read as a normal end, where the launcher said it was killed, resumable."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"status": "running"}))
    (run_dir / "run.lock").write_text(json.dumps({"pid": 2**22 + 1, "host": "elsewhere"}))
    monkeypatch.setattr(status, "_scheduler_state", lambda run, cluster: ended)
    monkeypatch.setattr(status, "_job_result", lambda run: None)  # killed: the job wrote no result
    run = {"num": 0, "overrides": ["seed=0"], "run_dir": str(run_dir), "job_id": "14604"}
    state = run_state(run | {"submitit_folder": str(tmp_path / "submitit")}, cluster)
    assert (state.state, state.detail) == ("died", DIED)


def test_a_local_run_stopped_while_it_waited_for_its_slot_is_interrupted_not_failed(tmp_path, monkeypatch):
    """Twenty-third hunt, case 55: `hardware.max_parallel=1`, SIGTERM while run #1 waited for its slot:
    `failed [job N ended (FINISHED) before the run completed]` for a run that never started."""
    monkeypatch.setattr(status, "_scheduler_state", lambda run, cluster: "FINISHED")
    monkeypatch.setattr(status, "_job_result", lambda run: None)
    run = {"num": 1, "overrides": ["seed=1"], "run_dir": str(tmp_path / "never_made"), "job_id": "31"}
    state = run_state(run | {"submitit_folder": str(tmp_path / "submitit")}, "local")
    assert (state.state, state.detail) == (
        "interrupted",
        "job 31 ended before the run started; resume starts it",
    )


def test_a_run_whose_job_returned_and_whose_folder_was_deleted_is_said_so(tmp_path, monkeypatch):
    """Fifth hunt of 2026-12-04: a completed run's folder removed, `study status` said "job N ended before
    the run started": its job had returned (submitit's result), so the run ran and its folder is gone."""
    monkeypatch.setattr(status, "_scheduler_state", lambda run, cluster: "FINISHED")
    monkeypatch.setattr(status, "_job_result", lambda run: ("success", None))
    run = {"num": 1, "overrides": ["seed=1"], "run_dir": str(tmp_path / "deleted"), "job_id": "31"}
    state = run_state(run | {"submitit_folder": str(tmp_path / "submitit")}, "local")
    assert (state.state, state.detail) == (
        "interrupted",
        "job 31 ran it, its run folder is gone: resume runs it again",
    )


@pytest.mark.parametrize(
    "ended, said",
    [
        (
            "CANCELLED by 0",
            ("interrupted", "job 7_1 ended (CANCELLED) before the run started; resume starts it"),
        ),
        ("FAILED", ("failed", "job 7_1 ended (FAILED) before the run completed")),
    ],
)
def test_a_slurm_job_cancelled_before_its_run_began_is_interrupted_not_failed(
    ended, said, tmp_path, monkeypatch
):
    """Twenty-sixth hunt, case 45: `scancel` of a `%1` array while run #1 waited: `failed [job N_1 ended
    (CANCELLED) before the run completed]` for a run that never started (the local twin said interrupted).
    A job that failed before its run began stays failed: the scheduler's word says why."""
    monkeypatch.setattr(status, "_scheduler_state", lambda run, cluster: ended)
    monkeypatch.setattr(status, "_job_result", lambda run: None)
    run = {"num": 1, "overrides": ["seed=1"], "run_dir": str(tmp_path / "never_made"), "job_id": "7_1"}
    state = run_state(run | {"submitit_folder": str(tmp_path / "submitit")}, "slurm")
    assert (state.state, state.detail) == said


def test_resume_submits_again_neither_a_run_in_the_queue_nor_a_done_or_running_one():
    """Twenty-third hunt, case 46: `study resume` in the seconds after a Slurm preemption resubmitted the
    run whose requeued job was pending in the queue: two jobs for one folder."""
    from align_lab.study.__main__ import to_resubmit

    def state(num, name, job_id):
        return status.RunState(num, [], f"run{num}", job_id, name, "")

    states = [state(0, "pending", "41"), state(1, "pending", None), state(2, "interrupted", "42")]
    states += [
        state(3, "failed", "43"),
        state(4, "died", "44"),
        state(5, "done", "45"),
        state(6, "running", "46"),
    ]
    assert to_resubmit(states) == {1, 2, 3, 4}


def test_a_local_run_whose_job_controller_was_killed_while_it_trains_on_is_running_not_failed(
    tmp_path, monkeypatch
):
    """Twenty-fourth hunt, case 14: the run's job controller killed (kill -9), its run training on orphaned
    and holding its folder: `failed [job 23353 ended (FINISHED) before the run completed]`, and `study
    resume` then submitted it again (refused: in use)."""
    from align_lab.folder import claim
    from align_lab.study.__main__ import to_resubmit

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"status": "running"}))
    monkeypatch.setattr(status, "_scheduler_state", lambda run, cluster: "FINISHED")
    monkeypatch.setattr(status, "_job_result", lambda run: None)
    run = {"num": 0, "overrides": ["seed=0"], "run_dir": str(run_dir), "job_id": "23353"}
    lock = claim(run_dir)  # the orphaned run holds its folder
    try:
        state = run_state(run | {"submitit_folder": str(tmp_path / "submitit")}, "local")
    finally:
        lock.release()
    assert state.state == "running" and state.detail.startswith("job 23353 ended, its run trains on (pid "), (
        state
    )
    assert to_resubmit([state]) == set()


def test_a_moved_sweeps_runs_give_the_resume_command_of_the_folder_it_is_in_now(tmp_path):
    """Twenty-fourth hunt, case 12: a sweep folder moved (twice) after an interruption: `study status` and
    compare read its runs where they are, but gave each run's stored resume command, `hydra.sweep.dir=<the
    old folder>`, which starts a new sweep from step 0 there."""
    from align_lab.results.runs import load_runs

    made, moved = tmp_path / "sweep", tmp_path / "moved"
    moved.mkdir()
    (moved / "multirun.yaml").write_text("hydra: {}\n")
    line = "interrupted by SIGINT; resume from step 3 with: cd /w && python -m align_lab -m "
    line += f"hydra.sweep.dir={made}"
    (moved / "0_grpo_seed0").mkdir()
    (moved / "0_grpo_seed0" / "summary.json").write_text(json.dumps({"status": "interrupted", "error": line}))
    run = {"num": 0, "overrides": ["seed=0"], "run_dir": str(made / "0_grpo_seed0"), "job_id": None}
    (moved / "study.json").write_text(json.dumps({"cluster": "local", "sweep_dir": str(made), "runs": [run]}))
    now = line.replace(f"hydra.sweep.dir={made}", f"hydra.sweep.dir={moved}")
    assert [s.detail for s in status.study_states(moved)] == [now]
    (read,), _ = load_runs([moved])
    assert read.error == now


def test_a_manifest_written_with_a_relative_sweep_dir_is_not_taken_for_a_moved_study(tmp_path, monkeypatch):
    """Twenty-fourth hunt, case 15: Hydra's default sweep folder is relative (multirun/<date>/...), and so
    was study.json's sweep_dir: read from another folder, the study was "made in multirun/..." and `study
    resume` refused it as moved. Such a manifest is read against the folder the sweep was typed in."""
    from align_lab.results.manifest import load_manifest

    home = tmp_path / "home"
    sweep = home / "multirun" / "s"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {home}\n")
    run = {"num": 0, "overrides": ["seed=0"], "run_dir": str(sweep / "0_grpo_seed0")}
    manifest = {
        "cluster": "local",
        "sweep_dir": "multirun/s",
        "folder": "multirun/s/.submitit/%j",
        "runs": [run],
    }
    (sweep / "study.json").write_text(json.dumps(manifest))
    monkeypatch.chdir(tmp_path)
    read = load_manifest(sweep)
    assert "moved_from" not in read and read["folder"] == str(sweep / ".submitit" / "%j"), read


@pytest.mark.parametrize("job, said", [("RUNNING", "pending"), ("FINISHED", "interrupted")])
def test_an_interrupted_run_submitted_again_is_pending_until_its_job_ends(tmp_path, monkeypatch, job, said):
    """Twenty-fourth hunt, case 34: two `study resume` a second apart: the first's jobs not started yet, the
    runs still read `interrupted` (their summary an earlier segment's), and the second submitted both again:
    two jobs for each folder."""
    import os

    from align_lab.study.__main__ import to_resubmit

    run_dir, submitit = tmp_path / "run", tmp_path / "submitit"
    run_dir.mkdir()
    submitit.mkdir()
    line = "interrupted by SIGTERM; resume from step 20 with: ..."
    (run_dir / "summary.json").write_text(json.dumps({"status": "interrupted", "error": line}))
    (submitit / "77_submitted.pkl").write_bytes(b"")
    os.utime(run_dir / "summary.json", (1_000_000, 1_000_000))  # written before the job was submitted
    monkeypatch.setattr(status, "_scheduler_state", lambda run, cluster: job)
    run = {"num": 0, "overrides": ["seed=0"], "run_dir": str(run_dir), "job_id": "77"}
    state = run_state(run | {"submitit_folder": str(submitit)}, "local")
    assert state.state == said, state
    assert to_resubmit([state]) == (set() if said == "pending" else {0})


def test_a_sigterm_as_study_resume_submits_stops_it_in_one_line_once_the_jobs_are_recorded(
    tmp_path, monkeypatch, capsys
):
    """Twenty-fourth hunt, case 33: SIGTERM to `study resume` as it worked: rc 143 and no word, whether or
    not it had submitted the runs. The signal now waits for the manifest to name the jobs it submitted."""
    import os
    import signal
    import threading

    from align_lab.study import __main__ as study

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    run = {"num": 0, "overrides": ["seed=0"], "run_dir": str(sweep / "0_grpo_seed0"), "job_id": None}
    (sweep / "study.json").write_text(
        json.dumps({"cluster": "local", "sweep_dir": str(sweep), "runs": [run]})
    )

    def submitting(manifest, todo, wait, submitit):
        manifest["runs"][0]["job_id"] = "999"
        os.kill(os.getpid(), signal.SIGTERM)  # as the first job is submitted
        threading.Event().wait(0.2)
        return [(manifest["runs"][0], None)]

    monkeypatch.setattr(study, "_resubmitted", submitting)
    assert study.main(["resume", str(sweep)]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("align_lab.study: resume interrupted by SIGTERM; see "), err
    assert json.loads((sweep / "study.json").read_text())["runs"][0]["job_id"] == "999"


def test_resume_of_a_folder_it_has_no_jobs_of_gives_the_command_that_resumes_it(tmp_path, capsys):
    """Thirty-seventh hunt, cases 34-35: `study resume` of a sweep run in one process (or of a run's
    folder) said `no study manifest here (expected a sweep folder)` of a sweep's folder; `study status` of
    a folder that does not exist spoke of a manifest inside it."""
    from align_lab.study.__main__ import main

    sweep = tmp_path / "sweep"
    (sweep / "0_grpo_seed0" / ".hydra").mkdir(parents=True)
    hydra = {"hydra": {"job": {"name": "x"}, "overrides": {"task": ["seed=0,1"]}, "runtime": {"cwd": "/"}}}
    (sweep / "multirun.yaml").write_text(json.dumps(hydra))  # JSON is YAML
    assert main(["resume", str(sweep)]) == 2
    said = capsys.readouterr().err
    assert said.startswith(
        f"align_lab.study: error: {sweep}: a sweep run in one process (no study manifest: its runs were "
        "never jobs to submit again); its own command resumes it: "
    ), said
    assert f"hydra.sweep.dir={sweep}" in said, said
    assert main(["status", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == (
        f"align_lab.study: error: {tmp_path / 'nope'}: no such folder; give the sweep's folder "
        "(hydra.sweep.dir)\n"
    )
