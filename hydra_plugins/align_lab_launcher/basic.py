"""`hydra/launcher=align_lab_basic` (hardware=cpu, cpu_ddp): Hydra's basic launcher, which runs a sweep's
jobs one after another in this process, with every job admitted first (align_lab/run/admission.py), so that a
bad job listed after a good one is a one-line error before any compute, not after the good one has
trained. Each job then runs as admitted (align_lab.app.run_admitted: its folder's lock, .hydra/, the run);
a failed job is one line as it fails, and the sweep ends with every failure listed and exit code 1
(outcome.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from omegaconf import open_dict

from align_lab.study.outcome import Outcomes, interruptible
from align_lab.study.tuning import run_tuned, tuned
from align_lab.study.waves import planned, run_waves

log = logging.getLogger(__name__)


class CheckedBasicLauncher(BasicLauncher):
    def setup(self, *, hydra_context, task_function, config) -> None:
        """Called by the sweeper before it writes multirun.yaml: the sweep folder's record is taken here."""
        from align_lab.study.admission import SweepFolder

        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.sweep_folder = SweepFolder(config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if getattr(self, "in_wave", False):  # a wave of a sequential study, which says an interruption
            return self._launch(job_overrides, initial_job_idx)
        if tuned(self.config) and not getattr(self, "in_tuning", False):  # a tuned study (tuning.py)
            return run_tuned(self, job_overrides, initial_job_idx)
        if planned(self.config):  # a sequential study (waves.py)
            return run_waves(self, job_overrides, initial_job_idx)
        with interruptible(Path(str(self.config.hydra.sweep.dir)), "sweep"):
            return self._launch(job_overrides, initial_job_idx)

    def _launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from align_lab.app import run_admitted
        from align_lab.study.admission import admit_sweep
        from align_lab.study.submission import manifest_entry

        # every job admitted before the first runs
        jobs = admit_sweep(
            self.hydra_context, self.config, job_overrides, initial_job_idx, True, self.sweep_folder
        )
        runs = [manifest_entry(num, overrides, job) for num, overrides, job in jobs]
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        outcomes = Outcomes(runs, sweep_dir)
        returns: list[JobReturn] = []
        log.info(f"Launching {len(runs)} jobs locally")
        for run, (num, overrides, job) in zip(runs, jobs, strict=True):  # Hydra's BasicLauncher.launch
            log.info(f"\t#{num} : {' '.join(run['overrides'])}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = sweep_config.hydra.job.num = num
            ret = run_job(
                hydra_context=self.hydra_context,
                task_function=partial(run_admitted, job),
                config=sweep_config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
            if ret.status == JobStatus.FAILED:
                outcomes.failed(run, ret._return_value)
            returns.append(ret)
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        outcomes.finish()
        return returns
