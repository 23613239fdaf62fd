"""align_lab/folder.py: the run folder's lock and what counts as align_lab's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from align_lab.folder import LOCK, check_owned, claim, foreign_files, holder
from align_lab.value_checks import ConfigError


def test_a_claimed_folder_names_its_holder_and_refuses_a_second_claim(tmp_path):
    run_dir = tmp_path / "run"
    lock = claim(run_dir)
    who = holder(run_dir)
    assert who is not None and who.startswith(f"pid {os.getpid()} on ")
    with pytest.raises(ConfigError, match=f"in use by a run of pid {os.getpid()} on "):
        claim(run_dir, wait_s=0.1)
    lock.release()
    assert holder(run_dir) is None
    claim(run_dir).release()  # free again


def test_deleting_run_lock_frees_nothing(tmp_path):
    """The folder itself is locked: a second claim after `rm run.lock` is refused (it once got in),
    naming the holder's pid from the kernel's lock table (/proc/locks) though run.lock held it."""
    run_dir = tmp_path / "run"
    lock = claim(run_dir)
    (run_dir / LOCK).unlink()
    assert holder(run_dir).startswith(f"pid {os.getpid()} on ")
    with pytest.raises(ConfigError, match=f"in use by a run of pid {os.getpid()} on "):
        claim(run_dir, wait_s=0.1)
    lock.release()
    claim(run_dir).release()


def test_a_dead_holders_lock_is_free(tmp_path):
    # a process that takes the lock and exits without releasing it (as SIGKILL would leave it)
    code = f"from align_lab.folder import claim; claim(__import__('pathlib').Path({str(tmp_path)!r}))"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / LOCK).exists() and holder(tmp_path) is None


def test_a_probe_never_creates_a_lock_file(tmp_path):
    assert holder(tmp_path) is None and not (tmp_path / LOCK).exists()


def test_what_counts_as_align_labs_files(tmp_path):
    assert foreign_files(tmp_path / "absent") == [] and foreign_files(tmp_path) == []
    for name in ("metrics.jsonl", "app.log", "config.resolved.yaml", LOCK, "wandb_run_id.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "checkpoints").mkdir()
    summary = {"status": "failed", "config_digest": "abc"}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    check_owned(tmp_path)  # all ours
    (tmp_path / "summary.json").write_text(json.dumps({"status": "done"}))  # someone else's
    assert foreign_files(tmp_path) == ["summary.json (not one align_lab wrote)"]
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"holds files align_lab did not write \(notes.txt, summary.json"):
        check_owned(tmp_path)


def test_changed_key_names_the_first_difference_outside_what_may_change_on_resume():
    from align_lab.run.resumable import changed_key

    old = {
        "seed": 0,
        "algo": {"lr": 1e-3, "clip": 0.2},
        "train": {"steps": 10},
        "hardware": {"num_threads": 1},
    }
    assert changed_key(old, {**old, "train": {"steps": 20}, "hardware": {"num_threads": 2}}) is None
    assert changed_key(old, {**old, "algo": {"lr": 1e-4, "clip": 0.2}}) == ("algo.lr", 1e-3, 1e-4)
    assert changed_key(old, {**old, "seed": 1}) == ("seed", 0, 1)
    assert changed_key(old, {**old, "new": 1}) == ("new", None, 1)


def test_a_resume_keeps_the_hardware_keys_that_change_what_the_run_computes():
    """Eighteenth hunt: `hardware` may change on resume (where a run runs), but not its backend, ZeRO
    stage or dtype: another dtype trained the rest of the run in it, saying nothing; another backend
    met a checkpoint it cannot read (a 53-91-line traceback)."""
    from align_lab.run.resumable import KEPT_BEFORE, changed_key, may_change_said, resumable_part

    old = {"seed": 0, "hardware": {"num_threads": 1, "processes": 1, "dtype": "fp32", "backend": "torch"}}
    assert (
        changed_key(old, {**old, "hardware": {**old["hardware"], "num_threads": 2, "processes": 2}}) is None
    )
    assert changed_key(old, {**old, "hardware": {**old["hardware"], "dtype": "bf16"}}) == (
        "hardware.dtype",
        "fp32",
        "bf16",
    )
    assert resumable_part(old) == {"seed": 0, "hardware": {"dtype": "fp32", "backend": "torch"}}
    assert resumable_part(old, kept=KEPT_BEFORE) == {"seed": 0}  # as older checkpoints digested it
    assert (
        "hardware (not hardware.backend, hardware.zero_stage, hardware.dtype), tracker" in may_change_said()
    )


def test_a_checkpoint_digested_before_hardware_dtype_was_kept_is_still_the_same_runs(tmp_path):
    from types import SimpleNamespace

    from align_lab.run.folder_checks import check_identity
    from align_lab.run.resumable import KEPT_BEFORE, resumable_part
    from align_lab.run.summary import config_digest, run_identity

    config = {"algo": {"lr": 1e-3}, "hardware": {"dtype": "fp32", "num_threads": 1}}
    now = run_identity(SimpleNamespace(config=config, seed=0))
    older = now | {"config": config_digest(resumable_part(config, kept=KEPT_BEFORE))}
    check_identity(older, now, tmp_path)


def test_a_default_folder_in_use_says_two_commands_started_in_one_second(monkeypatch):
    """Hunt of 2026-12-04 (c80): `for k in 0.05 0.2; do python -m align_lab algo.kl_coef=$k & done`: both in
    one second, so one default folder (named to the second); the second was refused naming only the pid.
    A single run now runs in a folder of its own (TakenThisSecond); a sweep's job says why it is refused."""
    from pathlib import Path

    from align_lab.folder import in_use
    from align_lab.run.refused import TakenThisSecond, same_second

    folder = Path("/r/outputs/2026-12-04/06-10-10_reinforce_pp_seed0")
    line = in_use(folder, "pid 5419 on vm")
    monkeypatch.setattr(sys, "argv", ["align_lab", "algo.kl_coef=0.2"])
    taken = same_second(ConfigError(line), folder)
    assert isinstance(taken, TakenThisSecond) and taken.run_dir == folder and str(taken) == line
    monkeypatch.setattr(sys, "argv", ["align_lab", "-m", "seed=0,1"])
    assert str(same_second(ConfigError(line), folder)) == (
        f"{line}: the default is named to the second; give each command its own hydra.run.dir"
    )
    bad = ConfigError("algo.lr=2: must be in (0, 1)")
    assert same_second(bad, folder) is bad
    monkeypatch.setattr(sys, "argv", ["align_lab", "hydra.run.dir=/r/mine"])
    assert str(same_second(ConfigError(line), folder)) == line  # a folder the command named: its own line
