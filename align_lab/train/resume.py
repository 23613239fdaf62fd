"""What resume needs: a checkpoint of the loop's state, its restore, and the refusal of a changed
hyperparameter (before any compute, and again when the checkpoint is loaded)."""

from __future__ import annotations

import dataclasses
import errno
import logging
from pathlib import Path

from align_lab.aliases import nest
from align_lab.train.checkpoint_io import CheckpointError, checkpoint_step, load_checkpoint, save_checkpoint
from align_lab.train.context import Context
from align_lab.train.rng import own_rng_state, rng_state, set_rng_state
from align_lab.user_environ import whole_environment
from align_lab.user_probes import probes
from align_lab.user_reads import changed_beside_since, changed_while_read, folders_beside, used_by_user_code
from align_lab.value_checks import ConfigError


def hyperparameters(algo) -> dict:
    """The algorithm's dataclass fields: its configuration, which training never changes."""
    return dataclasses.asdict(algo) if dataclasses.is_dataclass(algo) else {}


def _leaves(fields: dict, prefix: str = "") -> dict:
    """{dotted key: value} of an algorithm's fields, a part's node (clip: {low: ...}) by its fields."""
    out = {}
    for key, value in fields.items():
        name = f"{prefix}{key}"
        out.update(_leaves(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return out


def _algorithm_in(algo, state: dict) -> tuple[dict, dict]:
    """(the algorithm's saved state, its saved hyperparameters) in a checkpoint. A checkpoint written
    before algorithms had state_dict() holds vars(algo): its state keys are taken, the rest compared."""
    if "algo_state" in state:
        return state["algo_state"], state["algo_hyperparameters"]
    names = algo.state_dict().keys()
    return {k: v for k, v in state["algo"].items() if k in names}, {
        k: v for k, v in state["algo"].items() if k not in names
    }


def refuse_changed_hyperparameters(algo, state: dict, folder: Path) -> None:
    """One line for a hyperparameter that differs from the checkpoint's: the optimiser, the scheduler and
    the algorithm's state were made with the old value, so a new one would be half-applied."""
    current = _leaves(hyperparameters(algo))
    saved = nest(_algorithm_in(algo, state)[1])[0]  # a checkpoint of before a rename: its old flat keys
    for key, old in _leaves(saved).items():
        if key in current and current[key] != old:
            raise ConfigError(
                f"algo.{key}={current[key]}: the checkpoint in {folder} was trained with algo.{key}={old}; "
                f"{_back_to(old, current[key])}, or delete {folder} to start again"
            )


def _back_to(old, new) -> str:
    """How to resume with the checkpoint's value: a folder it named that is no longer there (a teacher
    moved: fifteenth hunt, whose only way out was to delete the student's checkpoints) linked back."""
    gone = isinstance(old, str) and old.startswith("/") and not Path(old).exists()
    if gone and isinstance(new, str) and Path(new).exists():
        return f"{old} is no longer there: to resume, move it back or link it there (ln -s {new} {old})"
    return "resume with that value"


def restore_algorithm(algo, state: dict, folder: Path) -> None:
    """Loads the algorithm's state (algo.load_state_dict) from a checkpoint, after refusing any
    changed hyperparameter."""
    refuse_changed_hyperparameters(algo, state, folder)
    algo.load_state_dict(_algorithm_in(algo, state)[0])


def restore(ctx: Context, named: dict, algo) -> int:
    """Loads the last checkpoint into models/optimisers/algorithm/RNG; returns the step to start at."""
    state = load_checkpoint(ctx.checkpoint_dir)
    if state is None:
        return 0
    restore_algorithm(algo, state, ctx.checkpoint_dir)
    for name, obj in named.items():
        obj.load_state_dict(state["objects"][name])
    set_rng_state(own_rng_state(state, ctx.group.rank, ctx.group.size))  # each rank its own generators
    # stopped at train.stop_at: the loop trains no further
    ctx.ledger.stopped.update(state.get("stopped") or {})
    return state["step"]


def last_checked(folder: Path) -> int:
    """The step of the last checkpoint (0: none), where the files the user's code opened were last found
    as first read: an edit said at the next one may have reached every step since (thirty-fourth hunt,
    case 56: "from here (step 6)", where step 5 had trained on it); 0 where its pointer cannot be read."""
    try:
        return checkpoint_step(folder)
    except (CheckpointError, OSError):
        return 0


def checkpoint(ctx: Context, named: dict, algo, step: int) -> None:
    """Saves everything resume needs: weights, optimisers, schedulers, data position, RNG, the
    algorithm's state (algo.state_dict()) and its hyperparameters (to refuse a changed one on resume),
    and, at a train.stop_at stop, its record (a resume of it is complete).
    The main process writes the file; a DeepSpeed engine's state_dict() saves its partitions on
    every process that calls it (Backend.every_rank_saves). A run folder removed under the run is an
    error here, not made again by the save (eighteenth hunt: the run "completed" into a folder of its
    last checkpoint alone)."""
    if ctx.group.is_main and not ctx.checkpoint_dir.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "the run folder is gone", str(ctx.checkpoint_dir.parent))
    objects = {name: obj.state_dict() for name, obj in named.items()}
    used = used_by_user_code() if ctx.group.is_main else {}
    beside = folders_beside(used) if ctx.group.is_main else {}
    # said at the checkpoint after the edit (thirtieth hunt, case 7), a file read in C too (thirty-seventh,
    # case 29), from the step after the last checkpoint, where it was last found unchanged
    changed, found = changed_while_read(used), changed_beside_since(used, beside)
    since = last_checked(ctx.checkpoint_dir) + 1 if changed or found else 0
    at = f"found at step {step}'s end"
    for line in changed:
        logging.getLogger("align_lab").warning(
            f"align_lab: warning: {line}: its steps from {since} on may train on the new version ({at})"
        )
    if found:
        logging.getLogger("align_lab").warning(
            "align_lab: warning: files beside your code changed while the run went on: "
            f"{', '.join(found[:5])}; align_lab cannot tell whether your code reads them (a compiled "
            f"reader, a command it runs): if it does, its steps from {since} on may train on other inputs "
            f"({at})"
        )
    if ctx.group.is_main:
        save_checkpoint(
            ctx.checkpoint_dir,
            {
                "step": step,
                "objects": objects,
                "algo_state": algo.state_dict(),
                "algo_hyperparameters": hyperparameters(algo),
                "stage_keys": ctx.stage_keys,
                "identity": ctx.identity,
                "imported": used,  # the modules, files and variables the user's code used (user_reads.py)
                "beside": beside,  # the files beside them (user_folders.py): a resume's warning
                "environment": whole_environment() if ctx.group.is_main else None,  # when it read them all
                "probes": probes(),  # the user's scorers' last rows and scores, asked again on resume
                "rng": rng_state(),
                # every rank's, from the step's end (train/cadence.py); rank 0's is its own as now
                "rng_ranks": [rng_state(), *ctx.ledger.rng_ranks[1:]] if ctx.ledger.rng_ranks else None,
                "stopped": dict(ctx.ledger.stopped),  # {} or why the run stopped here (train/stop_at.py)
            },
        )
