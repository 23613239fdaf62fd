"""A Hydra launcher built on hydra-submitit-launcher (local processes or Slurm) that

- checks every run's configuration before submitting any job (one-line error, nothing submitted);
- asks for each run's own resources (resources.py) by submitting one job array per distinct request;
- writes a study manifest, `<sweep dir>/study.json`, read by `python -m align_lab.study status|resume`;
- with `wait: false` returns right after submission; with `wait: true` reports each run as it ends (a
  failure in one line), then every failure, with exit code 1 when any failed (outcome.py);
- holds each run folder's lock for the job's life (align_lab/folder.py);
- runs at most `hardware.max_parallel` runs of a local sweep at once (submitit's local executor starts
  every job at once: each job waits for a slot, a lock file in the sweep folder, before its run), and
  passes it to Slurm as the job arrays' parallelism limit where it is set.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf

from hydra_plugins.align_lab_launcher.outcome import Outcomes, last_line
from hydra_plugins.align_lab_launcher.plan import plan_all
from hydra_plugins.align_lab_launcher.waves import planned, run_waves

log = logging.getLogger(__name__)
MANIFEST = "study.json"
# submitit parameters that are not part of a run's resource request
INIT_KEYS = {"submitit_folder", "max_num_timeout"}


def write_manifest(sweep_dir: Path, manifest: dict) -> None:
    tmp = sweep_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(sweep_dir / MANIFEST)


class StudyLauncher(BaseSubmititLauncher):
    """`hydra/launcher=align_lab_local|align_lab_slurm`; `cluster` is submitit's executor name."""

    def __init__(self, cluster: str = "local", wait: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self._EXECUTOR = cluster
        self.wait = wait
        self.slots: tuple[str, int] | None = None  # local: (lock folder, max_parallel), set by launch

    def __call__(self, *args, **kwargs) -> JobReturn:
        """One job: on a local sweep, waits for a free slot, then holds its run folder's lock while it
        runs (hydra-submitit's job body)."""
        if self.slots is None:
            return self._locked(*args, **kwargs)
        from hydra_plugins.align_lab_launcher.slots import hold_slot

        folder, slots = self.slots
        with hold_slot(Path(folder), slots):
            return self._locked(*args, **kwargs)

    def _locked(self, sweep_overrides, job_dir_key, job_num, *args, **kwargs) -> JobReturn:
        """The job body under its run folder's lock (rank 0's: the ranks of a run across nodes share it)."""
        import os

        from align_lab.config import ConfigError
        from align_lab.folder import claim

        run_dir = getattr(self, "run_dirs", {}).get(job_num)
        lock = None
        if run_dir is not None and os.environ.get("SLURM_PROCID", "0") == "0":
            try:
                lock = claim(Path(run_dir))
            except ConfigError as e:
                ret = JobReturn(overrides=list(sweep_overrides), status=JobStatus.FAILED)
                ret.return_value = e
                ret.status = JobStatus.FAILED
                return ret
        try:
            return super().__call__(sweep_overrides, job_dir_key, job_num, *args, **kwargs)
        finally:
            if lock is not None:
                lock.release()

    def launch(self, job_overrides, initial_job_idx: int):
        import shutil

        import submitit

        if planned(self.config) and not getattr(self, "in_wave", False):  # a sequential study (waves.py)
            return run_waves(self, job_overrides, initial_job_idx)
        if self._EXECUTOR == "slurm" and shutil.which("sbatch") is None:
            from align_lab.config import ConfigError

            raise ConfigError(
                "hydra/launcher=align_lab_slurm: Slurm's sbatch is not on PATH here; run from a Slurm login "
                "node, or use hardware=submitit_local (local processes) or hardware=cpu (in this process)"
            )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # 1. every run's config is checked (and its resources computed) before anything is submitted
        # (the device is checked where the run runs)
        runs = plan_all(self.hydra_context, self.config, job_overrides, initial_job_idx, here=False)
        spanning = [r for r in runs if r["resources"].get("nodes", 1) > 1]
        if spanning and self._EXECUTOR == "local":
            from align_lab.config import ConfigError

            raise ConfigError(
                f"hardware.nodes={spanning[0]['resources']['nodes']}: a run across nodes needs Slurm "
                "(hardware=slurm_multinode); local jobs run on this machine only (or hardware.nodes=1)"
            )
        self.run_dirs = {r["num"]: str(Path(r["run_dir"]).absolute()) for r in runs}  # sent with each job
        base = {k: v for k, v in self.params.items() if k not in INIT_KEYS}
        max_parallel = self._max_parallel(runs)
        if max_parallel is not None and self._EXECUTOR == "slurm":
            base["array_parallelism"] = max_parallel
        manifest = {
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "cluster": self._EXECUTOR,
            "sweep_dir": str(sweep_dir),
            "command": sys.argv,
            "runs": [*getattr(self, "earlier_runs", []), *runs],  # earlier waves' too (waves.py)
            "queue": self._queue_params(base),
            "folder": self.params["submitit_folder"],
            "max_num_timeout": self.params.get("max_num_timeout", 0),
            "max_parallel": max_parallel,
        }
        waves = 1
        if self._EXECUTOR == "local":
            self.slots = (str(sweep_dir / ".slots"), max_parallel)
            waves = math.ceil(len(runs) / max_parallel)  # a local job's time limit counts its wait
        # 2. one job array per distinct resource request
        groups: dict[str, list[dict]] = {}
        for run in runs:
            groups.setdefault(json.dumps(run["resources"], sort_keys=True), []).append(run)
        jobs = {}
        for key, group in groups.items():
            executor = submitit.AutoExecutor(
                folder=self.params["submitit_folder"],
                cluster=self._EXECUTOR,
                **{f"{self._EXECUTOR}_max_num_timeout": self.params.get("max_num_timeout", 0)},
            )
            params = {**base, **json.loads(key)}
            params["timeout_min"] = params["timeout_min"] * waves
            executor.update_parameters(**self._queue_params(params))
            args = [
                (
                    list(job_overrides[r["num"] - initial_job_idx]),
                    "hydra.sweep.dir",
                    r["num"],
                    f"job_id_for_{r['num']}",
                    Singleton.get_state(),
                )
                for r in group
            ]
            for run, job in zip(group, executor.map_array(self, *zip(*args, strict=True)), strict=True):
                run["job_id"] = job.job_id
                run["submitit_folder"] = str(job.paths.folder)
                jobs[run["num"]] = job
                log.info(f"#{run['num']} {' '.join(run['overrides'])} -> job {job.job_id} {run['resources']}")
        write_manifest(sweep_dir, manifest)
        print(f"align_lab: submitted {len(runs)} runs; study manifest: {sweep_dir / MANIFEST}", flush=True)
        if not self.wait:
            print(f"align_lab: not waiting; see python -m align_lab.study status {sweep_dir}", flush=True)
            raise SystemExit(0)
        return self._wait(jobs, runs, sweep_dir)

    def _wait(self, jobs: dict, runs: list[dict], sweep_dir: Path, poll_s: float = 1.0) -> list[JobReturn]:
        """Each run's outcome as it ends (a failure in one line); then, if any failed, the list of
        failures and exit code 1 (outcome.py)."""
        outcomes = Outcomes(runs, sweep_dir)
        results: dict[int, JobReturn] = {}
        waiting = {r["num"]: r for r in runs}
        while waiting:
            for num in [n for n in waiting if jobs[n].done()]:
                results[num] = self._result(jobs[num], waiting.pop(num), outcomes)
            if waiting:
                time.sleep(poll_s)
        outcomes.finish()
        return [results[r["num"]] for r in runs]

    def _max_parallel(self, runs: list[dict]) -> int | None:
        """hardware.max_parallel (the smallest the runs set); unset, on a local sweep: as many runs as
        the machine's cores and memory hold at the largest request."""
        from align_lab.study.resources import default_max_parallel, machine

        chosen = [r.pop("max_parallel") for r in runs]
        chosen = [int(c) for c in chosen if c is not None]
        for c in chosen:
            if c < 1:
                from align_lab.config import ConfigError

                raise ConfigError(f"hardware.max_parallel={c}: must be >= 1 (or null: fit the machine)")
        if chosen or self._EXECUTOR != "local":
            return min(chosen, default=None)
        cores, mem_gb = machine()
        cpus = max(r["resources"]["cpus_per_task"] for r in runs)
        mem = max(r["resources"]["mem_gb"] for r in runs)
        return default_max_parallel(cpus, mem, cores, mem_gb)

    def _queue_params(self, params: dict) -> dict:
        """hydra-submitit-launcher's names -> submitit's (executor-specific ones get a prefix)."""
        return {k if k in _base_keys() else f"{self._EXECUTOR}_{k}": v for k, v in params.items()}

    @staticmethod
    def _result(job, run: dict, outcomes: Outcomes) -> JobReturn:
        """The job's JobReturn; a job that died without one is reported FAILED with its state."""
        try:
            ret = job.results()[0]
        except Exception as e:  # killed, cancelled, out of memory, node failure ...
            ret = JobReturn(overrides=run["overrides"], status=JobStatus.FAILED)
            ret.return_value = RuntimeError(f"job {job.job_id} ended without a result: {last_line(str(e))}")
            ret.status = JobStatus.FAILED
        if ret.status == JobStatus.COMPLETED:
            print(f"align_lab: run #{run['num']} ({outcomes.labels[run['num']]}): completed", flush=True)
        else:
            outcomes.failed(run, ret._return_value)
        return ret


def _base_keys() -> set[str]:
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    return set(OmegaConf.structured(BaseQueueConf).keys()) | {"mem_gb", "gpus_per_node"}
