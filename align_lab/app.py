"""The Hydra task function and the translation of composition errors to one line."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from align_lab.config import ConfigError, build

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def backend_from_config(hardware: DictConfig):
    """hardware.backend / zero_stage / dtype / gradient_checkpointing -> a checked Backend."""
    from align_lab.train.backend import Backend

    keys = ("backend", "zero_stage", "dtype", "gradient_checkpointing")
    try:
        return Backend(**{k: hardware[k] for k in keys if k in hardware})
    except ValueError as e:
        raise ConfigError(f"hardware.{e}") from None


def spec_from_config(cfg: DictConfig, names: dict):
    """Builds every component (type- and value-checked) into a RunSpec."""
    from align_lab.models.lora import LoRA
    from align_lab.study.cache import default_cache_dir
    from align_lab.study.resources import threads_given
    from align_lab.study.run import RunSpec

    tracker = OmegaConf.to_container(cfg.tracker, resolve=True)
    if tracker.get("kind") not in ("wandb", "none"):
        raise ConfigError(f"tracker.kind={tracker.get('kind')}: must be one of wandb, none")
    return RunSpec(
        algo=build(cfg.algo, "algo"),
        model=build(cfg.model, "model"),
        task=build(cfg.task, "task"),
        reward=build(cfg.reward, "reward"),
        train=build(cfg.train, "train"),
        sft=build(cfg.sft, "sft"),
        rollout=build(cfg.rollout, "rollout"),
        tracker=tracker | {"group": cfg.study},
        seed=int(cfg.seed),
        cache_dir=Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir(),
        device=cfg.hardware.device,
        num_threads=threads_given(
            None if cfg.hardware.num_threads is None else int(cfg.hardware.num_threads),
            int(cfg.hardware.resources.cpus_per_task),
            int(cfg.hardware.get("processes", 1)),
        ),
        processes=int(cfg.hardware.get("processes", 1)),
        backend=backend_from_config(cfg.hardware),
        lora=build(cfg.lora, "lora") if cfg.get("lora") else LoRA(),
        names=names,
        config=OmegaConf.to_container(cfg, resolve=True),
        judge=build(cfg.judge, "judge") if cfg.get("judge") else None,
    )


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    from align_lab.study.run import check_combination, run

    hc = HydraConfig.get()
    names = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    try:
        spec = spec_from_config(cfg, names)
        check_combination(spec)
    except ConfigError as e:  # before Hydra logs a traceback: one line, exit code 2
        print(f"align_lab: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    summary = run(spec, Path(hc.runtime.output_dir))
    return summary.get("eval/gold_reward", float("nan"))


def format_error(e: BaseException) -> str | None:
    """One line for configuration errors (ours and Hydra's); None for anything else."""
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )

    if isinstance(e, ConfigError):
        return str(e)
    if isinstance(e, MissingConfigException) and e.options is not None:
        group = (e.missing_cfg_file or "").split("/")[0] or "group"
        bad = (e.missing_cfg_file or "").split("/", 1)[-1]
        return f"{group}={bad}: unknown choice; allowed: {', '.join(sorted(e.options))}"
    if isinstance(e, (ConfigCompositionException, OverrideParseException, MissingConfigException)):
        text = " ".join(str(e).split())
        cause = e.__cause__
        if cause is not None and "not in struct" in str(cause):
            key = getattr(cause, "full_key", "")
            return f"{key}: unknown key (to add a new key use +{key}=...)"
        return text
    cause = e.__cause__ or e.__context__
    return format_error(cause) if cause is not None and cause is not e else None
