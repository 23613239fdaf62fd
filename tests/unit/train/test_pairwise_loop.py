"""The pairwise loop's own logic: online pair ordering, the sampling-policy snapshot, exact resume."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from align_lab.algorithms.preference import Route
from align_lab.rollout.hf import Samples
from align_lab.tracking import read_metrics
from align_lab.train.common import Counters
from align_lab.train.distributed import Group
from align_lab.train.pairwise import SamplingPolicy, sample_pairs
from tests.conftest import run_in_process

EOS = 2


def pad_right(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists -> right-padded ids and response mask, (B, T), as an engine's Samples hold them."""
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), width))  # (B, T)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1.0
    return ids, mask


class ScriptedEngine:
    """Two samples per prompt: prompt k's samples are [10k + 1, EOS] and [10k + 2, 10k + 3, EOS]."""

    def __init__(self):
        self.calls = []

    def sample(self, model, tokenizer, prompts, n, max_new_tokens, max_prompt_tokens, seeds=None):
        assert n == 2
        self.calls.append(list(prompts))
        rows = [r for p in prompts for r in ([int(p) * 10 + 1, EOS], [int(p) * 10 + 2, int(p) * 10 + 3, EOS])]
        ids, mask = pad_right(rows, 0)
        twice = [p for p in prompts for _ in range(2)]
        texts = [" ".join(map(str, r[:-1])) for r in rows]
        return Samples(twice, None, None, ids, mask, texts, [True] * len(rows), torch.zeros(mask.shape))


def test_online_pairs_put_the_higher_score_first_ties_to_the_first_sample_and_count_compute():
    # pair 0: dataset (kept); 1-3: DPR with scores (1, 2) -> second, (3, 1) -> first, (5, 5) -> tie,
    # first; 4: DPP -> unscored, sample order kept (the policy labels it in the loss)
    scores = {"11": 1.0, "12 13": 2.0, "21": 3.0, "22 23": 1.0, "31": 5.0, "32 33": 5.0}
    queried = []

    def scorer(prompts, responses, finished):
        queried.extend(responses)
        return torch.tensor([scores[r] for r in responses])

    engine = ScriptedEngine()
    ctx = SimpleNamespace(
        tokenizer=SimpleNamespace(pad_token_id=0),
        group=Group(),
        seed=0,
        task=SimpleNamespace(max_response_tokens=12, max_prompt_tokens=8),
        engine=engine,
        scorer=scorer,
    )
    routes = torch.tensor([Route.DPO, Route.DPR, Route.DPR, Route.DPR, Route.DPP])
    chosen, rejected = [[7, EOS], None, None, None, None], [[8, EOS], None, None, None, None]
    counters = Counters()
    metrics = sample_pairs(ctx, None, ["0", "1", "2", "3", "4"], routes, chosen, rejected, counters, 0)
    assert engine.calls == [["1", "2", "3", "4"]]  # only sampled routes are generated
    assert chosen == [[7, EOS], [12, 13, EOS], [21, EOS], [31, EOS], [41, EOS]]
    assert rejected == [[8, EOS], [11, EOS], [22, 23, EOS], [32, 33, EOS], [42, 43, EOS]]
    assert sorted(queried) == sorted(scores)  # DPP samples are not scored
    # 4 prompts x (2 + 3 tokens) generated; 6 reward queries
    assert dict(counters) == {"generated_tokens": 20, "reward_queries": 6, "trained_tokens": 0}
    assert metrics["train/sample_reward"] == pytest.approx(17 / 6)
    assert metrics["train/response_length"] == pytest.approx(2.5)
    assert {"time/rollout_s", "time/score_s"} <= set(metrics)


def test_dataset_only_routes_sample_nothing():
    ctx = SimpleNamespace(
        engine=None, scorer=None, tokenizer=None, task=None, group=Group()
    )  # would fail if used
    assert sample_pairs(ctx, None, ["0"], torch.tensor([Route.DPO]), [[1]], [[2]], Counters(), 0) == {}


def test_sampling_policy_is_a_copy_refreshed_every_sync_every_steps_and_checkpointed():
    policy = torch.nn.Linear(2, 1)
    sampler = SamplingPolicy(policy, sync_every=3)
    weight = lambda m: m.weight.detach().clone()  # noqa: E731
    w0 = weight(policy)
    assert sampler.at(0) is not policy and torch.equal(weight(sampler.at(0)), w0)
    with torch.no_grad():
        policy.weight += 1.0
    w1 = weight(policy)
    assert torch.equal(weight(sampler.at(1)), w0) and torch.equal(weight(sampler.at(2)), w0)
    assert torch.equal(weight(sampler.at(3)), w1) and sampler.synced_at == 3
    state = sampler.state_dict()
    with torch.no_grad():
        policy.weight += 1.0
    resumed = SamplingPolicy(policy, sync_every=3)  # built from the later policy, as after a restart
    resumed.load_state_dict(state)
    assert torch.equal(weight(resumed.at(4)), w1) and resumed.synced_at == 3
    assert SamplingPolicy(policy, sync_every=1).at(5) is policy  # online: the policy itself


class Interrupt(BaseException):
    pass


@pytest.mark.slow  # over 1.3 s of CPU: CI's tier (docs/testing.md, the fast tier)
@pytest.mark.parametrize("overrides", [["algo=online_dpo", "algo.sync_every=2"], ["algo=sail_pp"]])
def test_interrupted_pairwise_run_resumes_to_identical_metrics(overrides, tmp_path, cache_dir, monkeypatch):
    from align_lab.tracking import JsonlTracker

    args = [*overrides, "seed=4", "train.steps=5"]
    run_in_process(args, tmp_path / "full", cache_dir)
    original = JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == 4:
            raise Interrupt  # before step 4's checkpoint: resumes at step 3, mid sync period

    monkeypatch.setattr(JsonlTracker, "log", log_then_die)
    with pytest.raises(Interrupt):
        run_in_process(args, tmp_path / "resumed", cache_dir)
    monkeypatch.setattr(JsonlTracker, "log", original)
    run_in_process(args, tmp_path / "resumed", cache_dir)
    assert json.loads((tmp_path / "resumed" / "summary.json").read_text())["status"] == "completed"
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]  # noqa: E731
    full = strip(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    assert strip(read_metrics(tmp_path / "resumed" / "metrics.jsonl")) == full
    assert full[-1]["counters/generated_tokens"] > 0 and any("train/kl" in r for r in full)
