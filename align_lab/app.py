"""The Hydra task function and the translation of composition errors to one line."""

from __future__ import annotations

import errno
import shutil
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from align_lab.config import ConfigError, build

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def spec_from_config(cfg: DictConfig, names: dict, overrides: list[str] | None = None):
    """Builds every component (type- and value-checked) into a RunSpec. With the run's Hydra
    `overrides`, the model preset's optimiser scale first goes into every algo key they do not set
    (config.apply_model_defaults); None: `cfg` has it already (tests' compose) or takes none."""
    from align_lab.cache import usable_cache_dir
    from align_lab.config import apply_model_defaults, integer
    from align_lab.models.lora import LoRA
    from align_lab.study.spec import RunSpec

    defaults_from = {} if overrides is None else apply_model_defaults(cfg, overrides, names.get("model"))
    return RunSpec(
        algo=build(cfg.algo, "algo"),
        model=build(cfg.model, "model"),
        task=build(cfg.task, "task"),
        reward=build(cfg.reward, "reward"),
        train=build(cfg.train, "train"),
        sft=build(cfg.sft, "sft"),
        rollout=build(cfg.rollout, "rollout"),
        seed=integer(cfg.seed, "seed"),
        cache_dir=usable_cache_dir(cfg.cache_dir),
        names=names,
        config=OmegaConf.to_container(cfg, resolve=True),
        tracker=build(cfg.tracker, "tracker"),
        hardware=build(cfg.hardware, "hardware"),
        judge=build(cfg.judge, "judge") if cfg.get("judge") else None,
        lora=build(cfg.lora, "lora") if cfg.get("lora") else LoRA(),
        defaults_from=defaults_from,
    )


def remove_unused_run_dir(run_dir: Path) -> None:
    """A run refused before it started leaves no folder behind: Hydra made it (.hydra/, an empty
    app.log); anything else in it (an earlier run's files) keeps it."""
    if not run_dir.is_dir():
        return
    names = {p.name for p in run_dir.iterdir()}
    log = run_dir / "app.log"
    if names <= {".hydra", "app.log"} and (not log.exists() or log.stat().st_size == 0):
        shutil.rmtree(run_dir, ignore_errors=True)


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    from align_lab.study.run import run
    from align_lab.study.summary import RunStopped

    hc = HydraConfig.get()
    names = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    try:
        summary = run(spec_from_config(cfg, names, list(hc.overrides.task)), Path(hc.runtime.output_dir))
    except ConfigError as e:  # before Hydra logs a traceback: one line, exit code 2
        remove_unused_run_dir(Path(hc.runtime.output_dir))
        print(f"align_lab: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except RunStopped as e:  # a damaged checkpoint, a full disk, a signal: one line, resumable
        print(f"align_lab: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
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
    if isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC):
        # Hydra's own writes (the run folder's .hydra/ and app.log) fail before align_lab's code runs
        what = e.filename or "the run folder"
        return f"cannot write {what} ({e.strerror}); choose a writable hydra.run.dir"
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
