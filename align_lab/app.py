"""The Hydra task function and the translation of composition errors to one line."""

from __future__ import annotations

import os
import shutil
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


def integer(value, key: str, allowed: str = "an integer") -> int:
    """An int from a config value that must be one (not 1.5, not "abc", not true): else a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise ConfigError(f"{key}={value}: must be {allowed}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{key}={value}: must be {allowed}") from None
    if not number.is_integer():
        raise ConfigError(f"{key}={value}: must be {allowed}")
    return int(number)


def usable_cache_dir(value) -> Path:
    """The stage cache folder, checked writable (it is made when a stage is built); one line if it cannot
    be (a file, /proc, no rights)."""
    from align_lab.study.cache import default_cache_dir

    path = Path(value).expanduser() if value else default_cache_dir()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"cache_dir={path}: is a file; must be a folder (or null: the user cache dir)")
    created = next((p for p in reversed([path, *path.parents]) if not p.exists()), None)
    try:  # tried by making it, then undone: a refused run leaves nothing behind
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
    except OSError as e:
        raise ConfigError(
            f"cache_dir={path}: cannot write there ({e.strerror}); choose a writable folder"
        ) from None
    return path


def spec_from_config(cfg: DictConfig, names: dict):
    """Builds every component (type- and value-checked) into a RunSpec."""
    from align_lab.models.lora import LoRA
    from align_lab.study.resources import threads_given
    from align_lab.study.run import RunSpec

    hw = cfg.hardware
    threads = (
        None if hw.num_threads is None else integer(hw.num_threads, "hardware.num_threads", ">= 0 or null")
    )
    if threads is not None and threads < 0:
        raise ConfigError(f"hardware.num_threads={threads}: must be >= 0 (0: torch's default) or null")
    if hw.get("max_parallel") is not None and integer(hw.max_parallel, "hardware.max_parallel") < 1:
        raise ConfigError(f"hardware.max_parallel={hw.max_parallel}: must be >= 1 or null (fit the machine)")
    nodes = integer(hw.get("nodes", 1), "hardware.nodes", ">= 1")
    if nodes < 1:
        raise ConfigError(f"hardware.nodes={nodes}: must be >= 1")
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
        seed=integer(cfg.seed, "seed"),
        cache_dir=usable_cache_dir(cfg.cache_dir),
        device=cfg.hardware.device,
        num_threads=threads_given(
            threads,
            int(cfg.hardware.resources.cpus_per_task),
            1 if nodes > 1 else int(cfg.hardware.get("processes", 1)),  # across nodes: a task each
        ),
        processes=int(cfg.hardware.get("processes", 1)),
        nodes=nodes,
        backend=backend_from_config(cfg.hardware),
        lora=build(cfg.lora, "lora") if cfg.get("lora") else LoRA(),
        names=names,
        config=OmegaConf.to_container(cfg, resolve=True),
        judge=build(cfg.judge, "judge") if cfg.get("judge") else None,
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

    from align_lab.study.run import RunStopped, check_combination, run

    hc = HydraConfig.get()
    names = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    try:
        spec = spec_from_config(cfg, names)
        check_combination(spec)
        summary = run(spec, Path(hc.runtime.output_dir))
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
