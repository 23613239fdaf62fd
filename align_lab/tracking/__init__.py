"""One Tracker interface: metrics.jsonl always, W&B when asked. wandb is imported on use."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from align_lab.tracking.jsonl import METRICS_FILE, JsonlTracker, read_metrics
from align_lab.tracking.wandb_tracker import RUN_ID_FILE, WandbTracker

log = logging.getLogger("align_lab")

__all__ = [
    "KINDS",
    "JsonlTracker",
    "MultiTracker",
    "Tracker",
    "TrackerConfig",
    "WandbTracker",
    "make_tracker",
    "read_metrics",
]

KINDS = ("wandb", "none")


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def samples(self, records: list[dict], step: int) -> None:
        """An evaluation's per-sample records (eval_samples.jsonl's schema, without `step`)."""
        ...

    def summary(self, values: dict) -> None: ...

    def close(self) -> None: ...


class MultiTracker:
    """Fans every call out to each tracker, in order."""

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = tuple(trackers)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for tracker in self.trackers:
            tracker.log(metrics, step)

    def samples(self, records: list[dict], step: int) -> None:
        for tracker in self.trackers:
            tracker.samples(records, step)

    def summary(self, values: dict) -> None:
        for tracker in self.trackers:
            tracker.summary(values)

    def close(self) -> None:
        """Closes every tracker, even if one fails; then raises the first failure."""
        error: BaseException | None = None
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception as e:  # re-raised below
                error = error or e
        if error is not None:
            raise error


def make_tracker(
    kind: str,
    run_dir: str | os.PathLike[str],
    *,
    project: str,
    group: str | None,
    job_type: str | None,
    tags: Sequence[str],
    config: Mapping[str, Any],
    start_step: int = 0,
    mode: str = "auto",
    name: str | None = None,
) -> Tracker:
    """metrics.jsonl ("none"), or metrics.jsonl and W&B ("wandb")."""
    if kind not in KINDS:
        raise ValueError(f"tracker kind {kind!r}: allowed values are {', '.join(KINDS)}")
    jsonl = JsonlTracker(run_dir, start_step=start_step)
    if kind == "none":
        return jsonl
    new = not (Path(run_dir) / RUN_ID_FILE).is_file()  # a first W&B run, maybe of a resumed run
    try:
        wandb = WandbTracker(run_dir, project, group, job_type, tags, config, mode, name)
    except BaseException:
        jsonl.close()
        raise
    if new and start_step > 1:
        replay(wandb, run_dir, start_step)
    return MultiTracker([jsonl, wandb])


def replay(tracker, run_dir: str | os.PathLike[str], start_step: int) -> None:
    """A resumed run's first W&B run (tracker=wandb after a segment without it): the steps before the
    checkpoint logged to it from metrics.jsonl, so that it holds the whole run, as `compare --wandb`
    reads it (eighteenth hunt: it held the resumed steps alone, without a word)."""
    try:
        rows = [r for r in read_metrics(Path(run_dir) / METRICS_FILE) if r["step"] < start_step]
    except (OSError, ValueError):  # none, or damaged: the resume's own checks say so
        return
    for row in rows:
        tracker.log({k: v for k, v in row.items() if k != "step"}, row["step"])
    if rows:
        log.info(
            f"tracker: the run's steps {rows[0]['step']}-{rows[-1]['step']}, tracked before without W&B, "
            "logged to its W&B run from metrics.jsonl"
        )


@dataclass
class TrackerConfig:
    """`tracker` (conf/tracker/*.yaml): where a run's metrics go, and under which W&B project and group."""

    kind: str = "none"  # wandb | none
    project: str = "align_lab"  # W&B project
    mode: str = "auto"  # auto | offline | online | disabled (WANDB_MODE wins over auto)
    group: str | None = None  # W&B group: the study's name

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind}: must be one of {', '.join(KINDS)}")

    def make(self, run_dir, names: Mapping[str, str], config: Mapping[str, Any], start_step: int) -> Tracker:
        """The run's tracker; `names` are its config choices (W&B job type and tags)."""
        tags = [names.get(k, "") for k in ("task", "model", "reward")]
        job_type = names.get("algo", "run")
        return make_tracker(
            self.kind,
            run_dir,
            project=self.project,
            group=self.group,
            job_type=job_type,
            tags=tags,
            config={**config, "choices": dict(names)},  # the config files chosen: a W&B report groups by them
            start_step=start_step,
            mode=self.mode,
        )
