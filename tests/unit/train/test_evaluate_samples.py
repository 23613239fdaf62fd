"""Evaluation's per-sample records and its common random numbers: every row draws the noise of its
(run seed, prompt id, sample) row seed, whatever the engine's seed_per_sample, the evaluation's
micro-batch or the policy evaluated."""

from __future__ import annotations

import pytest
import torch

from align_lab.models.tiny import TinyLM
from align_lab.models.tokenizer import train_tokenizer
from align_lab.rollout.hf import HFGenerate
from align_lab.tasks.toy_arith import ToyArith
from align_lab.train.evaluate import eval_seeds, evaluate

TASK = ToyArith(max_operand=4)  # 25 additions, 5 held out: "a + b =" with one-digit operands
N = 3  # samples per prompt


def length_scorer(prompts, responses, finished):
    """A proxy reward: the response's characters (anything the policy changes, cheap)."""
    return torch.tensor([float(len(r)) for r in responses])


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(TASK.corpus(), tmp_path_factory.mktemp("tok"))


def policy(tokenizer, init_seed: int):
    torch.manual_seed(init_seed)
    return TinyLM().init_policy(tokenizer)


def run(tokenizer, mine, reference, engine=None, micro=None, seed=7):
    engine = engine or HFGenerate()
    return evaluate(mine, reference, tokenizer, TASK, length_scorer, engine, N, seed, micro_batch_size=micro)


def test_eval_seeds_are_keyed_by_prompt_and_sample_below_every_training_step():
    # row_seeds(s, step, row) = ((s * M + step) * M + row) mod 2^63, M = 1,000,003; evaluation uses
    # step -1 - sample: seed 0, prompt 0 sample 0: (-1 * M + 0) mod 2^63 = 2^63 - M; prompt 0 sample 1:
    # 2^63 - 2M; prompt 1 sample 0: 2^63 - M + 1; prompt 1 sample 1: 2^63 - 2M + 1
    M = 1_000_003
    assert eval_seeds(0, 2, 2) == [2**63 - M, 2**63 - 2 * M, 2**63 - M + 1, 2**63 - 2 * M + 1]
    # a prompt's first samples do not depend on how many are drawn
    assert eval_seeds(5, 3, 4)[4:6] == eval_seeds(5, 3, 2)[2:4]
    # training rows are s*M^2 + step*M + row with step >= 0, row < M: never an evaluation row's
    from align_lab.train.distributed import row_seeds

    training = {x for step in range(50) for x in row_seeds(5, step, 0, 256)}
    assert not training & set(eval_seeds(5, 100, 8))


def test_the_records_are_the_samples_and_average_to_the_metrics(tokenizer):
    mine, ref = policy(tokenizer, 0), policy(tokenizer, 1)
    result = run(tokenizer, mine, ref)
    prompts = TASK.prompts("eval")
    assert len(result.records) == len(prompts) * N == 15
    for i, r in enumerate(result.records):
        assert (r["prompt_id"], r["sample"], r["prompt"]) == (i // N, i % N, prompts[i // N])
        assert r["response_length"] == len(r["response"].split())
        assert r["proxy_reward"] == len(r["response"]) and r["sft_proxy_reward"] == len(r["sft_response"])
        assert (
            r["gold_reward"]
            == r["pass@1"]
            == TASK.gold_reward([r["prompt"]], [r["response"]], [r["finished"]])[0]
        )
        wins = (
            1.0
            if r["gold_reward"] > r["sft_gold_reward"]
            else 0.5
            if r["gold_reward"] == r["sft_gold_reward"]
            else 0.0
        )
        assert r["win_rate_vs_sft"] == wins and r["finished_fraction"] == float(r["finished"])
        assert 1 <= r["tokens"] <= TASK.max_response_tokens
    for field in result.records[0]:  # eval/X = mean of field X over the records
        if f"eval/{field}" in result.metrics:
            mean = sum(r[field] for r in result.records) / len(result.records)
            assert result.metrics[f"eval/{field}"] == pytest.approx(mean, abs=1e-12), field
    # pass@3 of a prompt with c of 3 correct: 1 if c > 0 (Chen et al.: 1 - C(3-c, 3) / C(3, 3))
    correct = [sum(r["pass@1"] for r in result.records[p * N : (p + 1) * N]) for p in range(5)]
    assert result.metrics["eval/pass@3"] == pytest.approx(sum(c > 0 for c in correct) / 5)


def test_the_same_policy_draws_the_same_samples_whatever_the_engine_batch_or_global_rng(tokenizer):
    mine, ref = policy(tokenizer, 0), policy(tokenizer, 1)
    first = run(tokenizer, mine, ref, HFGenerate(seed_per_sample=False), micro=None).records
    torch.manual_seed(123)  # another global RNG state before the evaluation
    second = run(tokenizer, mine, ref, HFGenerate(seed_per_sample=True), micro=1).records
    # the same draws; KL is a forward of the samples, whose rounding follows the micro-batch's shape
    assert [r["kl"] for r in first] == pytest.approx([r["kl"] for r in second], rel=1e-5, abs=1e-6)
    assert [r | {"kl": 0} for r in first] == [r | {"kl": 0} for r in second]
    assert first == run(tokenizer, mine, ref, HFGenerate(seed_per_sample=True), micro=None).records
    assert any(r["response"] != first[0]["response"] for r in first)  # real draws, not one constant answer
    # a row draws what it draws in the evaluation's batch when drawn alone (prompt 3, sample 2)
    row = 3 * N + 2
    alone = HFGenerate().sample(
        mine,
        tokenizer,
        [TASK.prompts("eval")[3]],
        1,
        TASK.max_response_tokens,
        TASK.max_prompt_tokens,
        seeds=[eval_seeds(7, 5, N)[row]],
        row_seeded=True,
    )
    assert alone.responses[0] == first[row]["response"]
    # another run seed: other draws
    assert run(tokenizer, mine, ref, seed=8).records != first


def test_two_policies_draw_each_row_with_the_same_uniform(tokenizer):
    """Row i's first token under any policy is the inverse CDF, at that row's first uniform
    U ~ torch.rand(generator seeded with eval_seeds[i]), of the policy's next-token distribution: the
    first token whose cumulative probability exceeds U."""
    seeds = eval_seeds(7, 5, N)
    prompts = TASK.prompts("eval")
    firsts, checked = {}, 0
    for init in (0, 1):
        model = policy(tokenizer, init)
        records = run(tokenizer, model, policy(tokenizer, 2)).records
        firsts[init] = [(r["response"].split() or ["<eos>"])[0] for r in records]
        for i, seed in enumerate(seeds):
            u = torch.rand(1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).item()
            ids = tokenizer(prompts[i // N], return_tensors="pt").input_ids
            with torch.no_grad():
                probs = model(input_ids=ids).logits[0, -1].double().softmax(-1)  # (V,)
            cdf = probs.cumsum(0)
            expected = int((cdf <= u * cdf[-1]).sum())  # tokens whose cdf is <= U x total come before
            token = tokenizer.convert_ids_to_tokens(expected)
            if token in ("<pad>", "<bos>", "<unk>"):  # an untrained policy's draw the decoded text hides
                continue
            assert firsts[init][i] == token, (init, i)
            checked += 1
    assert checked >= 20  # of 2 x 15 rows
    assert firsts[0] != firsts[1]  # the policies differ; the uniforms are the same


def test_a_prompts_first_samples_do_not_depend_on_how_many_are_drawn(tokenizer):
    mine, ref = policy(tokenizer, 0), policy(tokenizer, 1)
    three = run(tokenizer, mine, ref).records  # N = 3 samples a prompt
    two = evaluate(mine, ref, tokenizer, TASK, length_scorer, HFGenerate(), 2, 7).records
    texts = lambda r: (r["prompt_id"], r["sample"], r["response"], r["sft_response"])  # noqa: E731
    assert [texts(r) for r in two] == [texts(r) for r in three if r["sample"] < 2]


def test_the_reference_draws_with_the_policys_row_seeds(tokenizer):
    # the policy evaluated against itself: every row's reference sample is its own sample, KL 0, a tie
    mine = policy(tokenizer, 0)
    result = run(tokenizer, mine, mine)
    assert all(r["sft_response"] == r["response"] for r in result.records)
    assert all(r["kl"] == 0.0 and r["win_rate_vs_sft"] == 0.5 for r in result.records)


class CountingEngine(HFGenerate):
    """HFGenerate that remembers which model each call sampled."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sampled: list = []

    def sample(self, model, *args, **kwargs):
        self.sampled.append(model)
        return super().sample(model, *args, **kwargs)


def context(tokenizer, tmp_path, mine, reference, engine, load_reference=None):
    from types import SimpleNamespace

    from tqdm import tqdm

    from align_lab.train.common import TrainConfig
    from align_lab.train.context import Context, Models

    train = TrainConfig(steps=2, rollout_size=4, minibatch_size=4, eval_every=1, eval_samples=N)
    return Context.build(
        task=TASK,
        tokenizer=tokenizer,
        models=Models(mine, reference, load_reference=load_reference),
        scorer=length_scorer,
        engine=engine,
        train=train,
        tracker=SimpleNamespace(log=lambda m, step: None),
        checkpoint_dir=tmp_path,
        seed=7,
        progress=lambda **kw: tqdm(disable=True, **kw),
    )


def test_a_run_samples_its_reference_once_and_every_evaluation_sees_the_same_numbers(tokenizer, tmp_path):
    from align_lab.train.cadence import evaluate_now

    mine, ref = policy(tokenizer, 0), policy(tokenizer, 1)
    engine = CountingEngine()
    ctx = context(tokenizer, tmp_path, mine, ref, engine)
    first = evaluate_now(ctx)
    second = evaluate_now(ctx)
    assert [m is ref for m in engine.sampled] == [False, True, False]  # policy, reference, policy
    assert second.metrics == first.metrics and second.records == first.records
    # the policy moved: its samples are new, the reference's the same as a fresh evaluation's
    with torch.no_grad():
        for p in mine.parameters():
            p.add_(0.05 * torch.randn_like(p))
    moved = evaluate_now(ctx)
    fresh = run(tokenizer, mine, ref)
    assert engine.sampled[-1] is mine and moved.metrics == fresh.metrics
    assert moved.metrics["eval/gold_reward_sft"] == first.metrics["eval/gold_reward_sft"]
    # a reference that changes (a benchmark hands the policy itself) is sampled again
    ctx = context(tokenizer, tmp_path, mine, mine, engine)
    evaluate_now(ctx)
    with torch.no_grad():
        next(mine.parameters()).mul_(1.5)
    n = len(engine.sampled)
    evaluate_now(ctx)
    assert len(engine.sampled) == n + 2


def test_a_reference_loaded_for_each_evaluation_is_sampled_once(tokenizer, tmp_path):
    from align_lab.train.cadence import evaluate_now

    loads = []

    def load():
        loads.append(policy(tokenizer, 1))
        return loads[-1]

    engine = CountingEngine()
    ctx = context(tokenizer, tmp_path, policy(tokenizer, 0), None, engine, load_reference=load)
    first, second = evaluate_now(ctx), evaluate_now(ctx)
    assert len(loads) == 2 and len(engine.sampled) == 3  # loaded for each KL, sampled once
    assert second.metrics == first.metrics


def test_a_scorer_that_runs_a_model_scores_a_micro_batch_at_a_time_a_users_function_all_rows(tokenizer):
    # thirty-first hunt, case 45: a learned reward model scored an evaluation's 36,000 rows in one forward
    # (2.4 GB, 65 s in native code); the planned micro-batch bounds it; a user's reward sees the whole batch
    mine, ref = policy(tokenizer, 0), policy(tokenizer, 1)
    sizes: dict[str, list[int]] = {"model": [], "user": []}
    held = torch.nn.Linear(1, 1)  # what makes a scorer one that runs a model (footprint.held_modules)

    def with_model(prompts, responses, finished):
        sizes["model"].append(len(responses) + 0 * held.in_features)
        return length_scorer(prompts, responses, finished)

    def users(prompts, responses, finished):
        sizes["user"].append(len(responses))
        return length_scorer(prompts, responses, finished)

    def evaluated(scorer):
        return evaluate(mine, ref, tokenizer, TASK, scorer, HFGenerate(), N, 7, micro_batch_size=4)

    chunked, whole = evaluated(with_model), evaluated(users)
    # the run's reward on the policy's 15 rows and the reference's (a gold task: no judge's call)
    assert sizes["model"] == [4, 4, 4, 3] * 2 and sizes["user"] == [15] * 2
    assert chunked.records == whole.records and chunked.metrics == whole.metrics
