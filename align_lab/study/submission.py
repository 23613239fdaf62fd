"""What a launcher submits of a sweep, decided before anything is submitted: the checks of where it
runs (Slurm's sbatch, nodes), how many of its runs run at once (hardware.max_parallel, or what the
machine holds), its runs grouped by resource request (one job array each), and the study manifest
(study.json, read by `python -m align_lab.study status|resume`). The launchers
(hydra_plugins/align_lab_launcher/) call these and keep only Hydra's and submitit's calls."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from align_lab.value_checks import ConfigError


def check_cluster(executor: str) -> None:
    """A Slurm sweep where Slurm answers: sbatch on PATH, and its controller reached (twenty-third hunt,
    case 6: from a shell without the cluster's SLURM_CONF, sbatch's failure was a 62-line traceback)."""
    if executor != "slurm":
        return
    if shutil.which("sbatch") is None:
        raise ConfigError(
            "hydra/launcher=align_lab_slurm: Slurm's sbatch is not on PATH here; run from a Slurm login "
            "node, or use hardware=submitit_local (local processes) or hardware=cpu (in this process)"
        )
    if (answer := unanswered()) is not None:
        raise ConfigError(
            f"hydra/launcher=align_lab_slurm: Slurm does not answer from this shell (`sinfo`: {answer}); "
            "check that `sinfo` works here (SLURM_CONF, the controller), then rerun"
        )


def unanswered() -> str | None:
    """None where `sinfo` reaches Slurm's controller (or there is no sinfo to ask), else its last line."""
    if shutil.which("sinfo") is None:
        return None
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "no answer in 60 s"
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if done.returncode == 0:
        return None
    return lines[-1] if lines else f"exit status {done.returncode}"


@contextmanager
def sbatch_held() -> Iterator[None]:
    """sbatch's stderr held while a job array is submitted: a refusal's lines are in submitit's
    FailedJobError, which the launcher says in its one line (they came three times, with a traceback);
    otherwise whatever it wrote is passed on after."""
    sys.stderr.flush()
    saved = os.dup(2)
    submitted = False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
            submitted = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if submitted:
                held.seek(0)
                os.write(2, held.read())


def refused(error: Exception) -> str:
    """sbatch's own last line, from submitit's FailedJobError (its stderr), for a one-line refusal."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def check_nodes(runs: list[dict], executor: str) -> None:
    spanning = [r for r in runs if r["resources"].get("nodes", 1) > 1]
    if spanning and executor == "local":
        raise ConfigError(
            f"hardware.nodes={spanning[0]['resources']['nodes']}: a run across nodes needs Slurm "
            "(hardware=slurm_multinode); local jobs run on this machine only (or hardware.nodes=1)"
        )


def check_gpus(jobs: list) -> None:
    """A CUDA run that asks the scheduler for no GPU: its job would queue, then find no CUDA device."""
    from align_lab.run.resources import request

    for _, _, job in jobs:
        hardware = job.spec.hardware
        if hardware.device == "cuda" and request(hardware.resources, job.spec)["gpus_per_node"] == 0:
            raise ConfigError(
                f"hardware.device=cuda: the run asks for 0 GPUs (hardware.resources.gpus_per_model="
                f"{hardware.resources.gpus_per_model}, max_gpus={hardware.resources.max_gpus}); set both "
                "above 0 (one GPU per process at least) or use hardware.device=cpu"
            )


def max_parallel(runs: list[dict], executor: str) -> int | None:
    """hardware.max_parallel (the smallest the runs set; each run's entry loses its own); unset, on a
    local sweep: as many runs as the machine's cores and memory hold at the largest request."""
    from align_lab.run.resources import default_max_parallel, machine

    chosen = [r.pop("max_parallel") for r in runs]
    chosen = [int(c) for c in chosen if c is not None]
    for c in chosen:
        if c < 1:
            raise ConfigError(f"hardware.max_parallel={c}: must be >= 1 (or null: fit the machine)")
    if chosen or executor != "local":
        return min(chosen, default=None)
    cores, mem_gb = machine()
    cpus = max(r["resources"]["cpus_per_task"] for r in runs)
    mem = max(r["resources"]["mem_gb"] for r in runs)
    return default_max_parallel(cpus, mem, cores, mem_gb)


def request_groups(runs: list[dict]) -> dict[str, list[dict]]:
    """The runs grouped by their resource request (its JSON, keys sorted): one job array each."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(json.dumps(run["resources"], sort_keys=True), []).append(run)
    return groups


def manifest_entry(num: int, overrides: list[str], job) -> dict:
    """A job's entry in the study manifest (study.json): what it runs, where, and what it asks for."""
    from hydra.core.utils import filter_overrides

    from align_lab.run.resources import request

    spec = job.spec
    return {
        "num": num,
        "overrides": filter_overrides(overrides),
        "run_dir": str(job.run_dir),
        "names": spec.names,
        "resources": request(spec.hardware.resources, spec),
        "max_parallel": spec.hardware.max_parallel,
    }


def study_manifest(
    sweep_dir: Path, executor: str, runs: list[dict], queue: dict, params: dict, limit
) -> dict:
    """The study manifest (study.json) of a submitted sweep: `runs` its entries (an earlier wave's first,
    study/waves.py), `queue` the queue's parameters as submitit names them, `params` the launcher's."""
    return {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cluster": executor,
        "sweep_dir": str(Path(sweep_dir).absolute()),  # (Hydra's default is relative: multirun/<date>/...)
        "command": sys.argv,
        "runs": runs,
        "queue": queue,
        "folder": os.path.abspath(params["submitit_folder"]),
        "max_num_timeout": params.get("max_num_timeout", 0),
        "max_parallel": limit,
    }


def status_command(sweep_dir: Path) -> str:
    """`python -m align_lab.study status <sweep dir>`, to type in any folder (shell_command)."""
    from align_lab.rerun import shell_command

    return shell_command("align_lab.study", "status", Path(sweep_dir))
