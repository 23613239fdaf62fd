"""study/__main__.py _resubmitted: `study resume` of a Slurm sweep submits the runs of one set of
resources as one array, so that its `%N` (hardware.max_parallel) holds again (twenty-sixth hunt, case 45:
a `%1` sweep's two runs ran at once after the resume). A stand-in for submitit's executor records how it
was asked (what Slurm then does with an array is test_studies.py's, on the test cluster)."""

from __future__ import annotations

import pickle
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from align_lab.study.__main__ import _resubmitted


class Executor:
    made: list = []

    def __init__(self, folder, cluster, **kw):
        self.parameters, self.batches, self.jobs, self.in_batch = {}, 0, [], False
        Executor.made.append(self)

    def update_parameters(self, **kw):
        self.parameters.update(kw)

    @contextmanager
    def batch(self):
        self.batches += 1
        self.in_batch = True
        yield
        self.in_batch = False

    def submit(self, function, *args, **kwargs):
        n = len(self.jobs)
        job = SimpleNamespace(
            job_id=f"9_{n}" if self.in_batch else str(9 + n), paths=SimpleNamespace(folder="/s")
        )
        self.jobs.append((job, self.in_batch))
        return job


def manifest(tmp_path: Path, cluster: str) -> dict:
    runs = []
    for num in (0, 1):
        folder = tmp_path / f"submitit{num}"
        folder.mkdir()
        call = SimpleNamespace(function=print, args=(num,), kwargs={})
        (folder / f"{num}_submitted.pkl").write_bytes(pickle.dumps(call))
        resources = {"cpus_per_task": 1, "mem_gb": 1}
        runs.append({"num": num, "job_id": str(num), "submitit_folder": str(folder), "resources": resources})
    queue = {"slurm_array_parallelism": 1} if cluster == "slurm" else {}
    return {"cluster": cluster, "folder": str(tmp_path), "max_num_timeout": 3, "queue": queue, "runs": runs}


@pytest.mark.parametrize(
    "cluster, batches, ids", [("slurm", [1], ["9_0", "9_1"]), ("local", [0, 0], ["9", "9"])]
)
def test_a_slurm_sweeps_runs_go_again_as_one_array_with_its_parallelism(cluster, batches, ids, tmp_path):
    Executor.made = []
    runs = _resubmitted(manifest(tmp_path, cluster), {0, 1}, False, SimpleNamespace(AutoExecutor=Executor))
    assert [e.batches for e in Executor.made] == batches
    assert [run["job_id"] for run, _ in runs] == ids
    if cluster == "slurm":
        assert Executor.made[0].parameters["slurm_array_parallelism"] == 1


def test_a_runs_pickled_call_is_read_from_the_folder_the_sweep_ran_in(tmp_path):
    """Twenty-seventh hunt, case 8: `study resume <sweep>` typed in another folder, on a sweep with
    `task.verifier=myv2:check`: unpickling the job's call imports the verifier's module (the task loads it
    again), which only the sweep's folder has: "cannot import it (No module named 'myv2')", nothing
    submitted. It is read as the job reads it, from where the sweep ran (resume's chdir)."""
    import subprocess
    import sys
    from contextlib import chdir

    from align_lab.study.__main__ import _submitted_call

    home, folder = tmp_path / "home", tmp_path / "submitit"
    home.mkdir(), folder.mkdir()
    (home / "only_here_9.py").write_text("class Task:\n    pass\n")
    pkl = str(folder / "3_submitted.pkl")
    script = f"import pickle, only_here_9; open({pkl!r}, 'wb').write(pickle.dumps(only_here_9.Task()))"
    subprocess.run([sys.executable, "-c", script], cwd=home, check=True)
    with chdir(home):
        call = _submitted_call({"submitit_folder": str(folder), "job_id": "3"})
    assert type(call).__name__ == "Task" and str(home) not in sys.path
