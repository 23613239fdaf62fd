"""One job's admission: the one entrance of every run, from `python -m align_lab` (app.py) and from each
align_lab launcher (through a sweep's admission, study/admission.py), before anything is written or built.

A job's config becomes an admitted Job (run/spec.py) in one pass: its overrides in every form (`~key`,
`+key`, `++key`, interpolations) reach the same checks as `key=value`; its RunSpec is built once (type and
value checks); then the checks no component can make alone (run/cross_checks.py), its folder (owned, not
in use, a completed run of this config, or a checkpoint of this very run: identity, hyperparameters,
config, partitions, metrics.jsonl), and, where it runs, the machine (device, threads, memory). Each check
runs once per job; a refusal is one line (ConfigError) and leaves the folder as it was.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from align_lab.config import ConfigError, build
from align_lab.run.defaults import override_keys, unread_by_the_algorithm
from align_lab.run.top_level import check_seeds, check_top_level
from align_lab.user_shadows import shadowing

log = logging.getLogger("align_lab")
CONF = Path(__file__).resolve().parents[2] / "conf"


def spec_from_config(cfg: DictConfig, names: dict, overrides: list[str] | None = None):
    """Builds every component (type- and value-checked) into a RunSpec. With the run's Hydra
    `overrides`, the model preset's optimiser scale first goes into every algo key they do not set
    (run/defaults.py apply_model_defaults); None: `cfg` has it already (tests' compose) or takes none. An
    interpolation that does not resolve is one line naming its key."""
    try:
        return _spec(cfg, names, overrides)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", "")
        why = str(e).splitlines()[0].split("raised while resolving interpolation: ")[-1].strip('"')
        fix = f"; set what it reads, or give {key} a value" if key else ""
        raise ConfigError(f"{key or 'config'}: {why}{fix}") from None


def _spec(cfg: DictConfig, names: dict, overrides: list[str] | None):
    from align_lab.run.defaults import apply_model_defaults, apply_specialised_defaults, apply_stage_seed

    check_top_level(OmegaConf.to_container(cfg, resolve=True))  # before anything reads them
    if (line := shadowing()) is not None:  # before a task's check imports a library yours stands in for
        raise ConfigError(line)
    defaults_from = {} if overrides is None else apply_model_defaults(cfg, overrides, names.get("model"))
    defaults_from |= {} if overrides is None else apply_specialised_defaults(cfg, overrides, names)
    check_derived(cfg, overrides or [])
    apply_stage_seed(cfg)  # per_run: the shared stages' seeds become the run's
    config = OmegaConf.to_container(cfg, resolve=True)
    check_seeds(config)
    return _built(cfg, names, config, defaults_from)


def _built(cfg: DictConfig, names: dict, config: dict, defaults_from: dict):
    """The RunSpec of a config that passed the checks above: its components built (each type- and
    value-checked by build()). The modules that import torch are first imported here."""
    from align_lab.train.preemption import held

    with held("the command stops once its components are built, their modules imported ({name} again: now)"):
        return _components(cfg, names, config, defaults_from)


def _components(cfg: DictConfig, names: dict, config: dict, defaults_from: dict):
    from align_lab.cache import usable_cache_dir
    from align_lab.config import integer
    from align_lab.envs.single_turn import SingleTurn
    from align_lab.models.lora import LoRA
    from align_lab.run.spec import RunSpec

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
                if o.is_add() and key in known:  # said "unknown key", listing it (fourth hunt of 2026-12-04)
                    raise ConfigError(f"+{key}: {key} is a key of the config already; set it without the +")
                if key not in known:
                    raise ConfigError(
                        f"{key}: unknown key (nothing reads it); the top-level keys are "
                        f"{', '.join(sorted(known))}"
                    )
            elif parent == "stages" and leaf != "seed":
                raise ConfigError(f"stages.{leaf}: unknown key; allowed: stages.seed")
        elif o.value() == {} and OmegaConf.select(cfg, key):  # Hydra merges it: a no-op (48th hunt, case 30)
            raise ConfigError(
                f"{key}={{}}: Hydra merges a mapping into {key}'s, so an empty one leaves it as it is "
                f"({', '.join(map(str, OmegaConf.select(cfg, key)))}); remove one with ~{key}.<name>"
            )


def check_plan(cfg: DictConfig, hydra_node: DictConfig) -> None:
    """`plan` is a sequential study's (docs/studies.md): it chooses a sweep's seeds wave by wave, so on a
    single run it would be neither checked nor used."""
    from hydra.types import RunMode

    if cfg.get("plan") is not None and hydra_node.get("mode") == RunMode.RUN:
        plan = OmegaConf.to_container(cfg.plan, resolve=False) if OmegaConf.is_config(cfg.plan) else cfg.plan
        raise ConfigError(
            f"plan={plan}: a sequential study's plan chooses the seeds of a sweep (python -m align_lab -m "
            "...); a single run has none to choose; drop plan, or run the study with -m"
        )
    if cfg.get("tune") is not None and hydra_node.get("mode") == RunMode.RUN:
        raise ConfigError(
            "tune: a tuned study tunes the arms of a sweep (python -m align_lab -m ...); a single run has "
            "none; drop tune, or run the study with -m"
        )


def check_here(spec) -> None:
    """What only the machine a job runs on can check (device, installed backends), then the warnings."""
    from align_lab.run.cross_checks import check_machine
    from align_lab.run.machine_fit import machine_warnings
    from align_lab.run.unread import unread

    check_machine(spec)
    check_evaluation_kept(spec)
    for line in (*unread(spec), *machine_warnings(spec)):  # once the folder is this run's, not a refusal's
        log.warning(f"align_lab: warning: {line}")


def check_evaluation_kept(spec) -> None:
    """An evaluation's samples and records fit this machine's memory (hardware.memory_gb where set), which
    holds them until it ends (train/memory/kept.py)."""
    from align_lab.train.memory import kept_line, kept_row_bytes, machine_memory, response_tokens

    hw, task = spec.hardware, spec.task
    memory = int(hw.memory_gb * 2**30) if hw.memory_gb else machine_memory()
    where = f"hardware.memory_gb={hw.memory_gb:g}" if hw.memory_gb else "this machine's memory"
    # the policy's token limits: a pretrained model's own (a dataset task has none: models/hf.py view)
    limits = spec.model if spec.model.pretrained else task
    row = kept_row_bytes(limits.max_prompt_tokens, response_tokens(limits, spec.env))
    line = kept_line(len(task.prompts("eval")), spec.train.eval_samples, row, memory, where)
    if line is not None:
        raise ConfigError(line)


def admit(cfg: DictConfig, hydra_node: DictConfig, run_dir: Path, here: bool = True):
    """The admitted Job of one job: `cfg` the job's config (no hydra node; not changed), `hydra_node` its
    Hydra config (choices, task overrides). `here`: the job runs on this machine (else check_here runs
    where it does). Raises ConfigError (one line)."""
    from align_lab.config import run_choices
    from align_lab.run.run_folder import RunFolder, joins_a_sweep
    from align_lab.user_pulse import pulsing
    from align_lab.user_reads import watch

    watch()  # what the user's code reads from here on (its modules' top level, as they are imported)
    pulsing(True)  # and a thread of it crashing, or holding Python's lock (34th hunt, case 86)
    segments = RunFolder(Path(run_dir)).previous_segments()  # before this process logs a line there
    names = run_choices(hydra_node.runtime.choices)
    overrides = OmegaConf.to_container(hydra_node.overrides.task, resolve=False)  # as typed: ${...} kept
    check_overrides(overrides, cfg, hydra_node.runtime.choices)
    check_plan(cfg, hydra_node)
    placed_as_rank_0(cfg)
    spec = spec_from_config(nested_algo(copy.deepcopy(cfg)), names, overrides)
    job = admit_spec(spec, Path(run_dir).absolute(), here, segments)
    if line := unread_by_the_algorithm(spec, overrides):
        log.warning(line)
    if str(hydra_node.get("mode")) != "RunMode.MULTIRUN" and not job.previous:
        if line := joins_a_sweep(job.run_dir):
            log.warning(line)
    return job


def placed_as_rank_0(cfg: DictConfig) -> None:
    """RANK, WORLD_SIZE, LOCAL_RANK as rank 0 of a run of hardware.processes > 1 on this node has them,
    before the user's modules are imported (their top level read them unset: thirty-fourth hunt, case 38;
    the spawned ranks are placed as they start, train/launch.py); a previous run's taken back first."""
    import sys

    if "align_lab.train.distributed" in sys.modules:  # else nothing of its is set (nor torch imported)
        sys.modules["align_lab.train.distributed"].forget_env()
    processes, nodes = (OmegaConf.select(cfg, f"hardware.{k}", default=1) for k in ("processes", "nodes"))
    if isinstance(processes, int) and processes > 1 and nodes == 1:  # whatever SLURM_PROCID says
        from align_lab.train.rank_env import own_place

        own_place(0, processes, 0, processes)


def nested_algo(cfg: DictConfig) -> DictConfig:
    """`cfg` with the old flat keys that a sweep's or a study's file wrote under algo (algo: {clip_high:
    0.28}) moved into their part's node (align_lab/aliases.py), each said once."""
    from omegaconf import open_dict

    from align_lab import aliases

    if not isinstance(cfg.get("algo"), DictConfig):
        return cfg
    algo, notes = aliases.nest(OmegaConf.to_container(cfg.algo, resolve=False))
    if notes:
        aliases.say(notes)
        with open_dict(cfg):
            cfg.algo = algo
    return cfg


def admit_spec(spec, run_dir: Path, here: bool = True, segments: list[float] | None = None):
    """The checks of a built RunSpec (admit's, and tests' and benchmarks' entrance): those no component
    can make alone, its folder, and, `here`, the machine. `segments`: the folder's earlier segments, read
    before anything was logged (admit's; read here when not given)."""
    from align_lab.run.cross_checks import check_run
    from align_lab.run.folder_checks import check_folder
    from align_lab.run.run_folder import RunFolder
    from align_lab.run.spec import Job
    from align_lab.run.teacher_run import check_not_its_own
    from align_lab.user_reads import watch

    watch()
    # a module of yours named as one of Python's, before any compute (52nd hunt, case 9: a verifier's helper
    # statistics, said only at the run's end)
    if (line := shadowing()) is not None:
        raise ConfigError(line)
    segments = RunFolder(Path(run_dir)).previous_segments() if segments is None else segments
    check_not_its_own(spec, Path(run_dir))  # before its folder is read as a teacher's
    check_run(spec, here=False)  # the machine: check_here, where the job runs
    previous, changed_inputs = check_folder(spec, Path(run_dir))
    if here:
        check_here(spec)
    return Job(spec, Path(run_dir), previous, changed_inputs, segments)


def admitted_here(job, cfg, first: bool):
    """A sweep's job as its own process starts it: admitted again where this process writes the folder
    (`first`: the folder as it is now, before check_here logs a line to its app.log), this machine checked.
    A refusal here leaves its .hydra/ record and a failed summary.json, as one in the sweep's process does:
    it left no folder, and compare called the run `pending` where `study status` said failed (thirty-fourth
    hunt, case 65). A folder that cannot be written keeps the line alone."""
    try:
        if first:
            job = admit_spec(job.spec, job.run_dir, here=False)
        check_here(job.spec)
    except ConfigError as e:
        raise (_recorded_in_its_job(e, cfg, job) if first else e) from None
    return job


def _recorded_in_its_job(e, cfg, job) -> BaseException:
    """recorded_refusal of `e`, with the job's .hydra/ record written first where the folder has none (in
    a sweep; a single run refused leaves no folder)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from align_lab.run.hydra_record import unwritten_hydra_record, write_hydra_record
    from align_lab.run.refused import recorded_refusal

    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return e
    try:
        if not (job.run_dir / ".hydra").is_dir():
            write_hydra_record(cfg, job.run_dir)
    except OSError:
        unwritten_hydra_record(job)
        return e
    return recorded_refusal(e, job.spec, job.run_dir)
