"""Same command, same numbers: two processes with their own fresh stage caches and different hash
seeds build byte-identical stages and log identical metrics (docs/reproducibility.md)."""

from __future__ import annotations

import hashlib
import json

from tests.conftest import ROOT, run_cli

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


def test_fresh_caches_in_separate_processes_give_identical_stages_and_metrics(tmp_path):
    for name, hash_seed in (("a", "1"), ("b", "2")):
        result = run_cli(
            [*COMMAND, f"cache_dir={tmp_path / name / 'cache'}", f"hydra.run.dir={tmp_path / name / 'run'}"],
            cwd=ROOT,
            env={"PYTHONHASHSEED": hash_seed},
        )
        assert result.returncode == 0, result.stderr[-2000:]
    a, b = stage_files(tmp_path / "a" / "cache"), stage_files(tmp_path / "b" / "cache")
    assert {p.split("/")[0] for p in a} == {"tokenizer", "sft", "preferences", "reward_model"}
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
