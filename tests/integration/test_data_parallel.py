"""Data parallel: 2 processes (torch.distributed, gloo) give the numbers of 1 process with the same
global batch, for the online loop (with and without a critic) and the pairwise loop."""

from __future__ import annotations

import threading

import pytest
import torch

from align_lab.config import ConfigError
from align_lab.run.admission import spec_from_config
from align_lab.run.cross_checks import check_run
from align_lab.tracking import read_metrics
from align_lab.train.distributed import Group, row_seeds
from tests.conftest import Quiet, compose, run_in_process

# metrics that must agree; time/* and throughput differ by construction
COMPARED = ("train/reward", "train/kl", "train/loss", "train/grad_norm", "train/response_length")


def _compare(one, two) -> None:
    rows_1, rows_2 = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    assert len(rows_1) == len(rows_2) == 3
    for a, b in zip(rows_1, rows_2, strict=True):
        for key in COMPARED:
            if key in a:
                # float tolerance: the two runs pad and reduce in different batch shapes
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize(
    "overrides",
    [
        ["algo=reinforce_pp"],  # global batch whitening: needs every process's rows
        ["algo=ppo"],  # critic, GAE, several minibatches and epochs
        ["algo=sail_pp"],  # pairwise loop: sampled pairs, labels from the policy
        # seed 0: a step whose one sampled pair leaves the second process none (it crashed, 2026-11-28)
        ["algo=sail_pr", "seed=0"],
    ],
    ids=["reinforce_pp", "ppo", "sail_pp", "sail_pr"],
)
def test_two_processes_equal_one_with_the_same_global_batch(overrides, tmp_path, cache_dir):
    seed = [] if any(o.startswith("seed=") for o in overrides) else ["seed=1"]
    common = [*overrides, "rollout.seed_per_sample=true", "hardware.num_threads=1", *seed]
    one = run_in_process(common, tmp_path / "one", cache_dir)
    two = run_in_process([*common, "hardware.processes=2"], tmp_path / "two", cache_dir)
    assert one["status"] == two["status"] == "completed"
    _compare(tmp_path / "one", tmp_path / "two")
    for key in ("eval/gold_reward", "eval/kl", "eval/proxy_reward"):
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-5), key


def test_the_cpu_ddp_preset_runs_two_processes_and_needs_per_sample_seeds(tmp_path, cache_dir):
    cfg, names = compose(["hardware=cpu_ddp"])
    assert cfg.hardware.processes == 2 and cfg.rollout.seed_per_sample
    cfg, names = compose(["hardware.processes=2"])
    with pytest.raises(ConfigError, match=r"hardware.processes=2: needs rollout.seed_per_sample=true") as e:
        check_run(spec_from_config(cfg, names))
    assert str(e.value).endswith("(a run started without it, on one process, resumes on one process only)")
    cfg, names = compose(
        ["hardware=cpu_ddp", "hardware.processes=64", "train.rollout_size=16", "train.minibatch_size=8"]
    )
    with pytest.raises(ConfigError, match=r"hardware.processes=64: must be <= the 16 prompts per step"):
        check_run(spec_from_config(cfg, names))
    # each process runs a share of every minibatch: 4 processes, minibatches of 2 rows leave two none
    cfg, names = compose(["hardware=cpu_ddp", "hardware.processes=4", "train.minibatch_size=2"])
    with pytest.raises(ConfigError, match=r"hardware.processes=4: must be <= train.minibatch_size=2$"):
        check_run(spec_from_config(cfg, names))


class LockedEnv:
    """A multi-turn environment of the user's holding a lock: fine on one process, not sendable."""

    multi_turn, max_turns, step_timeout_s = True, 1, 5.0

    def __init__(self):
        self.lock = threading.Lock()

    def start(self, prompt):
        return None


@pytest.mark.fast
def test_a_part_that_cannot_be_sent_to_the_other_processes_is_one_line_at_admission():
    """Fourteenth hunt: env._target_ of a class holding a threading.Lock on 2 processes was a 25-frame
    traceback as the ranks started (cannot pickle '_thread.lock' object)."""
    keys = ["hardware=cpu_ddp", "task=toy_arith", "reward=gold", f"env._target_={__name__}.LockedEnv"]
    cfg, names = compose(keys)
    with pytest.raises(ConfigError) as e:
        check_run(spec_from_config(cfg, names))
    assert str(e.value) == (
        "hardware.processes=2: the run's env (TypeError: cannot pickle '_thread.lock' object) cannot be sent "
        "to the other processes; use hardware.processes=1, or make what it holds when it runs (in start(), "
        "__post_init__), or give it __getstate__"
    )


@pytest.mark.fast
def test_shards_cover_every_row_once_in_order():
    for n in (1, 5, 8):
        for size in (1, 2, 3):
            rows = [i for r in range(size) for i in range(n)[Group(r, size).shard(n)]]
            assert rows == list(range(n))
    assert Group(0, 2).shard(5) == slice(0, 3) and Group(1, 2).shard(5) == slice(3, 5)


@pytest.mark.fast
def test_a_rows_seed_does_not_depend_on_how_rows_are_split():
    assert row_seeds(3, 7, 0, 8)[5:] == row_seeds(3, 7, 5, 3)
    assert len(set(row_seeds(3, 7, 0, 8) + row_seeds(3, 8, 0, 8) + row_seeds(4, 7, 0, 8))) == 24


def test_per_row_seeds_give_a_row_the_same_sample_in_any_batch(tmp_path, cache_dir):
    from align_lab.cache import StageCache
    from align_lab.models.tokenizer import load_tokenizer
    from align_lab.rollout.hf import HFGenerate
    from align_lab.run.stages import build_stages

    cfg, names = compose(["task.n_demonstrations=512", "sft.epochs=2", f"cache_dir={cache_dir}"])
    spec = spec_from_config(cfg, names)
    stages = build_stages(spec.task, spec.model, spec.sft, StageCache(cache_dir), Quiet)
    policy, tok = stages.load_policy(), load_tokenizer(stages.sft_path)
    prompts = spec.task.prompts("train")[:4]
    engine = HFGenerate(temperature=1.0, seed_per_sample=True)
    seeds = row_seeds(0, 0, 0, 8)
    whole = engine.sample(policy, tok, prompts, 2, 12, 8, seeds=seeds)
    halves = [
        engine.sample(policy, tok, prompts[i : i + 2], 2, 12, 8, seeds=seeds[2 * i : 2 * i + 4])
        for i in (0, 2)
    ]
    assert whole.responses == halves[0].responses + halves[1].responses
    torch.manual_seed(123)  # the global RNG plays no part
    again = engine.sample(policy, tok, prompts, 2, 12, 8, seeds=seeds)
    assert again.responses == whole.responses
    assert len(set(whole.responses)) > 1  # and it does sample
    # transformers' generate with the same per-row (Gumbel) noise draws the same tokens as the KV-cache
    # loop with sampler=multinomial; the default, inverse_cdf, draws one uniform a row, other tokens
    generate = HFGenerate(temperature=1.0, seed_per_sample=True, use_generate=True)
    gumbel = HFGenerate(temperature=1.0, seed_per_sample=True, sampler="multinomial")
    loop = gumbel.sample(policy, tok, prompts, 2, 12, 8, seeds=seeds).responses
    assert generate.sample(policy, tok, prompts, 2, 12, 8, seeds=seeds).responses == loop != whole.responses


class ConnectThenFail:
    """A rank job (train/distributed.RankJob) that joins the group and fails."""

    def run(self, group, connect):
        connect()
        raise ValueError("boom in rank 1")

    def release(self):
        pass


def test_a_failing_rank_says_why_and_rank_0_stops_with_its_error():
    """A spawned rank's failure reaches rank 0 as the rank's own exception, its traceback a note (the
    thirteenth hunt: a reward's error on rank 1 alone is then the one-process run's one line), and rank
    0's collective fails with it instead of waiting for gloo's timeout."""
    import torch.distributed as dist

    from align_lab.train.launch import launch

    with pytest.raises(ValueError, match="^boom in rank 1") as e:
        with launch(2, "cpu", ConnectThenFail()):
            dist.barrier()
    assert not dist.is_initialized()
    assert e.value.__notes__[0].startswith("rank 1 of 2:\nTraceback") and "ConnectThenFail" not in str(
        e.value
    )
