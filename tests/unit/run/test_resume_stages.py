"""A resume on other shared stages names the stage, the input that changed and the entry's file
(run/resume_stages.py resume_stage_check, called by the stage build before it looks a stage up), also for
a result recorded under another name than its stage's folder: KTO's unpaired samples (record
unpaired_samples) are entries of preferences/ (run/pairs.py)."""

from __future__ import annotations

import shutil

import pytest

from align_lab.cache import StageCache
from align_lab.run.resume_stages import resume_stage_check
from align_lab.train.checkpoint_io import CheckpointError, save_checkpoint

OLD_INPUTS, NEW_INPUTS = ({"sft": "abc", "unpaired": {"desirable_threshold": t}} for t in (0.5, 0.7))


def two_entries(cache_dir):
    """Two preferences/ entries of KTO's samples, built by the stage cache: thresholds 0.5 and 0.7."""
    cache = StageCache(cache_dir)

    def build(out):
        (out / "samples.jsonl").write_text("{}\n")

    old, new = (cache.get("preferences", 2, inputs, build) for inputs in (OLD_INPUTS, NEW_INPUTS))
    return old, new


def test_unpaired_samples_refused_naming_the_input_and_the_preferences_entry(tmp_path):
    old, new = two_entries(tmp_path / "cache")
    assert old.path.parent == new.path.parent == tmp_path / "cache" / "preferences"
    ckpt = tmp_path / "run" / "checkpoints"
    ckpt.parent.mkdir()  # the run folder: a checkpoint never makes it (train/resume.py)
    save_checkpoint(ckpt, {"step": 1, "stage_keys": {"unpaired_samples": old.key}})
    check = resume_stage_check(ckpt, tmp_path / "cache")
    with pytest.raises(CheckpointError) as e:
        check("unpaired_samples", "preferences", new.key, NEW_INPUTS)
    assert str(e.value) == (
        f"stage unpaired_samples: the checkpoint in {ckpt} was trained on entry {old.key}, this run's is "
        f"{new.key} (its input unpaired.desirable_threshold was 0.5, now 0.7; the checkpoint's: "
        f"{old.path / 'inputs.json'}); resume where and as it started, or choose another hydra.run.dir"
    )
    check("unpaired_samples", "preferences", old.key, OLD_INPUTS)  # its own: nothing to say
    check("reward_model", "reward_model", "f" * 16, {})  # a stage the checkpoint did not use: nothing


def test_a_deleted_entry_of_the_checkpoint_is_named_as_gone(tmp_path):
    old, new = two_entries(tmp_path / "cache")
    shutil.rmtree(old.path)
    ckpt = tmp_path / "run" / "checkpoints"
    ckpt.parent.mkdir()  # the run folder: a checkpoint never makes it (train/resume.py)
    save_checkpoint(ckpt, {"step": 1, "stage_keys": {"unpaired_samples": old.key}})
    with pytest.raises(CheckpointError, match=r"^stage unpaired_samples: ") as e:
        resume_stage_check(ckpt, tmp_path / "cache")("unpaired_samples", "preferences", new.key, NEW_INPUTS)
    assert f"({old.path / 'inputs.json'} is gone, so the input that changed cannot be named)" in str(e.value)
