"""A resume's check of the shared stages: a checkpoint resumes only on the stage entries it was trained
on, refused in one line naming the stage and the first input that changed (run/build.py calls it
before any stage is looked up)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from align_lab.run.resumable import changed_key
from align_lab.train.checkpoint_io import CheckpointError, checkpoint_file


class StagesChanged(CheckpointError):
    """A resume refused before any stage was built: the run folder is left as it was (run/execute.py)."""


def resume_stage_check(ckpt: Path, cache_dir: Path):
    """The check the stage build (run/stages.py StageBuild.check) runs on each stage's key before it
    looks it up or builds it: a checkpoint resumes only on the shared stages it was trained on (the same
    config can give other stages where their inputs' numerics changed: code, library versions, CPU
    capability, math libraries; and a reference or reward model swapped mid-run mixes two runs). Refused
    in one line naming the stage and the first input that changed, before anything is built."""
    path = checkpoint_file(ckpt)
    saved = {}
    if path is not None and path.is_file():
        saved = torch.load(path, mmap=True, weights_only=False).get("stage_keys") or {}

    def check(record: str, stage: str, key: str, inputs: dict) -> None:
        old = saved.get(record)
        if old is None or old == key:
            return
        raise StagesChanged(
            f"stage {record}: the checkpoint in {ckpt} was trained on entry {old}, this run's is {key} "
            f"({what_changed(cache_dir, stage, old, inputs)}); resume where and as it started, or choose "
            "another hydra.run.dir"
        )

    return check


def entry_folder(cache_dir: Path, stage: str, key: str) -> Path:
    """A stage entry's folder: <cache_dir>/<stage>/<key>, or where a result recorded under another name
    lives (KTO's unpaired_samples are entries of preferences/); a key names one entry of one stage."""
    path = Path(cache_dir) / stage / key
    return path if path.is_dir() else next(Path(cache_dir).glob(f"*/{key}"), path)


def what_changed(cache_dir: Path, stage: str, old: str, inputs: dict) -> str:
    """Between the checkpoint's entry of a stage (its inputs.json) and this run's inputs (not built yet):
    the first input that differs; the file that is gone where it is; the code version where they agree."""
    saved = entry_folder(cache_dir, stage, old) / "inputs.json"
    if not saved.is_file():
        return f"{saved} is gone, so the input that changed cannot be named"
    now = json.loads(json.dumps(inputs, sort_keys=True, default=str))  # as the cache writes inputs.json
    found = changed_key(json.loads(saved.read_text()), now)
    if found is None:
        return f"the same inputs as {saved}: the stage's code version changed"
    return f"its input {found[0]} was {found[1]}, now {found[2]}; the checkpoint's: {saved}"
