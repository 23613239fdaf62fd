"""The Hydra task function (a job admitted by align_lab/run/admission.py, then run); the translation of
composition errors to one line is align_lab/error_lines.py."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from align_lab.error_lines import CONF, format_error
from align_lab.overrides import internal_group, leading_zero, repeated, unreadable
from align_lab.run.hydra_record import unwritten_hydra_record, write_hydra_record
from align_lab.run.refused import recorded_refusal, remove_unused_run_dir, said_last, said_when_unwritable
from align_lab.value_checks import ConfigError, UserCodeError


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def main(cfg: DictConfig) -> float:
    """One job of `python -m align_lab`: admitted here (a single run, or a job of a launcher that admits
    none), then run. The align_lab launchers admit a sweep's jobs first and run each with run_admitted."""
    from hydra.core.hydra_config import HydraConfig

    from align_lab.run.admission import admit
    from align_lab.train.preemption import Interrupted, Interruption

    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    try:
        with Interruption():  # a SIGTERM too (fifteenth hunt: rc 143 and no line)
            job = admit(cfg, hc, out)
    except ConfigError as e:
        return refused(e, out)
    except (KeyboardInterrupt, Interrupted) as e:  # thirteenth hunt: Ctrl-C as a resume asked a slow reward
        said = f"interrupted by {getattr(e, 'signal_name', 'SIGINT')} while the run was admitted, before any"
        line = f"{said} compute (nothing was written): rerun the same command"
        return refused(e, out, line, getattr(e, "exit_code", 130))
    return run_admitted(job, cfg)


def refused(e: BaseException, run_dir: Path, line: str | None = None, code: int = 2) -> float:
    """A job refused (or interrupted: `line`, `code`) before it started: no folder left behind; one line
    and exit code 2, or, in a sweep, its job's failure, which the launcher reports (the sweep goes on)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from align_lab.run.refused import run_elsewhere

    remove_unused_run_dir(run_dir)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        raise e
    run_elsewhere(e)  # where another command's run took the default folder in the same second
    print(f"align_lab: {line or f'error: {e}'}", file=sys.stderr)
    raise SystemExit(code) from None


def run_admitted(job, cfg: DictConfig, here: bool = False) -> float:
    """An admitted job, inside Hydra's run_job: `here` (a job admitted on another machine, or resubmitted),
    its folder's checks again, as the folder is now, and those only the machine it runs on can make; its
    folder's lock (rank 0's: the ranks of a run across nodes share it), held while it runs; Hydra's
    record of the job (.hydra/); the run. A one-line stop (a damaged checkpoint, a full disk, a signal)
    exits with its code; in a sweep it is the job's failure, but a signal still ends the sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from align_lab.run.admission import admitted_here
    from align_lab.run.execute import run
    from align_lab.run.refused import same_second
    from align_lab.run.run_folder import RunFolder
    from align_lab.run.summary import RunStopped, base_exception_line
    from align_lab.train.preemption import Interrupted
    from align_lab.user_shadows import shadowing

    # rank 0 of a run across nodes writes its folder; on one node the run's process does, whatever
    # SLURM_PROCID a shell left (a stray 1 took no lock, and two runs wrote one folder at once)
    across_nodes = OmegaConf.select(cfg, "hardware.nodes", default=1) > 1
    first = not across_nodes or os.environ.get("SLURM_PROCID", "0") == "0"
    try:
        if here:  # `study resume`, a requeue, the first submission's Job (twenty-second hunt, 8, 9, 11)
            job = admitted_here(job, cfg, first)
        lock = RunFolder(job.run_dir).claim() if first else None
    except ConfigError as e:  # or another process took the folder since admission
        return refused(same_second(e, job.run_dir), job.run_dir)
    except OSError as e:  # a folder that cannot be written (read-only, no space): its one line, naming it
        e.filename = e.filename or str(job.run_dir)  # a sweep's said "the run folder" (21st hunt, case 18)
        return refused(ConfigError(format_error(e) or str(e)), job.run_dir)
    STARTED.append(job.run_dir)
    said_when_unwritable(job.run_dir / "app.log")
    try:
        if not job.completed:
            hydra_record(cfg, job)
        summary = run(job)
    except (ConfigError, UserCodeError) as e:  # at its start: outside its Slurm tasks; an input changed
        return refused(recorded_refusal(e, job.spec, job.run_dir), job.run_dir)
    except (KeyboardInterrupt, Interrupted) as e:  # in the hand-over, before the run's own handling
        unwritten_hydra_record(job)
        said = f"interrupted by {getattr(e, 'signal_name', 'SIGINT')} as the run started, before any"
        line = f"{said} compute (nothing was written): rerun the same command"
        return refused(e, job.run_dir, line, getattr(e, "exit_code", 130))
    except RunStopped as e:
        if HydraConfig.get().mode == RunMode.MULTIRUN and e.exit_code < 128:
            raise
        said_last(f"align_lab: {e}", job.run_dir / "app.log")
        raise SystemExit(e.exit_code) from None
    except BaseException as e:  # GeneratorExit, a class of the user's code; a file of theirs named as a
        line = shadowing() if isinstance(e, Exception) else None  # module: its line, not Hydra's first
        if line is None and isinstance(e, Exception | SystemExit | KeyboardInterrupt):
            raise
        said = line or base_exception_line(e, job.run_dir)
        said_last(f"align_lab: error: {said}", job.run_dir / "app.log", line)  # its summary too
        raise SystemExit(2 if line else 1) from None
    finally:
        if lock is not None:
            lock.release()
    return summary.get("eval/gold_reward", float("nan"))


STARTED: list[Path] = []  # the folders of the runs this process started (__main__ says a signal's line)


def hydra_record(cfg: DictConfig, job) -> None:
    """The job's .hydra/ record written, or (a full disk) taken back and the job refused in one line:
    Hydra's `Error executing job with overrides` line came first, the folder stayed (20th hunt, 11)."""
    try:
        write_hydra_record(cfg, job.run_dir)
    except OSError as e:
        unwritten_hydra_record(job)
        e.filename = e.filename or str(job.run_dir / ".hydra")
        raise ConfigError(format_error(e) or str(e)) from None


MULTIRUN = ("-m", "--multirun")


def multirun_first(args: list[str]) -> tuple[list[str], str | None]:
    """`args` with a -m/--multirun typed after an override moved before the overrides, and the line that
    says so (None: nothing moved). Hydra's parser takes its options before the overrides: `algo=ppo,rloo
    -m seed=0,1` was its usage line and `unrecognized arguments: seed=0,1`."""

    first = next((i for i, a in enumerate(args) if "=" in a and not a.startswith("-")), len(args))
    late = [i for i, a in enumerate(args) if a in MULTIRUN and i > first]
    if not late:
        return args, None
    flag = [] if any(a in MULTIRUN for a in args[:first]) else [args[late[0]]]
    rest = [a for i, a in enumerate(args) if i not in late]
    moved = [*rest[:first], *flag, *rest[first:]]
    return moved, (
        f"align_lab: note: {args[late[0]]} goes before the overrides; read as: "
        f"python -m align_lab {shlex.join(moved)}"
    )


def renamed_keys(args: list[str]) -> list[str]:
    """The command line with each old flat key of a part's node mapped to its nested key (algo.clip=0.3 ->
    algo.clip.low=0.3; align_lab/aliases.py), said once; the old and the new name of one key: one line."""
    from align_lab import aliases

    try:
        renamed, notes = aliases.rename_overrides(args)
    except aliases.RenameConflict as e:
        raise ConfigError(str(e)) from None
    aliases.say(notes)
    return renamed


def check_group_overrides(args: list[str]) -> None:
    """`algo=[ppo,rloo]` is Hydra's list of configs merged into one algo (PPO's keys into RLOO's, then an
    unknown-key error naming neither), never a sweep, with -m or without: a sweep is a comma list.
    `algo=null` is a ValueError traceback inside Hydra, and `~algo` an interpolation error: every group
    needs a choice."""
    from align_lab.registry import GROUPS, choices

    for arg in args:
        if not arg.strip():  # Hydra's parser said `mismatched input '<EOF>'`, naming no argument
            raise ConfigError(
                f"an empty argument ({arg!r}) on the command line, e.g. an empty shell variable in quotes "
                '("$EXTRA"): remove it'
            )
        key, _, value = arg.partition("=")
        if line := unreadable(arg) or repeated(arg) or leading_zero(arg) or internal_group(arg):
            raise ConfigError(line)
        group = key.lstrip("+~")
        if "=" in arg and (line := scalar_for_a_node(group, value)):
            raise ConfigError(f"{arg}: {line}")
        if group in GROUPS and key.startswith("~"):  # before Hydra: ${algo}_${model} needs both
            raise ConfigError(f"~{group}: every run needs {group}; set another value ({group}=...) instead")
        if group in GROUPS and value == "null":
            raise ConfigError(f"{arg}: every run needs {group}; allowed: {', '.join(choices(group))}")
        if group in GROUPS and value.startswith("[") and value.endswith("]"):
            choices = ",".join(v.strip() for v in value[1:-1].split(","))
            raise ConfigError(
                f"{arg}: a run takes one {group}; a list sweeps only as a comma list with -m: "
                f"python -m align_lab -m {group}={choices}"
            )


def scalar_for_a_node(key: str, value: str) -> str | None:
    """What is wrong with `algo.correction=tis`: a value for a part's node, whose keys take values
    (OmegaConf said `algo.=None: Merge error: str is not a subclass of RolloutCorrection`: seventh hunt);
    None for anything else (algo.clip=0.3 was renamed to algo.clip.low before: aliases.py)."""
    from align_lab.aliases import GROUP, RENAMED

    node = key.removeprefix(f"{GROUP}.")
    keys = [new.split(".", 1)[1] for new in RENAMED.values() if new.startswith(f"{node}.")]
    if key == node or not keys or value.lstrip().startswith("{") or value == "null":
        return None
    return (
        f"{key} is a node of keys ({', '.join(keys)}); set one of them, e.g. {key}.{keys[0]}="
        f"{value.split(',')[0]}"
    )
