"""A run folder as a run starts (its first summary.json and resolved config), and as a resume refused
before anything was built leaves it (study/run.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from align_lab.study.spec import Job, RunSpec
from align_lab.study.summary import (
    RESOLVED_CONFIG,
    SEGMENTS,
    config_digest,
    previous_segments,
    stopped,
    write_atomic,
    write_resolved_config,
    write_summary,
)
from align_lab.train.checkpoint_io import checkpoint_step

log = logging.getLogger("align_lab")


def first_summary(spec: RunSpec, digest: str, before: list[float], stage_threads: int) -> dict:
    """summary.json as a run starts: what runs, the threads it has (and its stages were built with), the
    keys its model preset chose."""
    summary = {"status": "running", "algo": spec.names.get("algo"), "seed": spec.seed}
    # the default is the cores given: part of the numbers
    summary |= {"threads": torch.get_num_threads(), "stage_threads": stage_threads}
    if spec.defaults_from:  # values the model preset chose (the user did not set these keys)
        summary |= {"defaults_from": spec.defaults_from}
        chosen = ", ".join(f"{k}={spec.config['algo'][k.split('.', 1)[1]]}" for k in spec.defaults_from)
        log.info(f"{chosen} from {next(iter(spec.defaults_from.values()))} (set the key to override)")
    return summary | {"names": spec.names, "config_digest": digest, "started": time.time(), SEGMENTS: before}


def start_folder(spec: RunSpec, run_dir: Path, summary: dict) -> None:
    """The run folder with its first summary.json and resolved config; a full disk is one line."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_summary(run_dir, summary)
        write_resolved_config(run_dir, spec.config)
    except OSError as e:
        raise stopped(e, run_dir / "checkpoints") or e from None


def begin(job: Job, ckpt: Path) -> tuple[dict, list[float], int | None]:
    """(the first summary.json, written with the resolved config; the wall seconds of the earlier
    segments, which count in time/total_s; the threads the stages load with). A run started again from
    step 0 (its checkpoints deleted) counts no abandoned segment, and builds its stages afresh."""
    resumed = checkpoint_step(ckpt) > 0
    before = previous_segments(job.run_dir) if resumed else []
    stage_threads = job.stage_threads if resumed else None
    digest = config_digest(job.spec.config)
    summary = first_summary(job.spec, digest, before, stage_threads or torch.get_num_threads())
    start_folder(job.spec, job.run_dir, summary)
    return summary, before, stage_threads


KEPT = ("summary.json", RESOLVED_CONFIG)  # what begin() rewrites


def kept_files(run_dir: Path) -> dict[str, bytes | None]:
    """The files begin() rewrites, as they are before it (None: absent)."""
    return {n: (run_dir / n).read_bytes() if (run_dir / n).is_file() else None for n in KEPT}


def restore_files(run_dir: Path, kept: dict[str, bytes | None]) -> None:
    """The files of kept_files() back as they were: a refused resume leaves its folder as it found it."""
    for name, data in kept.items():
        if data is None:
            (run_dir / name).unlink(missing_ok=True)
        else:
            write_atomic(run_dir / name, data)


def leave(run_dir: Path, summary: dict | None, kept: dict[str, bytes | None], segments: list[float]) -> None:
    """summary.json as a run ends, with the wall seconds of each of its segments; a resume refused
    before anything was built (summary None): the files of kept_files() as they were, no time counted."""
    if summary is None:
        restore_files(run_dir, kept)
    else:
        summary[SEGMENTS] = segments  # in the summary run() returns too
        write_summary(run_dir, summary)
