"""The check both align_lab launchers run on every job of a sweep before the first starts: compose the
job's config as the launcher will, build and validate its run (one-line ConfigError), and return the
job's manifest entry. Kept free of submitit, so the in-process launcher does not need it."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import filter_overrides
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict


def plan_run(
    hydra_context: HydraContext,
    config: DictConfig,
    overrides: list[str],
    num: int,
    here: bool,
    jobs: list | None = None,
) -> dict:
    """Composes job `num`'s config, validates it, and returns its manifest entry. `here`: the job runs
    on this machine (its device is checked too). `jobs`: gets what the claims check needs of it."""
    from align_lab.app import check_folder, spec_from_config
    from align_lab.results.planned_claims import planned_job
    from align_lab.study.checks import check_run
    from align_lab.study.resources import request

    cfg = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num = num
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        run_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
        names = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
        job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        spec = spec_from_config(job_cfg, names, list(cfg.hydra.overrides.task))
        check_run(spec, here=here)
        check_folder(spec, run_dir)
        if jobs is not None:  # for the sweep's claims check (align_lab.results.planned_claims)
            task_overrides = list(cfg.hydra.overrides.task)
            jobs.append(planned_job(spec.config, names, task_overrides, spec.task, spec.train.eval_samples))
        resources = request(spec.hardware.resources, spec)
        max_parallel = spec.hardware.max_parallel
    finally:
        HydraConfig.instance().cfg = previous
    return {
        "num": num,
        "overrides": filter_overrides(overrides),
        "run_dir": str(run_dir),
        "names": names,
        "resources": resources,
        "max_parallel": max_parallel,
    }


def plan_all(
    hydra_context: HydraContext,
    config: DictConfig,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    here: bool,
) -> list[dict]:
    """plan_run for every job, then the sweep's claims checked against its jobs, before any runs. On the
    first bad job or claim its error propagates (one line at the entry point), and the sweep folder is as
    it was: one that holds nothing but the multirun.yaml Hydra has just written is removed, and an earlier
    sweep's multirun.yaml is put back."""
    from align_lab.checks import ConfigError
    from align_lab.results.planned_claims import check_planned_claims

    try:
        jobs: list = []
        planned = [
            plan_run(hydra_context, config, list(o), initial_job_idx + i, here, jobs)
            for i, o in enumerate(job_overrides)
        ]
        try:
            check_planned_claims(jobs)  # every arm and metric a claim names exists, before any run
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return planned
    except Exception:
        restore_sweep_folder(config)
        raise


def restore_sweep_folder(config: DictConfig) -> None:
    """The sweep folder as it was before a refused sweep: one that holds nothing but the multirun.yaml
    Hydra has just written is removed, and an earlier sweep's multirun.yaml is put back."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    before = _MULTIRUN_YAML.get(str(sweep_dir.absolute()))
    if before is not None:
        (sweep_dir / "multirun.yaml").write_bytes(before)
    elif sweep_dir.is_dir() and {p.name for p in sweep_dir.iterdir()} <= {"multirun.yaml"}:
        shutil.rmtree(sweep_dir, ignore_errors=True)
        # multirun/<date>/ and multirun/ when they were made for this sweep alone (never the cwd)
        for parent in list(sweep_dir.absolute().parents)[:2]:
            try:
                if parent != Path.cwd():
                    parent.rmdir()
            except OSError:
                break


_MULTIRUN_YAML: dict[str, bytes] = {}  # sweep folder -> its multirun.yaml before Hydra rewrote it


def remember_multirun_yaml(sweep_dir: Path) -> None:
    """Called before Hydra's sweeper writes <sweep dir>/multirun.yaml (align_lab.app.RunFolder's
    on_multirun_start), so that a refused sweep leaves an earlier sweep's file as it was."""
    path = sweep_dir / "multirun.yaml"
    if path.is_file():
        _MULTIRUN_YAML[str(sweep_dir.absolute())] = path.read_bytes()
