"""A completed run asked again: the same run reported as it is (only what a resume may change changed),
or one line for where it ended asked otherwise (a completed run is never extended or cut)."""

from __future__ import annotations

from pathlib import Path

from align_lab.config import ConfigError
from align_lab.run.resumable import KEPT_BEFORE, KEPT_ON_RESUME, config_digest, resumable_part

ENDS = ("steps", "stop_at")  # the train keys that say where a run ends: a completed run has ended
SAME_RUN = "same_run"  # summary.json: same_run_digest of its config, for a folder that lost its config file
TRAIN_ENDS = "train_ends"  # summary.json: the config's ENDS keys, for the same


def train_ends(config: dict) -> dict:
    """What summary.json records of where a run ends (TRAIN_ENDS): its train.steps and train.stop_at."""
    return {k: v for k, v in (config.get("train") or {}).items() if k in ENDS}


def _ends(train: dict) -> dict:
    """A config's train.steps and train.stop_at (absent, as before stop_at existed, or null: off)."""
    stop = train.get("stop_at") or {}
    return {"steps": train.get("steps"), "stop_at": {k: stop.get(k) for k in ("metric", "value")}}


def check_completed_steps(config: dict, run_dir: Path, previous: dict) -> None:
    """A completed run asked again with other train.steps or train.stop_at and nothing else changed: one
    line saying what was completed and what was asked (a completed run is reported, never extended or cut;
    one that stopped at train.stop_at has ended, whatever threshold a rerun names)."""
    import yaml

    from align_lab.run.run_folder import RESOLVED_CONFIG
    from align_lab.train.stop_at import describe

    if previous.get("status") != "completed":
        return
    try:
        done = (yaml.safe_load((run_dir / RESOLVED_CONFIG).read_text()) or {}).get("train", {})
    except (OSError, yaml.YAMLError, AttributeError):  # lost or damaged: what summary.json recorded of it
        done = previous.get(TRAIN_ENDS)  # (seventeenth hunt: "another config", whose way out extended it)
    if not isinstance(done, dict):
        return  # check_same_config's line still refuses another config
    train = {k: v for k, v in config["train"].items() if k not in ENDS or k in done}
    same_but_ends = {**config, "train": train | {k: done[k] for k in ENDS if k in done}}
    same = same_run_digest(same_but_ends) == previous.get(SAME_RUN)  # a tracker changed too (40th hunt, 59)
    if not same and config_digest(same_but_ends) != previous.get("config_digest"):
        return
    was, asked = _ends(done), _ends(config["train"])
    how = (
        f", {describe(previous['stopped'])}" if previous.get("stopped") else f" at train.steps={was['steps']}"
    )
    if was["steps"] != asked["steps"]:
        n = asked["steps"]
        raise ConfigError(
            f"train.steps={n}: hydra.run.dir={run_dir} holds this run completed{how} "
            "(a completed run is not extended or cut); choose another hydra.run.dir to train it for "
            f"{n} step{'' if n == 1 else 's'}"
        )
    key = next((k for k in ("metric", "value") if was["stop_at"][k] != asked["stop_at"][k]), None)
    if key is not None:
        raise ConfigError(
            f"train.stop_at.{key}={asked['stop_at'][key]}: hydra.run.dir={run_dir} holds this run "
            f"completed{how}, with train.stop_at.{key}={was['stop_at'][key]} (a completed run is not "
            "extended or cut); choose another hydra.run.dir to train it with this threshold"
        )


def completed_as_asked(config: dict, run_dir: Path, previous: dict) -> bool:
    """A completed run asked again with only what a resume may change changed (hardware.num_threads, the
    tracker; not where it ends): the same run, reported as it is (fifteenth hunt: "holds a completed run
    of another config", and its way out, deleting summary.json, trained it again)."""
    import yaml

    from align_lab.run.run_folder import RESOLVED_CONFIG

    if previous.get("status") != "completed":
        return False
    try:
        done = yaml.safe_load((run_dir / RESOLVED_CONFIG).read_text()) or {}
        same = same_run_digest(done) == same_run_digest(config)
    except (OSError, yaml.YAMLError, AttributeError):  # lost or damaged: what summary.json recorded of it
        # (sixteenth hunt, case 51); as summary.json recorded it before KEPT_ON_RESUME, too
        return previous.get(SAME_RUN) in (same_run_digest(config), same_run_digest(config, KEPT_BEFORE))
    return same and config_digest(done) == previous.get("config_digest")


def same_run_digest(config: dict, kept: tuple[str, ...] = KEPT_ON_RESUME) -> str:
    """The digest of what a completed run asked again must keep: its config less what a resume may change,
    with where it ends and a judge's address (a completed run asked with another judge is another run:
    sixteenth hunt). summary.json records it (SAME_RUN), so a run that lost config.resolved.yaml is told."""
    ends = _ends(config.get("train") or {})
    return config_digest({"config": resumable_part(config, digested=(".url",), kept=kept), "ends": ends})


def first_difference(config: dict, run_dir: Path) -> tuple[str, str, str] | None:
    """(key, its value in the completed run's config.resolved.yaml, its value here): the first key a
    completed run asked again differs in, of those it must keep (a judge's address included); None
    where the file cannot be read (hunt of 2026-12-04, r5c: a respelled reward.url said "another config"
    and named no key)."""
    import yaml

    from align_lab.aliases import nest_config
    from align_lab.run.resumable import changed_key, without_default_env
    from align_lab.run.run_folder import RESOLVED_CONFIG
    from align_lab.value_checks import written

    try:
        done = yaml.safe_load((run_dir / RESOLVED_CONFIG).read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(done, dict):
        return None
    done = nest_config(done)[0]  # a run recorded before a rename: its old flat keys (aliases.py)
    kept = [resumable_part(without_default_env(c), digested=(".url",)) for c in (done, config)]
    found = changed_key(*kept, skip=lambda key: False)
    return None if found is None else (found[0], written(found[1]), written(found[2]))


def another_config(config: dict, run_dir: Path, previous: dict) -> ConfigError:
    """The line refusing a completed run of another config in run_dir (its results, and its .hydra/
    config, which compare reads, are never overwritten): the first key that differs, and the way to its
    results; where its config.resolved.yaml is lost, how to run there again."""
    from align_lab.run.run_folder import RESOLVED_CONFIG

    said = f"hydra.run.dir={run_dir}: holds a completed run of another config"
    if (found := first_difference(config, run_dir)) is not None:  # its results stay: no deletion offered
        key, there, here = found
        return ConfigError(
            f"{said} ({key}={there} there, {here} here); choose another folder, or ask it with {key}={there} "
            "to see its results"
        )
    lost = not (run_dir / RESOLVED_CONFIG).is_file() and SAME_RUN not in previous
    return ConfigError(
        said
        + f" (its {RESOLVED_CONFIG} is missing, so which keys differ cannot be told)" * lost
        + f"; choose another folder (or delete {run_dir / 'summary.json'} and {run_dir / 'checkpoints'} "
        "to run there again)"
    )
