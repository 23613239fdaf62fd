"""A run folder's checks before a run is admitted (align_lab/run/admission.py): it is a folder of align_lab's
(a user's notes beside a run of ours are not the run's), no live run holds it, a completed run there has
this config, and a checkpoint there is this run's (identity, hyperparameters, config, partitions, a
readable metrics.jsonl). One line each."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from align_lab.config import ConfigError
from align_lab.folder import SUMMARY
from align_lab.run.run_folder import RESOLVED_CONFIG

log = logging.getLogger("align_lab")


def check_folder(spec, run_dir: Path) -> tuple[dict, dict]:
    """What a run checks of its folder before anything is written there; returns its summary.json ({}:
    none) and the inputs a resume goes on with changed (resume_changed_inputs=true: {key: (the
    checkpoint's, this run's)}). It is a folder; files align_lab did not write are refused unless it
    holds a run of align_lab's (a user's notes beside an interrupted run are not the run's); no live run
    holds it; a completed run there has this config; a checkpoint there is this run's (check_checkpoint).
    One line each."""
    from align_lab.folder import check_kinds, check_owned, holder, in_use
    from align_lab.run.completed import check_completed_steps
    from align_lab.run.refused import same_second
    from align_lab.run.run_folder import RunFolder, run_above
    from align_lab.run.summary import check_same_config
    from align_lab.run.sweep_inputs import changed_since_completed, check_afresh

    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"hydra.run.dir={run_dir}: is a file, not a folder; choose another folder")
    if line := too_long(run_dir):
        raise ConfigError(line)
    check_kinds(run_dir)
    if line := run_above(run_dir, "hydra.run.dir"):
        raise ConfigError(line)
    if not is_ours(RunFolder(run_dir).read_summary()):
        check_owned(run_dir)
    who = holder(run_dir)
    if who is not None:
        raise same_second(ConfigError(in_use(run_dir, who)), run_dir)
    check_completed_steps(spec.config, run_dir, RunFolder(run_dir).read_summary())
    previous = check_same_config(run_dir, spec.config)
    if previous.get("status") == "completed":  # a completed run is reported as it is: nothing is read
        if line := changed_since_completed(spec, run_dir):  # but a file of yours edited since is said
            log.warning(f"align_lab: warning: {line}")
        return previous, {}
    changed = check_checkpoint(spec, run_dir)
    check_afresh(spec, run_dir)  # a run that starts afresh in a sweep's folder: as its trained runs read
    return previous, changed


UNDER_RUN = 160  # bytes the run's longest path adds to its folder's: wandb's tables, 108 at step 2


def too_long(run_dir: Path, key: str = "hydra.run.dir") -> str | None:
    """A run folder whose path leaves no room under PATH_MAX for the files a run writes in it (hunt of
    2026-12-04, c57: wandb's table at the first evaluation failed in 112 lines)."""
    from align_lab.user_code import working_folder

    absolute = Path(working_folder(), run_dir)
    path = os.fsencode(absolute)
    try:
        limit = os.pathconf(next(p for p in [absolute, *absolute.parents] if p.exists()), "PC_PATH_MAX")
    except (OSError, ValueError, StopIteration):
        limit = 4096
    room = f"the files a run writes in it (up to {UNDER_RUN} bytes more: wandb's tables) would pass"
    if any(len(os.fsencode(name)) > 255 for name in absolute.parts):  # NAME_MAX, where Linux's are
        return f"{key}={run_dir}: a name in it past 255 bytes (this system's limit); choose a shorter path"
    said = f"{key}={run_dir}: a path of {len(path)} bytes; {room} this system's limit of {limit}"
    return None if len(path) + UNDER_RUN < limit else f"{said}; choose a shorter path"


def check_stopped(record: dict | None, stop, ckpt: Path) -> None:
    """A checkpoint written where train.stop_at stopped the run (its record inside) resumes only with that
    threshold: the run has ended, and its resume only finishes it (the final evaluation, summary.json).
    A checkpoint of a run that has not stopped takes any train.stop_at (MAY_CHANGE_ON_RESUME)."""
    from align_lab.train.stop_at import describe

    if not record or (record.get("metric"), record.get("threshold")) == (stop.metric, stop.value):
        return
    raise ConfigError(
        f"train.stop_at={stop}: the checkpoint in {ckpt} {describe(record)}: the run has ended; resume with "
        f"train.stop_at.metric={record['metric']} train.stop_at.value={record['threshold']} to finish it, "
        "or choose another hydra.run.dir"
    )


def is_ours(summary: dict) -> bool:
    from align_lab.folder import STATUSES

    return summary.get("status") in STATUSES and "config_digest" in summary


def check_checkpoint(spec, run_dir: Path) -> dict:
    """A checkpoint in run_dir resumes only the run that made it: the algorithm's hyperparameters (that
    message names the checkpoint), the config beside it (key by key), the identity inside it (config
    digest and seed, for a folder whose config is gone; code and inputs), DeepSpeed's partitions; and a
    metrics.jsonl a resume would cut must be readable. Returns the inputs it goes on with changed."""
    import torch

    from align_lab.envs.base import replayable
    from align_lab.run.cross_checks import check_partitions
    from align_lab.run.inputs import check_inputs, modules_now
    from align_lab.run.probe_check import check_probes
    from align_lab.run.summary import check_resume_config, run_identity
    from align_lab.train.checkpoint_io import (
        CheckpointError,
        check_engine_checkpoints,
        checkpoint_file,
        checkpoint_step,
    )
    from align_lab.train.resume import refuse_changed_hyperparameters

    ckpt, changed = run_dir / "checkpoints", {}
    try:
        path = checkpoint_file(ckpt)  # an unreadable one: its one line (CheckpointError)
        if path is not None and path.is_file():
            check_own_file(path, ckpt)
            state = torch.load(path, mmap=True, weights_only=False)
            check_named_step(state, path, ckpt)
            check_engine_checkpoints(state, ckpt)
            refuse_changed_hyperparameters(spec.algo, state, ckpt)
            check_resume_config(run_dir, spec.config, (state.get("identity") or {}).get("config"))
            allow = bool(spec.config.get("resume_changed_code"))
            mine = run_identity(spec)
            check_identity(state.get("identity"), mine, ckpt, allow)
            inputs = (state.get("identity") or {}).get("inputs")
            now = mine["inputs"]
            # what the user's code used (user_reads.py); a file handed to a command may be its output (10th)
            imported = {k: v for k, v in (state.get("imported") or {}).items() if not k.startswith("arg ")}
            if imported:
                inputs, now = {**(inputs or {}), **imported}, {**now, **modules_now(imported)}
            warn_environment(state.get("environment"), imported or {}, ckpt)  # before the refusals (42nd, 36)
            go_on = spec.config.get("resume_changed_inputs")  # and the scorers' answers (user_probes.py)
            replayable(spec.env_name, spec.env)  # a multi-turn environment's episodes are asked again too
            changed = check_inputs(inputs, now, ckpt, go_on, tuple(state.get("stage_keys") or ()))
            changed |= check_probes(state.get("probes"), ckpt, go_on, tuple(changed))  # the scorers (13th)
            warn_beside(state.get("beside"), inputs or {}, ckpt)
            check_steps(spec.train.steps, checkpoint_step(ckpt), ckpt)
            check_stopped(state.get("stopped"), spec.train.stop_at, ckpt)
    except CheckpointError as e:
        raise ConfigError(str(e)) from None
    check_partitions(spec, ckpt)
    metrics = run_dir / "metrics.jsonl"
    if (line := lost_rows(metrics, checkpoint_step(ckpt))) is not None:
        log.warning(f"align_lab: warning: {line}")
    if checkpoint_step(ckpt) > 0 and not (run_dir / SUMMARY).exists():  # deleted since the stop (7th hunt)
        log.warning(
            f"align_lab: warning: {run_dir / SUMMARY} is gone: the wall time of the run's earlier segments "
            "is lost, so its time/total_s counts from this resume"
        )
    return changed


def warn_beside(saved: dict | None, inputs: dict, ckpt: Path) -> None:
    """The files beside the user's code that changed since the checkpoint (user_folders.py), less the
    inputs' check's own (`<file> (and <helper>.py, ...)`): one warning line."""
    from align_lab.user_folders import beside_warning, changed_beside, snapshot

    known = []
    for record in inputs.values():
        first, _, helpers = str(record.get("file", "")).partition(" (and ")
        known += [first, *(str(Path(first).parent / h) for h in helpers.rstrip(")").split(", ") if h)]
    line = beside_warning(changed_beside(saved or {}, snapshot(saved or {}), known), str(ckpt))
    if line:
        log.warning(f"align_lab: warning: {line}")


def warn_environment(saved: dict | None, imported: dict, ckpt: Path) -> None:
    """Where the user's code read every environment variable or started a command (user_reads.py
    whole_environment): the variables set, unset or changed since, by name (never a value), less those
    checked as inputs already. One warning line."""
    from align_lab.user_environ import environment_digests

    if not saved:
        return
    now = environment_digests()
    names = [
        n
        for n in sorted(set(saved) | set(now))
        if saved.get(n, "unset") != now.get(n, "unset") and f"env {n}" not in imported
    ]
    if names:
        shown = ", ".join(f"${n}" for n in names[:8]) + (
            f" and {len(names) - 8} more" if len(names) > 8 else ""
        )
        log.warning(
            f"align_lab: warning: environment variables changed since the checkpoint in {ckpt} was written: "
            f"{shown}; your code read the whole environment or started a command, which may read them "
            "(docs/reproducibility.md)"
        )


def lost_rows(metrics: Path, done: int) -> str | None:
    """What a resume from step `done` says of a metrics.jsonl that lost rows between the stop and the
    resume: deleted (fifth hunt), emptied or cut (sixth) before the checkpoint's step. A damaged line is
    one line (ConfigError)."""
    from align_lab.tracking.jsonl import read_metrics

    if metrics.is_file():
        try:
            rows = read_metrics(metrics)
        except ValueError as e:
            raise ConfigError(f"{e}: a damaged line; delete that line, then rerun to resume") from None
    elif done > 0:
        return (
            f"{metrics} is gone: the rows of steps 1-{done} are lost; the run resumes from step {done} and "
            f"logs from step {done + 1}, so its curves start there"
        )
    else:
        return None
    steps = [r.get("step") for r in rows if isinstance(r, dict)]
    last = max((s for s in steps if isinstance(s, int) and not isinstance(s, bool)), default=0)
    if last >= done:
        return None
    held = f"ends at step {last}" if last else "holds no rows"
    return (
        f"{metrics} {held}: the rows of steps {last + 1}-{done} are lost; the run resumes from step {done} "
        f"and logs from step {done + 1}, so its curves miss those steps"
    )


def check_steps(steps: int, done: int, ckpt: Path) -> None:
    """A resume trains up to train.steps; a checkpoint already past it would 'complete' a run whose
    config says fewer steps than it trained."""
    if done > steps:
        raise ConfigError(
            f"train.steps={steps}: the checkpoint in {ckpt} has trained {done} steps already; resume with "
            f"train.steps >= {done}, or choose another hydra.run.dir"
        )


def check_own_file(path: Path, ckpt: Path) -> None:
    """A run resumes from a checkpoint of its own folder: a state file that is a link to a file elsewhere
    is another run's (eighteenth hunt: a link to another run's checkpoint was "resume with seed=1", then
    "config.resolved.yaml was edited"); the checkpoints folder itself may be a link (moved to a disk)."""
    from align_lab.train.checkpoint_io import CheckpointError

    if path.is_symlink() and path.resolve().parent != ckpt.resolve():
        raise CheckpointError(
            f"checkpoint {path} is a link to {path.resolve()}, outside this run's checkpoints folder: a run "
            f"resumes only from its own; put its own file back, or delete {ckpt} to start the run again "
            "from step 0"
        )


def check_named_step(state: dict, path: Path, ckpt: Path) -> None:
    """The step a checkpoint holds is the one its name says (nineteenth hunt: another file copied in under
    the name of step 2 held step 4, and the run "completed" with steps 3-4 neither trained nor logged)."""
    from align_lab.train.checkpoint_io import CheckpointError, checkpoint_step

    named = checkpoint_step(ckpt)
    if state.get("step") != named:
        raise CheckpointError(
            f"checkpoint {path} holds step {state.get('step')}, not the {named} its name says: not this "
            f"run's file at this step; put it back, or delete {ckpt} to start the run again from step 0"
        )


def recorded_seed(run_dir: Path) -> object:
    """The seed the run folder's config.resolved.yaml records (None: no readable record)."""
    import yaml

    try:
        return (yaml.safe_load((run_dir / RESOLVED_CONFIG).read_text()) or {}).get("seed")
    except (OSError, yaml.YAMLError, AttributeError):
        return None


def check_identity(saved: dict | None, mine: dict, ckpt: Path, changed_code: bool = False) -> None:
    """The run identity inside a checkpoint (its seed and config digest, the keys that may change on a
    resume left out; the training code's digest, unless `changed_code`: resume_changed_code=true)
    against this run's; None: a checkpoint written before identities (not checked), and one written
    before code digests resumes on any code."""
    if not saved:
        return
    if saved.get("seed") != mine["seed"] and recorded_seed(ckpt.parent) == mine["seed"]:
        raise ConfigError(  # eighteenth hunt: "resume with seed=1" in a folder whose record is seed 0's
            f"seed={mine['seed']}: the checkpoint in {ckpt} was trained by a run of "
            f"seed={saved.get('seed')}, but this folder's record ({ckpt.parent / RESOLVED_CONFIG}) is of "
            f"seed={mine['seed']}, as this command: the checkpoint is another run's; put this run's back, "
            f"or delete {ckpt} to start the run again from step 0"
        )
    if saved.get("seed") != mine["seed"]:
        raise ConfigError(
            f"seed={mine['seed']}: the checkpoint in {ckpt} was trained by a run of "
            f"seed={saved.get('seed')}; "
            f"resume with seed={saved.get('seed')}, or choose another hydra.run.dir"
        )
    if saved.get("config") not in (mine["config"], *mine.get("config_before", ())):
        raise ConfigError(
            f"hydra.run.dir={ckpt.parent}: the checkpoint in {ckpt} was trained with another config (digest "
            f"{saved.get('config')}, this run's {mine['config']}); resume with its config, or choose "
            "another hydra.run.dir"
        )
    code = saved.get("code")
    if code is not None and code != mine["code"]:
        if not changed_code:
            raise ConfigError(
                f"resume_changed_code=false: the checkpoint in {ckpt} was trained by other training code "
                f"(digest {code}, this code's {mine['code']}), and a resume would mix two versions of the "
                "code in one run; resume with the code it was trained by, set resume_changed_code=true to "
                "resume anyway (where this code builds its stages alike: checked next), or another run dir"
            )
        log.warning(
            f"align_lab: warning: resuming {ckpt} (training code {code}) with other training code "
            f"({mine['code']}): resume_changed_code=true"
        )
