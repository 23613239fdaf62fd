"""The Hydra task function and the translation of composition errors to one line."""

from __future__ import annotations

import errno
import shutil
import sys
from pathlib import Path

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from align_lab.config import ConfigError, build

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def spec_from_config(cfg: DictConfig, names: dict, overrides: list[str] | None = None):
    """Builds every component (type- and value-checked) into a RunSpec. With the run's Hydra
    `overrides`, the model preset's optimiser scale first goes into every algo key they do not set
    (config.apply_model_defaults); None: `cfg` has it already (tests' compose) or takes none."""
    from align_lab.cache import usable_cache_dir
    from align_lab.config import apply_model_defaults, apply_stage_seed, integer
    from align_lab.envs.single_turn import SingleTurn
    from align_lab.models.lora import LoRA
    from align_lab.study.spec import RunSpec

    defaults_from = {} if overrides is None else apply_model_defaults(cfg, overrides, names.get("model"))
    apply_stage_seed(cfg)  # per_run: the shared stages' seeds become the run's
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
        env=build(cfg.env, "env") if cfg.get("env") else SingleTurn(),
    )


def remove_unused_run_dir(run_dir: Path) -> None:
    """A run refused before it started leaves no folder behind: Hydra made it (.hydra/, an empty
    app.log) and the run's lock; anything else in it (an earlier run's files) keeps it."""
    from align_lab.folder import LOCK

    if not run_dir.is_dir():
        return
    names = {p.name for p in run_dir.iterdir()}
    log = run_dir / "app.log"
    if names <= {".hydra", "app.log", LOCK} and (not log.exists() or log.stat().st_size == 0):
        shutil.rmtree(run_dir, ignore_errors=True)


def check_folder(spec, run_dir: Path) -> None:
    """What a run checks of its folder before anything is written there (Hydra writes .hydra/ before the
    task function runs, so this runs before Hydra's job does): it holds only align_lab's files, no live
    run holds it, a completed run there has this config, and a checkpoint there has these
    hyperparameters. One line each (ConfigError)."""
    from align_lab.folder import check_owned, holder, in_use
    from align_lab.study.summary import check_resume_config, check_same_config, config_digest
    from align_lab.train.checkpoint_io import CheckpointError
    from align_lab.train.resume import check_resumable

    check_owned(run_dir)
    who = holder(run_dir)
    if who is not None:
        raise ConfigError(in_use(run_dir, who))
    if check_same_config(run_dir, config_digest(spec.config)).get("status") == "completed":
        return  # run() reports it as it is; its checkpoint is not even read
    try:  # the algorithm's hyperparameters first: that message names the checkpoint
        check_resumable(spec.algo, run_dir / "checkpoints")
    except CheckpointError as e:
        raise ConfigError(str(e)) from None
    check_resume_config(run_dir, spec.config)


def job_spec(config: DictConfig):
    """(RunSpec, run folder) of a job's full config (with its hydra node), composed as Hydra's job will
    see it, before Hydra's job has run; raises ConfigError (one line) for a bad one."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        if config.hydra.mode == RunMode.MULTIRUN:
            run_dir = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
        else:
            run_dir = Path(str(config.hydra.run.dir))
        names = {k: v for k, v in config.hydra.runtime.choices.items() if not k.startswith("hydra")}
        job_cfg = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        spec = spec_from_config(job_cfg, names, list(config.hydra.overrides.task))
    finally:
        HydraConfig.instance().cfg = previous
    return spec, run_dir.absolute()


class RunFolder(Callback):
    """A single run's checks before Hydra writes anything (hydra.callbacks.run_folder in conf/config.yaml):
    the config, then the folder (check_folder), then the run's lock, held until the process ends. A
    refused run writes nothing: no .hydra/ rewrite, no new folder. A sweep's launchers do the same per
    job (hydra_plugins/align_lab_launcher)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        from align_lab.folder import claim
        from align_lab.study.checks import check_run

        try:
            spec, run_dir = job_spec(config)
            check_run(spec)
            check_folder(spec, run_dir)
            self.lock = claim(run_dir)
        except Exception as e:
            message = format_error(e)
            if message is None:
                raise  # a bug: Hydra warns, and the run meets it again in main()
            # Hydra turns a callback's exception into a warning and runs the job: exit here, in one line
            print(f"align_lab: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from hydra_plugins.align_lab_launcher.plan import remember_multirun_yaml

        remember_multirun_yaml(Path(str(config.hydra.sweep.dir)))


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from align_lab.study.run import run
    from align_lab.study.summary import RunStopped

    hc = HydraConfig.get()
    names = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    # in a sweep, a run's one-line error is its job's failure, which the launcher reports (the sweep goes
    # on); a signal (Ctrl-C, SIGTERM) still ends the sweep
    sweep = hc.mode == RunMode.MULTIRUN
    try:
        summary = run(spec_from_config(cfg, names, list(hc.overrides.task)), Path(hc.runtime.output_dir))
    except ConfigError as e:  # before Hydra logs a traceback: one line, exit code 2
        remove_unused_run_dir(Path(hc.runtime.output_dir))
        if sweep:
            raise
        print(f"align_lab: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except RunStopped as e:  # a damaged checkpoint, a full disk, a signal: one line, resumable
        if sweep and e.exit_code < 128:
            raise
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
        if cause is not None and "not in struct" in str(cause):  # the closest key, not a `+` that fails later
            from align_lab.config import unknown_key

            parent = getattr(cause, "parent_node", None)
            return unknown_key(getattr(cause, "full_key", ""), parent.keys() if parent is not None else [])
        return text
    cause = e.__cause__ or e.__context__
    return format_error(cause) if cause is not None and cause is not e else None
