"""Job admission: the one entrance of every run, from `python -m align_lab` (app.py) and from each align_lab
launcher (hydra_plugins/align_lab_launcher/), before anything is written or built.

A job's config becomes an admitted Job (study/spec.py) in one pass: its overrides in every form (`~key`,
`+key`, `++key`, interpolations) reach the same checks as `key=value`; its RunSpec is built once (type and
value checks); then the checks no component can make alone (study/cross_checks.py), its folder (owned, not
in use, a completed run of this config, or a checkpoint of this very run: identity, hyperparameters,
config, partitions, metrics.jsonl), and, where it runs, the machine (device, threads, memory). Each check
runs once per job; a refusal is one line (ConfigError) and leaves the folder as it was. A sweep admits
every job before the first starts (admit_sweep), and a refused sweep leaves its folder as it was
(SweepFolder: the record of its multirun.yaml, taken by the launcher before Hydra rewrites it).
"""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from align_lab.config import ConfigError, build, override_keys
from align_lab.study.top_level import check_seeds, check_top_level

log = logging.getLogger("align_lab")
CONF = Path(__file__).resolve().parent.parent / "conf"


def spec_from_config(cfg: DictConfig, names: dict, overrides: list[str] | None = None):
    """Builds every component (type- and value-checked) into a RunSpec. With the run's Hydra
    `overrides`, the model preset's optimiser scale first goes into every algo key they do not set
    (config.apply_model_defaults); None: `cfg` has it already (tests' compose) or takes none. An
    interpolation that does not resolve is one line naming its key."""
    try:
        return _spec(cfg, names, overrides)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", "")
        why = str(e).splitlines()[0].split("raised while resolving interpolation: ")[-1].strip('"')
        fix = f"; set what it reads, or give {key} a value" if key else ""
        raise ConfigError(f"{key or 'config'}: {why}{fix}") from None


def _spec(cfg: DictConfig, names: dict, overrides: list[str] | None):
    from align_lab.config import apply_model_defaults, apply_stage_seed

    check_top_level(OmegaConf.to_container(cfg, resolve=True))  # before anything reads them
    defaults_from = {} if overrides is None else apply_model_defaults(cfg, overrides, names.get("model"))
    check_derived(cfg, overrides or [])
    apply_stage_seed(cfg)  # per_run: the shared stages' seeds become the run's
    config = OmegaConf.to_container(cfg, resolve=True)
    check_seeds(config)
    return _built(cfg, names, config, defaults_from)


def _built(cfg: DictConfig, names: dict, config: dict, defaults_from: dict):
    """The RunSpec of a config that passed the checks above: its components built (each type- and
    value-checked by build()). The modules that import torch are first imported here."""
    from align_lab.cache import usable_cache_dir
    from align_lab.config import integer
    from align_lab.envs.single_turn import SingleTurn
    from align_lab.models.lora import LoRA
    from align_lab.study.spec import RunSpec

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
        config=config,
        tracker=build(cfg.tracker, "tracker"),
        hardware=build(cfg.hardware, "hardware"),
        judge=build(cfg.judge, "judge") if cfg.get("judge") else None,
        lora=build(cfg.lora, "lora") if cfg.get("lora") else LoRA(),
        defaults_from=defaults_from,
        env=build(cfg.env, "env") if cfg.get("env") else SingleTurn(),
    )


def check_derived(cfg: DictConfig, overrides: list[str]) -> None:
    """An explicit key is never replaced by a derived one unseen: stages.seed=per_run sets sft.seed and
    the reward models' seeds to the run's seed, so setting one of them too is refused."""
    if (cfg.get("stages") or {}).get("seed") != "per_run":
        return
    for key in sorted(override_keys(overrides)):
        if key == "sft.seed" or (key.startswith("reward.") and key.endswith(".seed")):
            raise ConfigError(
                f"{key}={OmegaConf.select(cfg, key)}: stages.seed=per_run sets it to the run's seed "
                f"(seed={cfg.seed}); drop {key}, or use stages.seed=shared to keep it"
            )


def top_level_keys(choices) -> set[str]:
    """The keys conf/config.yaml defines at the top level, and the config groups chosen."""
    import yaml

    primary = yaml.safe_load((CONF / "config.yaml").read_text())
    groups = {k for k in choices if "/" not in k and not k.startswith("hydra")}
    return (set(primary) - {"defaults", "hydra"}) | groups


def check_overrides(overrides: list[str], cfg: DictConfig, choices) -> None:
    """Override forms that would escape the value checks, each one line: `~key` deleting a setting a
    component then takes from the code unseen (or a part every run needs), `+key`/`++key` adding a key
    nothing reads (at the top level or under `stages`). Components' own keys are left to build()."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    known = None
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        key = o.key_or_group
        if key.startswith("hydra") or o.package is not None:
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else None
        if o.is_delete():
            if not parent:
                raise ConfigError(f"~{key}: every run needs {key}; set another value ({key}=...) instead")
            if isinstance(node, DictConfig) and "_target_" in node:
                raise ConfigError(
                    f"~{key}: deleting a setting of {parent} runs the code's default unseen; "
                    f"set {key}=<value> instead"
                )
        elif o.is_add() or o.is_force_add():
            if not parent and key not in choices:
                known = known or top_level_keys(choices)
                if o.is_add() or key not in known:
                    raise ConfigError(
                        f"{key}: unknown key (nothing reads it); the top-level keys are "
                        f"{', '.join(sorted(known))}"
                    )
            elif parent == "stages" and leaf != "seed":
                raise ConfigError(f"stages.{leaf}: unknown key; allowed: stages.seed")


def check_plan(cfg: DictConfig, hydra_node: DictConfig) -> None:
    """`plan` is a sequential study's (docs/studies.md): it chooses a sweep's seeds wave by wave, so on a
    single run it would be neither checked nor used."""
    from hydra.types import RunMode

    if cfg.get("plan") is not None and hydra_node.get("mode") == RunMode.RUN:
        plan = OmegaConf.to_container(cfg.plan, resolve=False)
        raise ConfigError(
            f"plan={plan}: a sequential study's plan chooses the seeds of a sweep (python -m align_lab -m "
            "...); a single run has none to choose; drop plan, or run the study with -m"
        )


def check_here(spec) -> None:
    """What only the machine a job runs on can check (device, installed backends), then the warnings."""
    from align_lab.study.cross_checks import check_machine
    from align_lab.study.folder_checks import machine_warnings

    check_machine(spec)
    for line in machine_warnings(spec):
        log.warning(f"align_lab: warning: {line}")


def admit(cfg: DictConfig, hydra_node: DictConfig, run_dir: Path, here: bool = True):
    """The admitted Job of one job: `cfg` the job's config (no hydra node; not changed), `hydra_node` its
    Hydra config (choices, task overrides). `here`: the job runs on this machine (else check_here runs
    where it does). Raises ConfigError (one line)."""
    names = {k: v for k, v in hydra_node.runtime.choices.items() if not k.startswith("hydra")}
    overrides = OmegaConf.to_container(hydra_node.overrides.task, resolve=False)  # as typed: ${...} kept
    check_overrides(overrides, cfg, hydra_node.runtime.choices)
    check_plan(cfg, hydra_node)
    spec = spec_from_config(copy.deepcopy(cfg), names, overrides)
    return admit_spec(spec, Path(run_dir).absolute(), here)


def admit_spec(spec, run_dir: Path, here: bool = True):
    """The checks of a built RunSpec (admit's, and tests' and benchmarks' entrance): those no component
    can make alone, its folder, and, `here`, the machine."""
    from align_lab.study.cross_checks import check_run
    from align_lab.study.folder_checks import check_folder
    from align_lab.study.spec import Job

    check_run(spec, here=False)  # the machine: check_here, where the job runs
    previous = check_folder(spec, Path(run_dir))
    if here:
        check_here(spec)
    return Job(spec=spec, run_dir=Path(run_dir), previous=previous)


def admit_job(hydra_context, config: DictConfig, overrides: list[str], num: int, here: bool):
    """Job `num` of a sweep: its config composed as its launcher will (load_sweep_config), admitted."""
    cfg, run_dir = compose_job(hydra_context, config, overrides, num)
    job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return admit(job_cfg, cfg.hydra, run_dir, here)


def compose_job(hydra_context, config: DictConfig, overrides: list[str], num: int) -> tuple[DictConfig, Path]:
    """(job `num`'s full config as its launcher composes it, its run folder); nothing checked."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    cfg = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num = num
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:  # the run folder's name may read ${hydra:...}
        return cfg, Path(str(cfg.hydra.sweep.dir)).absolute() / str(cfg.hydra.sweep.subdir)
    finally:
        HydraConfig.instance().cfg = previous


def admit_sweep(hydra_context, config, job_overrides, first: int, here: bool, folder: SweepFolder) -> list:
    """Every job of a sweep admitted, then its claims checked against its jobs, before any job runs;
    returns [(num, overrides, Job)]. On the first refusal or an interruption the sweep folder is put
    back as it was."""
    from align_lab.results.planned_claims import check_planned_claims, planned_job

    try:
        if not job_overrides and first == 0:  # seed=range(0,0): "Launching 0 jobs", exit 0, nothing run
            swept = [o for o in config.hydra.overrides.task if "range(" in o or "," in o.split("=", 1)[-1]]
            raise ConfigError(
                f"{' '.join(swept) or 'the sweep'}: sweeps no value, so the sweep has no job; give each "
                "swept key at least one value (seed=range(0,3) is 0, 1, 2)"
            )
        jobs = []
        for i, overrides in enumerate(job_overrides):
            job = admit_job(hydra_context, config, list(overrides), first + i, here)
            jobs.append((first + i, list(overrides), job))
        planned = [
            planned_job(j.spec.config, j.spec.names, o, j.spec.task, j.spec.train.eval_samples)
            for _, o, j in jobs
        ]
        try:
            check_planned_claims(planned)  # every arm and metric a claim names exists, before any run
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return jobs
    except BaseException:  # a refusal, and a SIGTERM or Ctrl-C while the jobs are admitted
        folder.restore()
        raise


class SweepFolder:
    """The record of a sweep folder as it was before this sweep: taken by the launcher's setup(), which
    Hydra's sweeper calls before it writes <sweep dir>/multirun.yaml. restore() puts it back for a refused
    sweep: an earlier sweep's multirun.yaml as it was; a folder made for this sweep alone removed."""

    def __init__(self, config: DictConfig) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        path = self.sweep_dir / "multirun.yaml"
        self.multirun_yaml = path.read_bytes() if path.is_file() else None

    def restore(self) -> None:
        if self.multirun_yaml is not None:
            (self.sweep_dir / "multirun.yaml").write_bytes(self.multirun_yaml)
        elif self.sweep_dir.is_dir() and {p.name for p in self.sweep_dir.iterdir()} <= {"multirun.yaml"}:
            shutil.rmtree(self.sweep_dir, ignore_errors=True)
            for parent in list(self.sweep_dir.parents)[:2]:  # multirun/<date>/, multirun/ made for it
                try:
                    if parent != Path.cwd():
                        parent.rmdir()
                except OSError:
                    break


def manifest_entry(num: int, overrides: list[str], job) -> dict:
    """A job's entry in the study manifest (study.json): what it runs, where, and what it asks for."""
    from hydra.core.utils import filter_overrides

    from align_lab.study.resources import request

    spec = job.spec
    return {
        "num": num,
        "overrides": filter_overrides(overrides),
        "run_dir": str(job.run_dir),
        "names": spec.names,
        "resources": request(spec.hardware.resources, spec),
        "max_parallel": spec.hardware.max_parallel,
    }
