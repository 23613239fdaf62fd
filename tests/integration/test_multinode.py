"""A run across two Slurm nodes (hardware=slurm_multinode): one rank per node, each a Slurm task, on
the real test cluster of scripts/test.sh (two slurmd on this machine: scripts/slurm_up.sh with
SLURM_NODES=2). It gives the numbers of one process, and survives a USR2 preemption."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from align_lab.study.status import study_states
from align_lab.tracking import read_metrics
from tests.conftest import FULL, ROOT, forked, run_cli
from tests.integration.test_studies import cli_args, no_times, slurm, wait_for  # noqa: F401 (fixture)

# metrics that must agree; time/* and throughput differ by construction
COMPARED = ("train/reward", "train/kl", "train/loss", "train/grad_norm", "train/response_length")


@pytest.fixture
def two_nodes(slurm):  # noqa: F811 (the fixture imported above)
    nodes = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, env={**os.environ, **slurm}
    ).stdout.split()
    if len(set(nodes)) < 2:
        pytest.skip(f"the Slurm test cluster has nodes {nodes}: scripts/test.sh starts two (SLURM_NODES=2)")
    return slurm


def _one_run(run: dict) -> tuple[Path, str]:
    """The run folder and the text of every task's log (rank 0 is task 0)."""
    folder = Path(run["submitit_folder"])
    logs = "".join(p.read_text() for p in sorted(folder.glob(f"{run['job_id']}_*_log.*")))
    return Path(run["run_dir"]), logs


def _assert_same_numbers(one: list[dict], two: list[dict]) -> None:
    assert [r["step"] for r in two] == [r["step"] for r in one]
    for a, b in zip(one, two, strict=True):
        for key in COMPARED:
            if key in a:  # float tolerance: the ranks pad and reduce in different batch shapes
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (a["step"], key)


def test_a_two_node_run_equals_one_process(two_nodes, tmp_path, cache_dir):
    args = cli_args(cache_dir, "train.steps=2", "seed=2", "hardware.num_threads=1")
    one = tmp_path / "one"
    assert forked()([*args, "rollout.seed_per_sample=true", f"hydra.run.dir={one}"]).returncode == 0
    sweep = tmp_path / "sweep"
    result = run_cli(
        ["-m", "hardware=slurm_multinode", *args, f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=two_nodes
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = json.loads((sweep / "study.json").read_text())["runs"]
    assert run["resources"]["nodes"] == 2 and run["resources"]["tasks_per_node"] == 1
    run_dir, logs = _one_run(run)
    # each rank a Slurm task on a node of its own, meeting at the first node
    assert "rank 0 of 2 on node ci-node1: meeting at ci-node1:" in logs, logs[-3000:]
    assert "rank 1 of 2 on node ci-node2: meeting at ci-node1:" in logs, logs[-3000:]
    _assert_same_numbers(read_metrics(one / "metrics.jsonl"), read_metrics(run_dir / "metrics.jsonl"))
    summary_1 = json.loads((one / "summary.json").read_text())
    summary_2 = json.loads((run_dir / "summary.json").read_text())
    assert summary_2["status"] == "completed"
    for key in ("eval/gold_reward", "eval/kl"):
        assert summary_2[key] == pytest.approx(summary_1[key], rel=1e-4, abs=1e-5), key


@FULL
def test_a_usr2_preemption_requeues_a_two_node_run_and_it_resumes_to_the_same_numbers(
    two_nodes, tmp_path, cache_dir
):
    import submitit

    args = cli_args(cache_dir, "train.steps=16", "seed=6", "hardware.num_threads=1")
    full = tmp_path / "full"
    assert forked()([*args, "rollout.seed_per_sample=true", f"hydra.run.dir={full}"]).returncode == 0
    sweep = tmp_path / "sweep"
    result = run_cli(
        ["-m", "hardware=slurm_multinode", *args, "hydra.launcher.wait=false", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        env=two_nodes,
    )
    assert result.returncode == 0 and "not waiting" in result.stdout, result.stderr[-3000:]
    (run,) = json.loads((sweep / "study.json").read_text())["runs"]
    metrics = Path(run["run_dir"]) / "metrics.jsonl"
    wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 3, 180, "3 logged steps")
    submitit.SlurmJob(folder=run["submitit_folder"], job_id=run["job_id"])._interrupt()  # USR2, every task
    wait_for(
        lambda: study_states(sweep)[0].state in ("done", "failed"),
        300,
        "the requeued run",
        lambda: _one_run(run)[1][-3000:],
    )
    assert study_states(sweep)[0].state == "done", study_states(sweep)[0].detail
    _, logs = _one_run(run)
    assert "requeue" in logs.lower(), logs[-3000:]
    # the requeued job ran both ranks again, on both nodes, and resumed from rank 0's checkpoint
    assert logs.count("rank 1 of 2 on node ci-node2") == 2, logs[-3000:]
    rows = read_metrics(metrics)
    assert len(rows) == 16 and rows[-1]["step"] == 16
    _assert_same_numbers(read_metrics(full / "metrics.jsonl"), rows)
    assert no_times(rows)[0].keys() == no_times(read_metrics(full / "metrics.jsonl"))[0].keys()
