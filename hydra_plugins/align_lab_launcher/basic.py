"""`hydra/launcher=align_lab_basic` (hardware=cpu, cpu_ddp): Hydra's basic launcher, which runs a sweep's
jobs one after another in this process, checking every job's configuration and folder first, so that a
bad job listed after a good one is a one-line error before any compute, not after the good one has
trained. Each job holds its run folder's lock while it runs; a failed job is one line as it fails, and
the sweep ends with every failure listed and exit code 1 (outcome.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from omegaconf import open_dict

from hydra_plugins.align_lab_launcher.outcome import Outcomes
from hydra_plugins.align_lab_launcher.plan import plan_all
from hydra_plugins.align_lab_launcher.waves import planned, run_waves

log = logging.getLogger(__name__)


class CheckedBasicLauncher(BasicLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from align_lab.config import ConfigError
        from align_lab.folder import claim

        if planned(self.config) and not getattr(self, "in_wave", False):  # a sequential study (waves.py)
            return run_waves(self, job_overrides, initial_job_idx)
        # every job's config and folder checked before the first runs
        runs = plan_all(self.hydra_context, self.config, job_overrides, initial_job_idx, here=True)
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        outcomes = Outcomes(runs, sweep_dir)
        returns: list[JobReturn] = []
        log.info(f"Launching {len(runs)} jobs locally")
        for run, overrides in zip(runs, job_overrides, strict=True):  # Hydra's BasicLauncher.launch, plus:
            log.info(f"\t#{run['num']} : {' '.join(run['overrides'])}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = sweep_config.hydra.job.num = run["num"]
            try:
                lock = claim(Path(run["run_dir"]))  # another process may have taken it since the check
            except ConfigError as e:
                outcomes.failed(run, e)
                continue
            try:
                ret = run_job(
                    hydra_context=self.hydra_context,
                    task_function=self.task_function,
                    config=sweep_config,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
            finally:
                lock.release()
            if ret.status == JobStatus.FAILED:
                outcomes.failed(run, ret._return_value)
            returns.append(ret)
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        outcomes.finish()
        return returns
