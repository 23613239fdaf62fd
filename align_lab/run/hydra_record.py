"""A run folder's .hydra/ record (the job's config, Hydra's config, the overrides), written by align_lab
once a job is admitted, as Hydra writes it (hydra.output_subdir is null in conf/config.yaml, so that a
refused job rewrites none of them), and taken back where the run never started."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def unwritten_hydra_record(job) -> None:
    """A new run's .hydra/ files taken back (a run stopped by a signal in the hand-over from admission):
    its folder is then one refused() removes. A folder that held a run before keeps its record."""
    if (job.run_dir / "summary.json").exists() or (job.run_dir / "checkpoints").exists():
        return
    for name in HYDRA_RECORD:
        (job.run_dir / ".hydra" / name).unlink(missing_ok=True)


HYDRA_RECORD = ("config.yaml", "hydra.yaml", "overrides.yaml")


def write_hydra_record(cfg: DictConfig, run_dir: Path) -> None:
    """<run folder>/.hydra/: the job's config, Hydra's config and the overrides, as Hydra writes them
    (hydra.output_subdir is null in conf/config.yaml, so that a refused job rewrites none of them)."""
    from hydra.core.hydra_config import HydraConfig

    out = run_dir / ".hydra"
    out.mkdir(parents=True, exist_ok=True)
    for name, what in zip(
        HYDRA_RECORD, (cfg, HydraConfig.instance().cfg, HydraConfig.get().overrides.task), strict=True
    ):
        OmegaConf.save(what, out / name)
