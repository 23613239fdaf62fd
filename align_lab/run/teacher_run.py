"""A teacher given as a run folder (algo.teacher=<run>): a finished run, with its final checkpoint and
the config it trained with, of this run's model and task, never this run's own folder; each fault named
in one line that names the folder and never advises deleting its checkpoints (run/teacher.py builds the
teacher stage from it)."""

from __future__ import annotations

from pathlib import Path

from align_lab.config import ConfigError
from align_lab.file_kinds import special
from align_lab.folder import holder

KEY = "algo.teacher"


def run_checkpoints(path: str) -> Path | None:
    """The checkpoints folder of a run folder `path` (it holds checkpoints/last), else None."""
    folder = Path(path).expanduser() / "checkpoints"
    return folder if (folder / "last").is_file() else None


def is_run_folder(folder: Path) -> bool:
    """A folder a run of align_lab's wrote (its summary.json, resolved config or checkpoints/)."""
    from align_lab.folder import SUMMARY
    from align_lab.run.run_folder import RESOLVED_CONFIG

    return any((folder / name).exists() for name in (SUMMARY, RESOLVED_CONFIG, "checkpoints"))


def is_run_checkpoints(folder: Path) -> bool:
    """`folder` is the checkpoints/ of a run folder (it holds a pointer `last`, or sits in a folder with a
    run's summary.json or resolved config)."""
    from align_lab.folder import SUMMARY
    from align_lab.run.run_folder import RESOLVED_CONFIG

    beside = any((folder.parent / name).is_file() for name in (SUMMARY, RESOLVED_CONFIG))
    return folder.name == "checkpoints" and (beside or (folder / "last").is_file())


def check_not_its_own(spec, run_dir: Path) -> None:
    """At admission: a distillation's teacher is not the run's own folder (hydra.run.dir), which holds no
    finished run while the run trains in it."""
    from align_lab.algorithms.signals import TeacherLogprobs, reads

    path = spec.algo.teaching.teacher if reads(spec.algo, TeacherLogprobs) is not None else None
    if path is not None and Path(path).expanduser().resolve() == Path(run_dir).resolve():
        raise ConfigError(
            f"{KEY}={path}: that is this run's own folder (hydra.run.dir); a run cannot be its own teacher: "
            "name another, completed run"
        )


RETRAIN = "retrain the teacher in another folder, or choose another teacher"


def summary_damage(path: Path) -> str | None:
    """Why a summary.json that is there cannot be read as a run's (torn, not JSON, fields of other types),
    or None (a sound one, or none at all)."""
    from align_lab.folder import read_summary

    if path.is_dir():  # eighth hunt: read as "it has no summary.json", a hint that could not work
        return "a folder, not a file"
    if not path.is_file():
        return None
    try:
        read_summary(path)
    except (OSError, ValueError) as e:
        return str(e).splitlines()[0][:80] if str(e) else type(e).__name__
    return None


def finished_teacher(path: str) -> Path:
    """The final checkpoint of a teacher given as a run folder, or one line naming the folder and what is
    wrong with it: a run not completed (one still training would teach with whichever checkpoint it had
    reached, and the same command later with another), no checkpoint, one missing or damaged. Never the
    hint to delete its checkpoints: they are the teacher."""
    from align_lab.run.run_folder import RunFolder

    folder = Path(path).expanduser()
    summary = RunFolder(folder).read_summary()
    status = summary.get("status")
    damage = summary_damage(folder / "summary.json")
    if damage is not None:  # present but unreadable: its own command refuses the folder as not a run's
        raise ConfigError(
            f"{KEY}={path}: its summary.json is damaged ({damage}), so whether the run completed is unknown; "
            f"a teacher is a finished run: {RETRAIN}"
        )
    if status != "completed" and (who := holder(folder)):  # live: its command is refused (34th, 23)
        raise ConfigError(
            f"{KEY}={path}: that run is running now ({who}); a teacher is a finished run: wait for it to "
            "complete, then rerun this command, or choose a completed run"
        )
    if status != "completed":
        found = f"its summary.json says {status}" if status else "it has no summary.json"
        finish = "with its own command"
        if status:  # a sweep's run: its sweep's command (twenty-first hunt, case 23: no command said)
            from align_lab.rerun import resume_command

            # a run your code stopped says to resume it with the inputs you fixed: its finish does too
            # (fifty-first hunt, case 42: the command given was refused for the fixed reward)
            fixed = " resume_changed_inputs=true" in str(summary.get("error", ""))
            finish = f"({resume_command(folder)}{' resume_changed_inputs=true' if fixed else ''})"
        raise ConfigError(
            f"{KEY}={path}: that run has not completed ({found}); a teacher is a finished run: finish it "
            f"{finish}, or choose a completed run"
        )
    return final_checkpoint(path, folder, summary)


def final_checkpoint(path: str, folder: Path, summary: dict) -> Path:
    """The completed teacher run's final checkpoint, or one line: its pointer lost, the file lost, none."""
    from align_lab.train.checkpoint_io import CheckpointError, checkpoint_file

    ckpt = folder / "checkpoints"
    unnamed = final_state_unnamed(folder, ckpt)
    if unnamed is not None:  # twentieth hunt, case 16: "retrain the teacher" for a 17-byte pointer
        final, what = unnamed
        raise ConfigError(
            f"{KEY}={path}: {ckpt / 'last'} {what}, but {final.name}, the checkpoint of its final step, is "
            f"there: point at it (echo {final.name} > {ckpt / 'last'}), then rerun"
        )
    try:
        file = checkpoint_file(ckpt, advice=f"the teacher's policy is lost with it: {RETRAIN}")
    except CheckpointError as e:
        raise ConfigError(f"{KEY}={path}: its final {e}") from None
    # its resolved config's train.steps unreadable: "no checkpoint" beside the files (fifth hunt, 2026-12-04)
    if states := sorted(p.name for p in ckpt.glob("state-*.pt")) if file is None and ckpt.is_dir() else []:
        mend = f"{', '.join(states)}: point at the final step's (echo {states[-1]} > {ckpt / 'last'})"
        raise ConfigError(f"{KEY}={path}: {ckpt / 'last'} is missing, but {ckpt} holds {mend}, then rerun")
    if file is None:
        deleted = "deleted" in str(summary.get("checkpoint", ""))
        why = ": it completed with train.keep_checkpoint=false, which deletes it" if deleted else ""
        raise ConfigError(
            f"{KEY}={path}: that run folder has no checkpoint ({ckpt / 'last'} is missing{why}); a "
            f"teacher's policy is its final checkpoint: {RETRAIN} (train.keep_checkpoint=true keeps it)"
        )
    check_final_step(path, summary, ckpt)
    return file


def check_final_step(path: str, summary: dict, ckpt: Path) -> None:
    """The checkpoint `last` names is the completed run's final step (train.stop_at's where it stopped
    there): an earlier one (a checkpoint restored from a backup, `last` edited) taught as the teacher with
    no line (thirty-third hunt, case 26)."""
    from align_lab.train.checkpoint_io import checkpoint_step

    ends, stopped = summary.get("train_ends") or {}, summary.get("stopped") or {}
    final = stopped.get("step", ends.get("steps")) if isinstance(stopped, dict) else ends.get("steps")
    step = checkpoint_step(ckpt)
    if isinstance(final, int) and step != final:
        there = ckpt / f"state-{final:08d}.pt"
        fix = f"point at it (echo {there.name} > {ckpt / 'last'})" if there.is_file() else RETRAIN
        raise ConfigError(
            f"{KEY}={path}: {ckpt / 'last'} names the checkpoint of step {step}, but the run completed "
            f"{final} steps: a teacher's policy is its final checkpoint; {fix}, then rerun"
        )
    check_saved_step(path, ckpt, step)


def check_saved_step(path: str, ckpt: Path, named: int) -> None:
    """The final checkpoint holds the step its name says: an earlier step's file restored over it (a
    backup) was taught as the teacher with no line (thirty-fourth hunt, case 17; only its name was read).
    Its tensors mapped, not read (torch.load's mmap): its step alone is looked at."""
    import torch

    from align_lab.train.checkpoint_io import checkpoint_file

    file = checkpoint_file(ckpt)
    try:
        held = torch.load(file, mmap=True, weights_only=False, map_location="cpu").get("step")
    except Exception:  # noqa: BLE001 - a damaged file: the teacher's load says it in its own line
        return
    if isinstance(held, int) and held != named:
        raise ConfigError(
            f"{KEY}={path}: {file} holds the checkpoint of step {held}, not of step {named} its name says (a "
            f"file restored over it?): a teacher's policy is its final checkpoint; {RETRAIN}"
        )


def check_same_run(path: str, file: Path, config: dict) -> None:
    """The run identity inside the final checkpoint is the run its folder records (`config`, its resolved
    config: seed and digest, in any form older code digested it; fifty-first hunt, case 24: another run's
    checkpoint of the same step taught as the teacher, in silence)."""
    import torch

    from align_lab.run.resumable import (
        DIGESTED_BEFORE,
        KEPT_BEFORE,
        KEPT_ON_RESUME,
        config_digest,
        resumable_part,
    )
    from align_lab.run.run_folder import RESOLVED_CONFIG

    try:
        identity = torch.load(file, mmap=True, weights_only=False, map_location="cpu").get("identity")
    except Exception:  # noqa: BLE001 - a damaged file: the teacher's load says it in its own line
        return
    if not isinstance(identity, dict):  # written before identities: not judged
        return
    digests = {
        config_digest(resumable_part(config, digested=d, kept=kept))
        for d in ((), *DIGESTED_BEFORE)
        for kept in (KEPT_BEFORE, KEPT_ON_RESUME)
    }
    if identity.get("seed") != config.get("seed") or identity.get("config") not in digests:
        raise ConfigError(
            f"{KEY}={path}: {file} was trained by another run (seed {identity.get('seed')}, config digest "
            f"{identity.get('config')}) than the one this folder records "
            f"({file.parent.parent / RESOLVED_CONFIG}): a teacher's policy is its own run's final "
            f"checkpoint; put that run's back, or {RETRAIN}"
        )


def final_state_unnamed(folder: Path, ckpt: Path) -> tuple[Path, str] | None:
    """The checkpoint of a completed run's final step (its resolved config's train.steps) and what is
    wrong with its pointer, where `checkpoints/last` is gone, empty, not text (thirty-ninth hunt, case 16:
    "retrain the teacher" where one echo mended it) or names a file that is gone; else None."""
    import yaml

    from align_lab.run.run_folder import RESOLVED_CONFIG

    pointer, what = ckpt / "last", None
    try:
        named = pointer.read_text().strip() if pointer.exists() else ""
    except UnicodeDecodeError:
        named, what = "", "holds bytes that are not text"
    except OSError:  # a folder, unreadable: checkpoint_file names it
        return None
    if named and (ckpt / named).exists():
        return None
    try:
        steps = int(yaml.safe_load((folder / RESOLVED_CONFIG).read_text())["train"]["steps"])
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError, yaml.YAMLError):
        return None
    final = ckpt / f"state-{steps:08d}.pt"
    what = what or (
        f"names {named}, which is gone" if named else "is empty" if pointer.exists() else "is missing"
    )
    return (final, what) if final.is_file() else None


def check_teacher_run(spec, path: str, folder: Path) -> None:
    """A teacher that is a run folder: finished, and of this run's model and task (the same tokens)."""
    import yaml

    from align_lab.run.run_folder import RESOLVED_CONFIG

    for file in (folder / "summary.json", folder / RESOLVED_CONFIG, folder / "checkpoints" / "last"):
        if kind := special(file):  # a read of a named pipe waits for ever (hunt of 2026-12-04, c72)
            raise ConfigError(f"{KEY}={path}: {file} is {kind}, where a run writes a file; name a run folder")
    file = finished_teacher(path)
    saved = folder / RESOLVED_CONFIG  # what that run trained with (model presets applied)
    try:
        theirs = yaml.safe_load(saved.read_text())
        problem = None if isinstance(theirs, dict) else f"holds {type(theirs).__name__}, not a config"
    except FileNotFoundError:
        problem = "is gone"
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:  # a folder, unreadable, torn (eleventh hunt)
        first = (str(e).splitlines() or [""])[0]
        problem = (
            f"is damaged ({type(e).__name__}: {first})" if not saved.is_dir() else "is a folder, not a file"
        )
    lacking = [g for g in ("model", "task") if not problem and g not in theirs]  # twelfth hunt
    problem = problem or (f"is damaged (it records no {' or '.join(lacking)})" if lacking else None)
    if problem:
        raise ConfigError(
            f"{KEY}={path}: that run's {RESOLVED_CONFIG} {problem}, so whether it trained this run's model "
            "and task is unknown; put it back, or distil from a model folder saved by save_pretrained"
        )
    for group in ("model", "task"):
        if group in theirs and kept(theirs[group]) != kept(spec.config.get(group)):
            said = first_difference(group, kept(theirs[group]), kept(spec.config.get(group)))
            raise ConfigError(
                f"{KEY}={path}: that run's {said}: a teacher run's checkpoint is read into this run's "
                f"{'model (its size too)' if group == 'model' else 'task (its tokens)'}; distil from a run "
                f"of the same {group}, or from a model folder saved by save_pretrained"
            )
    check_same_run(path, file, theirs)


# a model's keys that say how a run uses the machine, not which weights it holds: a student that set
# model.max_threads=2 was refused its teacher as "a run of another model" (thirty-first hunt, case 50)
RESOURCES = ("max_threads", "cache_dir", "mem_gb_per_model")


def kept(group):
    """A config group's settings less RESOURCES (a group that is not a mapping as it is)."""
    return {k: v for k, v in group.items() if k not in RESOURCES} if isinstance(group, dict) else group


def first_difference(group: str, theirs, ours) -> str:
    """`model.num_layers is 3, this run's 2`: the first key of `group` the two configs differ in."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        for key in sorted(set(theirs) | set(ours)):
            if theirs.get(key) != ours.get(key):
                return f"{group}.{key} is {theirs.get(key)!r}, this run's {ours.get(key)!r}"
    return f"{group} is not this run's"


def teacher_below_sft(spec) -> str | None:
    """`algo.teacher=<run> itself ended at gold g against its SFT's s` where a distilled teacher run's own
    summary says it fell below its SFT (fifty-second hunt, case 40: a student of a collapsed teacher was
    told to lower algo.lr); else None."""
    import json

    path = getattr(getattr(spec.algo, "teaching", None), "teacher", None)
    try:
        summary = json.loads((Path(str(path)).expanduser() / "summary.json").read_text()) if path else {}
    except (OSError, ValueError):
        return None
    gold, sft = (
        summary.get(k) if isinstance(summary, dict) else None
        for k in ("eval/gold_reward", "eval/gold_reward_sft")
    )
    if not all(isinstance(v, int | float) for v in (gold, sft)) or gold >= sft:
        return None
    return f"{KEY}={path} itself ended at gold {gold:.3f} against its SFT's {sft:.3f}"
