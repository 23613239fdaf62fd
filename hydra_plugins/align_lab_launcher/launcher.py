"""A Hydra launcher built on hydra-submitit-launcher (local processes or Slurm), an adapter over the
study's own code (align_lab/study/: admission.py, submission.py, waves.py, outcome.py, slots.py) that

- asks for each run's own resources (run/resources.py) by submitting one job array per distinct request;
- writes a study manifest, `<sweep dir>/study.json`, read by `python -m align_lab.study status|resume`;
- with `wait: false` returns right after submission; with `wait: true` reports each run as it ends (a
  failure in one line), then every failure, with exit code 1 when any failed (outcome.py);
- admits every job before submitting any (align_lab/run/admission.py), and runs each as admitted, holding its
  run folder's lock for the job's life (align_lab.app.run_admitted);
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
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf

from align_lab.results.manifest import MANIFEST, write_manifest
from align_lab.study.local_jobs import (
    completed_run,
    deaf_to_the_group,
    detached_output,
    found,
    lost_runs,
    sheltered,
    stopped_jobs,
)
from align_lab.study.outcome import Outcomes, interruptible
from align_lab.study.submission import (
    check_cluster,
    check_gpus,
    check_nodes,
    max_parallel,
    refused,
    request_groups,
    sbatch_held,
    status_command,
    study_manifest,
)
from align_lab.study.tuning import run_tuned, tuned
from align_lab.study.waves import planned, run_waves
from align_lab.value_checks import ConfigError
from hydra_plugins.align_lab_launcher.job_ends import half_written, said_in_log, said_its_end, unreturned

log = logging.getLogger(__name__)
# submitit parameters that are not part of a run's resource request
INIT_KEYS = {"submitit_folder", "max_num_timeout"}


class StudyLauncher(BaseSubmititLauncher):
    """`hydra/launcher=align_lab_local|align_lab_slurm`; `cluster` is submitit's executor name."""

    def __init__(self, cluster: str = "local", wait: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self._EXECUTOR = cluster
        self.wait = wait
        self.slots: tuple[str, int] | None = None  # local: (lock folder, max_parallel), set by launch

    def __setstate__(self, state: dict) -> None:
        """A job's process unpickles its launcher before the job it runs (the pickled call's order): what the
        user's modules open as the job imports them is noted from here (user_reads.py watch), as in a run in
        one process (twenty-ninth hunt, case 13: a verifier that read its settings as it was imported, on
        Slurm, recorded nothing, and a sweep's run started on the edited file with no line)."""
        from align_lab.user_reads import watch

        watch()
        self.__dict__.update(state)

    def setup(self, *, hydra_context, task_function, config) -> None:
        """Called by the sweeper before it writes multirun.yaml: the sweep folder's record is taken here."""
        from align_lab.study.admission import SweepFolder

        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.sweep_folder = SweepFolder(config)

    def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state, job=None) -> JobReturn:
        """One job, where it runs: on a local sweep it first takes SIGINT back, out of the terminal's reach
        (local_jobs.sheltered), and waits for a free slot; then its admitted Job (sent with it) runs after
        the checks only this machine can make (align_lab.app.run_admitted)."""
        if self.slots is None:
            return self._run(sweep_overrides, job_dir_key, job_num, singleton_state, job)
        from align_lab.study.slots import hold_slot

        sheltered()
        folder, slots = self.slots
        with hold_slot(Path(folder), slots):
            return self._run(sweep_overrides, job_dir_key, job_num, singleton_state, job)

    def _run(self, sweep_overrides, job_dir_key, job_num, singleton_state, job) -> JobReturn:
        """hydra-submitit's job body, with the admitted job as its task."""
        import submitit
        from hydra.core.utils import run_job, setup_globals
        from omegaconf import open_dict

        from align_lab.app import run_admitted

        Singleton.set_state(singleton_state)
        setup_globals()
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, sweep_overrides)
        with open_dict(sweep_config.hydra.job):
            sweep_config.hydra.job.id = submitit.JobEnvironment().job_id
            sweep_config.hydra.job.num = job_num
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=partial(run_admitted, job, here=True),
            config=sweep_config,
            job_dir_key=job_dir_key,
            job_subdir_key="hydra.sweep.subdir",
        )
        if ret.status == JobStatus.FAILED:
            said_in_log(ret._return_value)
        return ret

    def launch(self, job_overrides, initial_job_idx: int):
        from align_lab.study.admission import admit_sweep
        from align_lab.study.submission import manifest_entry

        if tuned(self.config) and not getattr(self, "in_tuning", False):  # a tuned study (tuning.py)
            return run_tuned(self, job_overrides, initial_job_idx)
        if planned(self.config) and not getattr(self, "in_wave", False):  # a sequential study (waves.py)
            return run_waves(self, job_overrides, initial_job_idx)
        check_cluster(self._EXECUTOR)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # 1. every job admitted (its resources computed) before anything is submitted; the machine is
        # checked where each runs. A signal until then stops the sweep with nothing submitted (a held one
        # too: twenty-second hunt, cases 44-45, a whole run trained after a Ctrl-C "as soon as it can")
        with interruptible(sweep_dir, "sweep"):
            jobs = admit_sweep(
                self.hydra_context, self.config, job_overrides, initial_job_idx, False, self.sweep_folder
            )
            runs = [manifest_entry(num, overrides, job) for num, overrides, job in jobs]
            check_nodes(runs, self._EXECUTOR)
            check_gpus(jobs)
        base = {k: v for k, v in self.params.items() if k not in INIT_KEYS}
        limit = max_parallel(runs, self._EXECUTOR)
        if limit is not None and self._EXECUTOR == "slurm":
            base["array_parallelism"] = limit
        waves = 1
        if self._EXECUTOR == "local":
            self.slots = (str(sweep_dir / ".slots"), limit)
            waves = math.ceil(len(runs) / limit)  # a local job's time limit counts its wait
        # 2. one job array per distinct resource request
        from submitit.core.utils import FailedJobError

        pickles = set((sweep_dir / ".submitit").glob("*.pkl"))  # submitit's, before it submits
        try:
            submitted = self._submit(runs, {num: (o, job) for num, o, job in jobs}, base, waves)
        except OSError as e:  # a full disk, a read-only folder: submitit's pickles unwritten, none named
            self.sweep_folder.restore()  # an earlier sweep's multirun.yaml (twenty-second hunt, 17-18)
            e.filename = e.filename or half_written(sweep_dir / ".submitit", pickles)
            raise
        except FailedJobError as e:  # sbatch refused a job array (a partition, an account, a limit)
            self.sweep_folder.restore()
            raise ConfigError(
                f"hydra/launcher=align_lab_slurm: sbatch refused the sweep's jobs ({refused(e)}); none of "
                "them is queued: fix what it names (hydra.launcher.partition, ...), then rerun"
            ) from None
        earlier = getattr(self, "earlier_runs", [])  # earlier waves' runs (waves.py)
        queue = self._queue_params(base)
        manifest = study_manifest(sweep_dir, self._EXECUTOR, [*earlier, *runs], queue, self.params, limit)
        write_manifest(sweep_dir, manifest)
        said = f"{len(runs)} run{'s' * (len(runs) != 1)}"  # "submitted 1 runs" (fifth hunt of 2026-12-04)
        print(f"align_lab: submitted {said}; study manifest: {sweep_dir / MANIFEST}", flush=True)
        if not self.wait:
            print(f"align_lab: not waiting; see {status_command(sweep_dir)}", flush=True)
            raise SystemExit(0)
        return self._wait(submitted, runs, sweep_dir)

    def _submit(self, runs: list[dict], jobs: dict, base: dict, waves: int) -> dict:
        """Submits one job array per distinct resource request, each job with its admitted Job; returns
        {num: submitit job} and records each one's job id in its manifest entry."""
        submitted = {}
        try:
            for key, group in request_groups(runs).items():
                submitted |= self._submit_group(group, jobs, {**base, **json.loads(key)}, waves)
        except Exception:  # sbatch's refusal, a full disk: none of a sweep left half-submitted
            for job in submitted.values():  # an earlier group's jobs cancelled
                job.cancel(check=False)
            raise
        return submitted

    def _submit_group(self, group: list[dict], jobs: dict, params: dict, waves: int) -> dict:
        """One job array, of the runs of one resource request (`params`); {num: submitit job}."""
        import submitit

        executor = submitit.AutoExecutor(
            folder=self.params["submitit_folder"],
            cluster=self._EXECUTOR,
            **{f"{self._EXECUTOR}_max_num_timeout": self.params.get("max_num_timeout", 0)},
        )
        executor.update_parameters(
            **self._queue_params({**params, "timeout_min": params["timeout_min"] * waves})
        )
        state = Singleton.get_state()
        args = [
            (
                jobs[r["num"]][0],
                "hydra.sweep.dir",
                r["num"],
                f"job_id_for_{r['num']}",
                state,
                jobs[r["num"]][1],
            )
            for r in group
        ]
        local = self._EXECUTOR == "local"
        with deaf_to_the_group() if local else sbatch_held():
            with detached_output() if local and not self.wait else nullcontext():
                started = executor.map_array(self, *zip(*args, strict=True))
        submitted = {}
        for run, job in zip(group, started, strict=True):
            run["job_id"] = job.job_id
            run["submitit_folder"] = str(job.paths.folder)
            submitted[run["num"]] = job
            log.info(f"#{run['num']} {' '.join(run['overrides'])} -> job {job.job_id} {run['resources']}")
        return submitted

    def _wait(self, jobs: dict, runs: list[dict], sweep_dir: Path, poll_s: float = 1.0) -> list[JobReturn]:
        """Each run's outcome as it ends (a failure in one line); then, if any failed, the list of
        failures and exit code 1 (outcome.py)."""
        from align_lab.train.preemption import Interrupted, Interruption

        outcomes = Outcomes(runs, sweep_dir)
        results: dict[int, JobReturn] = {}
        waiting = {r["num"]: r for r in runs}
        try:
            with Interruption():  # a signal the command held since it began stops the wait as it begins
                while waiting:
                    for num in [n for n in waiting if jobs[n].done()]:
                        results[num] = self._result(jobs[num], waiting.pop(num), outcomes)
                    if waiting:
                        time.sleep(poll_s)
        except Interrupted as e:
            lost = lost_runs([(jobs[r["num"]], r) for r in runs]) if self._EXECUTOR == "local" else []
            if lost or not all(completed_run(run) for run in waiting.values()):
                self._stop_waiting(e, [(jobs[n], waiting[n]) for n in waiting], sweep_dir, lost)
            # every run had completed as it came (twenty-fourth hunt, case 43: "2 unfinished runs stop"
            # and a resume command, the runs' figures never said): the sweep ends as it would have
            print(f"align_lab: {e.signal_name}: every run had completed; the sweep ends", file=sys.stderr)
            for num in list(waiting):
                results[num] = self._result(jobs[num], waiting.pop(num), outcomes)
        outcomes.finish()
        return [results[r["num"]] for r in runs]

    def _stop_waiting(self, e, pending: list, sweep_dir: Path, lost: list[Path]) -> None:
        """A signal while the command waits on its jobs (`pending`: (job, manifest entry) pairs; twentieth
        hunt, case 20: every run still started and ended, then "interrupted ... before any run"). A local
        sweep's runs are this process's grandchildren: each job's run gets SIGINT (as Ctrl-C: it stops at
        its step's end, checkpointed; submitit's job ignores SIGTERM, and its cancel's SIGINT to the job's
        controller printed that controller's KeyboardInterrupt traceback: twenty-first hunt, case 8); a run
        that ignores SIGINT (`nohup ... &`: case 7) and, at the signal again, any run still going 10 s
        later, is killed as kill -9 would: resumable from its last checkpoint. The line resumes the sweep
        and counts the runs that completed meanwhile; a run whose job ended without it (`lost`: its
        controller killed) is stopped too. A Slurm sweep's jobs go on; `status` follows them."""
        from align_lab.rerun import sweep_resume_command

        jobs = [job for job, _ in pending]
        if self._EXECUTOR != "local":
            runs = f"{len(jobs)} unfinished run{'s go' if len(jobs) != 1 else ' goes'}"
            said = f"{e.signal_name}: stopped waiting; the sweep's {runs} on in "
            print(f"align_lab: {said}Slurm: {status_command(sweep_dir)}", file=sys.stderr, flush=True)
            raise SystemExit(e.exit_code)
        pending = [(job, run) for job, run in pending if Path(run["run_dir"]) not in lost]  # stopped as lost
        jobs = [job for job, _ in pending]
        running = stopped_jobs(jobs, e.signal_name, lost)
        done = sum(completed_run(run) for run in [*(r for _, r in pending), *({"run_dir": d} for d in lost)])
        stopped = len(jobs) + len(lost) - done
        runs = f"{stopped} unfinished run{'s' * (stopped != 1)}"
        said = f"sweep interrupted by {e.signal_name}: {runs} stopped, each "
        said += "resumable from its last checkpoint" + (f" ({done} more completed meanwhile)" if done else "")
        said += f"; resume with: {sweep_resume_command(sweep_dir)}"
        if running:
            said += f" (once jobs {', '.join(job.job_id for job in running)} have ended)"
        print(f"align_lab: {said}", file=sys.stderr, flush=True)
        raise SystemExit(e.exit_code)

    def _queue_params(self, params: dict) -> dict:
        """hydra-submitit-launcher's names -> submitit's (executor-specific ones get a prefix)."""
        return {k if k in _base_keys() else f"{self._EXECUTOR}_{k}": v for k, v in params.items()}

    @staticmethod
    def _result(job, run: dict, outcomes: Outcomes) -> JobReturn:
        """The job's JobReturn; a job that died without one is reported FAILED with its state."""
        from align_lab.run.summary import RunStopped  # (torch: not on the way to a refusal)

        try:
            if not job.paths.result_pickle.exists() and said_its_end(Path(run["run_dir"])):
                raise RuntimeError("no result")  # none is coming: submitit waits 15 s for one, a job at a
            ret = job.results()[0]  # time (twenty-third hunt's notes: the command sat silent 31 s)
        except Exception as e:  # killed, cancelled, out of memory, node failure, a full disk ...
            ret = JobReturn(overrides=run["overrides"], status=JobStatus.FAILED)
            ret.return_value = RunStopped(unreturned(job, e, Path(run["run_dir"])))
            ret.status = JobStatus.FAILED
        if ret.status == JobStatus.COMPLETED:  # what it found and where (twentieth hunt, case 21)
            print(f"align_lab: run #{run['num']} ({outcomes.labels[run['num']]}): {found(run)}", flush=True)
        else:
            outcomes.failed(run, ret._return_value)
        return ret


def _base_keys() -> set[str]:
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    return set(OmegaConf.structured(BaseQueueConf).keys()) | {"mem_gb", "gpus_per_node"}
