"""Same command, same numbers: two processes with their own fresh stage caches and different hash
seeds build byte-identical stages and log identical metrics (docs/reproducibility.md)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import torch

from tests.conftest import FULL, ROOT, run_cli, run_in_process

COMMAND = [
    "tracker=none",
    "hardware.num_threads=1",
    "task.n_demonstrations=512",
    "task.n_pairs=256",
    "sft.epochs=1",
    "reward.epochs=1",
    "train.steps=3",
    "train.rollout_size=16",
    "train.minibatch_size=8",
    "train.eval_every=0",
    "train.eval_samples=1",
]


def stage_files(cache) -> dict[str, str]:
    """sha256 of every file of every stage (the lock files aside)."""
    return {
        str(p.relative_to(cache)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(cache.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def metrics(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith(("time/", "perf/"))} for row in rows]


@FULL
def test_fresh_caches_in_separate_processes_give_identical_stages_and_metrics(tmp_path):
    for name, hash_seed in (("a", "1"), ("b", "2")):
        result = run_cli(
            [*COMMAND, f"cache_dir={tmp_path / name / 'cache'}", f"hydra.run.dir={tmp_path / name / 'run'}"],
            cwd=ROOT,
            env={"PYTHONHASHSEED": hash_seed},
        )
        assert result.returncode == 0, result.stderr[-2000:]
    a, b = stage_files(tmp_path / "a" / "cache"), stage_files(tmp_path / "b" / "cache")
    stages = {"tokenizer", "sft", "preferences", "reward_model"}
    assert {p.split("/")[0] for p in a} == {*stages, "CACHEDIR.TAG"}  # the cache's tag (cache.py tagged)
    assert a == b
    assert metrics(tmp_path / "a" / "run") == metrics(tmp_path / "b" / "run")
    summaries = [json.loads((tmp_path / n / "run" / "summary.json").read_text()) for n in "ab"]
    assert summaries[0]["eval/gold_reward"] == summaries[1]["eval/gold_reward"]


def test_a_stage_rebuilt_from_cached_upstream_stages_is_byte_identical(tmp_path):
    # the reward model built in a process that built SFT and the pairs first, and again in a process
    # that found them in the cache: its new head must not depend on what the process drew before
    import shutil

    cache = tmp_path / "cache"
    for name in ("a", "b"):
        result = run_cli([*COMMAND, f"cache_dir={cache}", f"hydra.run.dir={tmp_path / name}"], cwd=ROOT)
        assert result.returncode == 0, result.stderr[-2000:]
        if name == "a":
            first = stage_files(cache)
            shutil.rmtree(cache / "reward_model")
    assert stage_files(cache) == first
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")


def test_a_run_that_builds_the_stages_equals_one_that_finds_them_cached(tmp_path):
    # PPO with the gold reward, seed 1 (SFT is seeded 0): nothing asked for the SFT stage before the
    # critic's fresh head was drawn, so the stage was built after the run's seed and the first run's
    # critic differed from every later one's (found 2026-11-23, as 2 processes "differing" from 1
    # with rollout=vllm, the 1-process run having built the cache)
    small = [o for o in COMMAND if not o.startswith("reward.")]
    cache = tmp_path / "cache"
    for name in ("a", "b"):
        args = [*small, "algo=ppo", "reward=gold", "seed=1", "train.steps=2", f"cache_dir={cache}"]
        result = run_cli([*args, f"hydra.run.dir={tmp_path / name}"], cwd=ROOT)
        assert result.returncode == 0, result.stderr[-2000:]
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")


def busy_cores(n: int) -> list[subprocess.Popen]:
    """n processes that keep a core busy each (at the lowest priority, so the run still gets its turn)."""
    loop = "import os\nos.nice(19)\nwhile True: pass"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(n)]


def test_the_default_rollout_threads_give_the_same_numbers_beside_busy_processes(tmp_path, cache_dir):
    """Issue 72: rollout.threads=auto (the default; set here so the test means the same on the code
    before it) samples on the threads the run was given, never one fewer for other processes' load
    (that was auto until 2026-11-29, now the opt-in `load`). The same toy command at 2 threads (a tiny
    model's default 1 has none to spare), alone and beside a busy process on every core: the same
    metrics, and both record 2 sampling threads, each rollout sampled on them. Before, the busy run's
    rollouts sampled on 1 thread and nothing recorded the count; on a CPU whose matmuls round by thread
    count (the AMD EPYCs, issue 59) its rollout log-probs then differed."""
    command = ["hardware.num_threads=2", "rollout.threads=auto"]
    threads = torch.get_num_threads()
    try:
        alone = run_in_process(command, tmp_path / "alone", cache_dir)
        children = busy_cores(os.cpu_count() or 1)
        try:
            time.sleep(1.0)  # the children are running before the run's engine is made
            beside = run_in_process(command, tmp_path / "beside", cache_dir)
        finally:
            for child in children:
                child.kill()
                child.wait()
    finally:
        torch.set_num_threads(threads)
    used = alone["numerics"]["rollout_threads"]  # {threads: rollouts}
    assert beside["numerics"]["rollout_threads"] == used and set(used) == {"2"}
    assert metrics(tmp_path / "alone") == metrics(tmp_path / "beside")
    assert alone["eval/gold_reward"] == beside["eval/gold_reward"]
    assert alone["sampling_threads"] == beside["sampling_threads"] == 2
