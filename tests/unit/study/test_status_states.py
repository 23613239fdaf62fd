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
