"""Stage keys hold everything that changes an artifact's bits: the stage code, library versions, device,
thread count and micro-batching (issue 13: results must not depend on which run built the cache)."""

from __future__ import annotations

import torch

from align_lab.cache import StageCache
from align_lab.models.tiny import TinyLM
from align_lab.run import numerics as numerics_module
from align_lab.run.numerics import code_fingerprint, numerics
from align_lab.run.stages import StageBuild, build_stages, build_tokenizer
from align_lab.tasks.toy_prefs import ToyPrefs
from align_lab.train.sft import SFTConfig
from tests.conftest import Quiet


def tokenizer_stage(cache_dir, micro_batch_size=None):
    """The key and hit of the cheapest stage (the tokenizer) for the default toy world."""
    # the tokenizer stage alone (build_stages would train the SFT policy too)
    b = StageBuild(StageCache(cache_dir), Quiet, micro_batch_size, 2**30, numerics(None))
    build_tokenizer(b, ToyPrefs(), TinyLM())
    return b.results["tokenizer"].key, b.results["tokenizer"].hit


def sft_stage(cache_dir, micro_batch_size):
    """The key of a small SFT stage of the toy world (64 demonstrations, batches of 32)."""
    sft = SFTConfig(epochs=1, batch_size=32)
    task = ToyPrefs(n_demonstrations=64)
    stages = build_stages(task, TinyLM(), sft, StageCache(cache_dir), Quiet, micro_batch_size)
    return stages.results["sft"].key


def test_same_settings_share_a_stage_and_thread_count_or_micro_batch_do_not(tmp_path):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        key, hit = tokenizer_stage(tmp_path)
        assert not hit
        assert tokenizer_stage(tmp_path) == (key, True)  # same settings: served from the cache
        # the key holds the resolved size: auto is whole batches for the toy model (as null), 8 is not
        whole = sft_stage(tmp_path, None)
        assert sft_stage(tmp_path, "auto") == whole
        assert sft_stage(tmp_path, 8) != whole
        torch.set_num_threads(2)
        assert tokenizer_stage(tmp_path)[0] != key
    finally:
        torch.set_num_threads(threads)


def test_other_stage_code_gets_its_own_stage(tmp_path, monkeypatch):
    key, _ = tokenizer_stage(tmp_path)
    monkeypatch.setattr(numerics_module, "code_fingerprint", lambda: "another checkout")
    assert tokenizer_stage(tmp_path)[0] != key


def test_code_fingerprint_changes_with_any_byte_or_file_of_the_stage_code(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "sft.py").write_text("LR = 1\n")
    (tmp_path / "stages.py").write_text("x = 1\n")
    entries = ("train", "stages.py")
    first = code_fingerprint(tmp_path, entries)
    assert code_fingerprint(tmp_path, entries) == first  # deterministic (sorted file order)
    (tmp_path / "train" / "sft.py").write_text("LR = 2\n")
    second = code_fingerprint.__wrapped__(tmp_path, entries)  # uncached: the files changed
    assert second != first
    (tmp_path / "train" / "new.py").write_text("")
    assert code_fingerprint.__wrapped__(tmp_path, entries) not in (first, second)
    assert code_fingerprint.__wrapped__(tmp_path, ("train",)) != second  # stages.py counts too


def test_the_next_build_removes_orphaned_tmp_folders_of_dead_builders(tmp_path):
    """A builder killed by SIGKILL leaves <key>.tmp-<pid>/ (hundreds of MB with a real model); the next
    build in that stage removes it, and any other key's whose lock is free, never one being built."""
    import multiprocessing

    from filelock import FileLock

    from tests.lock_holder import hold_lock

    cache = StageCache(tmp_path)
    stage = tmp_path / "sft"
    for name in ("aaaa.tmp-11", "bbbb.tmp-12", "cccc.tmp-13"):
        (stage / name).mkdir(parents=True)
        (stage / name / "model.safetensors").write_bytes(b"x" * 10)
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=hold_lock, args=(str(stage / "cccc.lock"), ready, done))
    holder.start()
    try:
        assert ready.wait(30)
        result = cache.get("sft", 1, {"x": 1}, lambda out: (out / "w").write_text("w"))
    finally:
        done.set()
        holder.join(30)
    left = sorted(p.name for p in stage.iterdir() if ".tmp-" in p.name)
    assert left == ["cccc.tmp-13"], left  # its builder (the other process) still holds the lock
    assert (result.path / "w").read_text() == "w" and not result.hit
    assert FileLock(str(stage / "cccc.lock")).acquire(timeout=1)


def test_an_entry_served_again_in_one_process_is_hashed_once_and_a_same_size_rewrite_is_still_damage(
    tmp_path, monkeypatch
):
    import hashlib

    from align_lab import cache

    cache_ = StageCache(tmp_path)
    built = cache_.get("stage", 1, {"n": 1}, lambda out: (out / "w.bin").write_bytes(b"a" * 4096))
    reads, real = [], hashlib.sha256  # file digests begin empty; stage keys hash their inputs at once

    def sha256(*data):
        reads.extend([] if data else [1])
        return real(*data)

    monkeypatch.setattr(cache.hashlib, "sha256", sha256)
    assert cache_.get("stage", 1, {"n": 1}, lambda out: None).hit and reads == []  # read at build time
    (built.path / "w.bin").write_bytes(b"b" * 4096)  # same size, new bytes: ctime and mtime move
    assert cache.damage(built.path) == "w.bin does not match its sha256" and reads == [1]


def test_on_a_gpu_the_hub_kernels_setting_is_part_of_what_gives_a_stage_its_bits(monkeypatch):
    """On a GPU transformers swaps layers for the Hub's kernels unless USE_HUB_KERNELS says no
    (align_lab/__init__.py sets "0"): a stage built with them is not served to a run without them."""
    monkeypatch.setattr(numerics_module.torch, "get_default_device", lambda: torch.device("cuda", 0))
    monkeypatch.setattr(numerics_module.torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    monkeypatch.setenv("USE_HUB_KERNELS", "0")
    off = numerics(None)
    monkeypatch.setenv("USE_HUB_KERNELS", "1")
    on = numerics(None)
    assert off["math"] == {"USE_HUB_KERNELS": "0"} and on["math"] == {"USE_HUB_KERNELS": "1"}
    assert {k: v for k, v in off.items() if k != "math"} == {k: v for k, v in on.items() if k != "math"}
