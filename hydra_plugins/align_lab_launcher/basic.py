"""`hydra/launcher=align_lab_basic` (hardware=cpu, cpu_ddp): Hydra's basic launcher, which runs a sweep's
jobs one after another in this process, checking every job's configuration first, so that a bad job
listed after a good one is a one-line error before any compute, not after the good one has trained."""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.utils import JobReturn

from hydra_plugins.align_lab_launcher.plan import plan_all


class CheckedBasicLauncher(BasicLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        plan_all(self.hydra_context, self.config, job_overrides, initial_job_idx, here=True)  # all first
        return super().launch(job_overrides, initial_job_idx)
