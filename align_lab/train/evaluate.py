"""Held-out evaluation: gold and proxy reward, KL to the reference, judged win rates, length, diversity."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch

from align_lab.models.sequences import attended, response_logprobs
from align_lab.rl import kl_penalty, masked_sum, pass_ks
from align_lab.rollout.base import Samples
from align_lab.train.distributed import row_seeds
from align_lab.train.dynamic_sampling import concat_samples
from align_lab.train.micro import forward as micro_forward


def distinct_n(responses: list[str], n: int) -> float:
    """Distinct n-grams over all n-grams of all responses (Li et al. 2016)."""
    grams = [tuple(w[i : i + n]) for w in (r.split() for r in responses) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_fraction(response: str) -> float:
    """Share of a response's words that repeat an earlier word (0 for an empty response)."""
    words = response.split()
    return 1.0 - len(set(words)) / len(words) if words else 0.0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021)."""
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def sequence_kl(policy, reference, samples, micro_batch_size: int | None = None) -> torch.Tensor:
    """Sum over the policy's response tokens of k1 log(pi/pi_ref) on its own samples, (B,); the forwards
    attend a multi-turn conversation's observations too."""
    attend = attended(samples.mask, samples.attend)
    args = (samples.prompt_ids, samples.prompt_attn, samples.response_ids, attend)
    logprobs = micro_forward(lambda *r: response_logprobs(policy, *r)[0], args, micro_batch_size)  # (B, T)
    ref_logprobs = micro_forward(lambda *r: response_logprobs(reference, *r)[0], args, micro_batch_size)
    return masked_sum(kl_penalty(logprobs, ref_logprobs, "k1"), samples.mask, dim=1)


def sample_chunks(engine, tokenizer, prompts, n: int, task, seed: int, rows: int | None, model) -> Samples:
    """n row-seeded samples of each prompt from `model`, sampled `rows` rows at a time (whole prompts;
    None: all at once) and joined in order."""
    limits = (task.max_response_tokens, task.max_prompt_tokens)
    seeds = eval_seeds(seed, len(prompts), n)
    per = len(prompts) if rows is None else max(1, rows // n)  # prompts per chunk
    parts = [
        engine.sample(
            model,
            tokenizer,
            prompts[i : i + per],
            n,
            *limits,
            seeds=seeds[i * n : (i + per) * n],
            row_seeded=True,
        )
        for i in range(0, len(prompts), per)
    ]
    return parts[0] if len(parts) == 1 else concat_samples(parts, tokenizer.pad_token_id)


def eval_seeds(seed: int, n_prompts: int, n_samples: int) -> list[int]:
    """Row seeds of an evaluation's B = n_prompts x n_samples rows (a prompt's samples contiguous):
    sample j of prompt p draws from row_seeds(seed, -1 - j, p), keyed by (run seed, prompt id, sample)
    alone, the same at every evaluation and in every arm (common random numbers). Training rows use
    steps >= 0 and fewer than 1,000,003 rows a step, so no evaluation row shares a training row's seed."""
    return [row_seeds(seed, -1 - j, p, 1)[0] for p in range(n_prompts) for j in range(n_samples)]


@dataclass
class Evaluation:
    """An evaluation's metrics (means), and one record per policy sample: eval_samples.jsonl's
    schema (docs/how_it_works.md), where eval/X is the mean of field X over the records."""

    metrics: dict[str, float]
    records: list[dict]
    # the reference's samples: every evaluation of a run draws the same ones (a frozen reference, the
    # same row seeds), so the next takes these (`evaluate`'s reference_samples; train/cadence.py)
    reference_samples: Samples | None = None


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def wins_by_gold(gold: list[float], gold_sft: list[float]) -> list[float]:
    """The policy's win against the reference's sample of the same prompt and draw, per row: 1 when
    its gold reward is higher, 0.5 on a tie, 0 below."""
    return [1.0 if g > s else 0.5 if g == s else 0.0 for g, s in zip(gold, gold_sft, strict=True)]


def by_rows(fn, rows: int | None):
    """`fn` over its (B,) arguments `rows` rows at a time (None: all at once), the parts joined (a tensor's
    along dim 0, a list's in order): a scorer or judge that runs a model held its activations for every row
    of an evaluation at once (thirty-first hunt, case 45: a learned reward model over 36,000 rows, 2.4 GB
    in one forward, its 65 s in native code where no second SIGTERM could stop it)."""
    if rows is None:
        return fn

    def call(*columns):
        parts = [fn(*(c[i : i + rows] for c in columns)) for i in range(0, len(columns[0]), rows)]
        if len(parts) == 1:
            return parts[0]
        return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else [x for p in parts for x in p]

    return call


def model_rows(scorer, rows: int | None) -> int | None:
    """The rows a call of `scorer` (or judge) takes at once in an evaluation: the planned micro-batch where it
    runs a model (held_modules), else all (a user's reward sees the batch whole, as in training)."""
    from align_lab.train.memory import held_modules

    return rows if held_modules(scorer) else None


def per_sample(task, scorer, prefers, mine, sft, kl: list[float], n_samples: int) -> dict[str, list]:
    """The record fields of each of the B policy samples (B,) each, with the reference's sample drawn
    with the same row seed: rewards (`scorer`), gold, verifier, win against the reference (the judge's
    `prefers`), KL, lengths."""
    B = len(mine.responses)
    fields: dict[str, list] = {
        "prompt_id": [i // n_samples for i in range(B)],
        "sample": [i % n_samples for i in range(B)],
        "prompt": list(mine.prompts),
        "response": list(mine.responses),
        "finished": [bool(f) for f in mine.finished],
        "tokens": [int(t) for t in mine.mask.sum(-1).tolist()],
        "response_length": [float(len(r.split())) for r in mine.responses],
        "kl": kl,
        "proxy_reward": scorer(mine.prompts, mine.responses, mine.finished).tolist(),
        "gold_reward": [None] * B,
        "win_rate_vs_sft": [None] * B,
        "pass@1": [None] * B,
        "finished_fraction": [float(bool(f)) for f in mine.finished],
        "sft_response": list(sft.responses),
        "sft_gold_reward": [None] * B,
        "sft_proxy_reward": scorer(sft.prompts, sft.responses, sft.finished).tolist(),
    }
    if task.has_gold_reward:
        fields["gold_reward"] = [
            float(g) for g in task.gold_reward(mine.prompts, mine.responses, mine.finished)
        ]
        fields["sft_gold_reward"] = [
            float(g) for g in task.gold_reward(sft.prompts, sft.responses, sft.finished)
        ]
        fields["win_rate_vs_sft"] = wins_by_gold(fields["gold_reward"], fields["sft_gold_reward"])
    else:
        fields["win_rate_vs_sft"] = [float(w) for w in prefers(mine.prompts, mine.responses, sft.responses)]
    if task.verifiable:
        fields["pass@1"] = right(fields["gold_reward"])  # pass@1 of one sample: 1 right, 0 not
    if mine.turns is not None:  # multi-turn: the whole conversation, turns played and tool calls
        fields |= {"transcript": list(mine.transcripts), "turns": list(mine.turns)}
        fields |= {"tool_calls": list(mine.tool_calls)}
    return fields


def right(scores: list[float]) -> list[float]:
    """1.0 for each score of 1 (a verifier's right answer), 0.0 for the rest: a partial credit (0.5) is
    in eval/gold_reward, not in pass@k, which counts answers right."""
    return [float(s >= 1.0) for s in scores]


def means(fields: dict[str, list]) -> dict[str, float]:
    """eval/X = the mean of the per-sample field X, for the fields that are metrics."""
    named = ["proxy_reward", "kl", "response_length", "finished_fraction", "win_rate_vs_sft"]
    named += [k for k in ("turns", "tool_calls") if k in fields]  # means per episode (multi-turn)
    out = {f"eval/{k}": mean(fields[k]) for k in named}
    out["eval/proxy_reward_sft"] = mean(fields["sft_proxy_reward"])
    if fields["gold_reward"][0] is not None:
        out["eval/gold_reward"] = mean(fields["gold_reward"])
        out["eval/gold_reward_sft"] = mean(fields["sft_gold_reward"])
    return out


EVAL_PHASES = 3  # the policy's samples, the reference's, their KL and scores


def phase_done(progress, what: str) -> None:
    """One phase of an evaluation done, on its progress bar (None: no bar)."""
    if progress is not None:
        progress.set_postfix(done=what)
        progress.update(1)


@torch.no_grad()
def evaluate(
    policy,
    reference,
    tokenizer,
    task,
    scorer,
    engine,
    n_samples: int,
    seed: int,
    judge=None,
    micro_batch_size: int | None = None,
    progress=None,
    sample_rows: int | None = None,
    reference_samples: Samples | None = None,
) -> Evaluation:
    """Samples n per held-out prompt from the policy and the reference, each row with the noise of its
    eval_seeds row seed whatever the engine's seed_per_sample (so the arms of a study, paired by seed,
    see the same noise); the training RNG is untouched. Gold metrics when the task has a gold reward;
    `judge` (default: the run's reward) gives eval/rm_score and the win rates against the reference
    policy and the task's reference responses. `sample_rows`: rows sampled at once (whole prompts; None:
    all), the same draws (each row has its seed) in less memory (train/memory/). `progress`: a bar of
    EVAL_PHASES steps, one a phase. `reference_samples`: an earlier evaluation's draws from this very
    reference (its Evaluation.reference_samples), taken instead of sampling it again."""
    from align_lab.rewards.judge import ScoreJudge

    judge = judge if judge is not None else ScoreJudge(scorer)
    prompts = task.prompts("eval")
    draw = partial(sample_chunks, engine, tokenizer, prompts, n_samples, task, seed, sample_rows)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # for engines that draw from the global generator all the same
        mine = draw(policy)
        phase_done(progress, "policy sampled")
        drawn = reference_samples is None
        if drawn:
            torch.manual_seed(seed)
            reference_samples = draw(reference)
        phase_done(progress, "reference sampled" if drawn else "reference's samples reused")
    kl = sequence_kl(policy, reference, mine, micro_batch_size).tolist()  # (B,)
    scored, judged = model_rows(scorer, micro_batch_size), model_rows(judge, micro_batch_size)
    score, prefers = by_rows(scorer, scored), by_rows(judge.prefers, judged)
    fields = per_sample(task, score, prefers, mine, reference_samples, kl, n_samples)
    phase_done(progress, "scored")
    metrics = means(fields) | {
        "eval/distinct_1": distinct_n(mine.responses, 1),
        "eval/distinct_2": distinct_n(mine.responses, 2),
        "eval/repeated_words": mean([repeated_fraction(r) for r in mine.responses]),
        **source_means(scorer, mine, scored),  # reward=combined: eval/reward_<name>
    }
    if isinstance(judge, ScoreJudge) and judge.scorer is not scorer:
        rm_scores = by_rows(judge.score, judged)(mine.prompts, mine.responses, mine.finished)
        metrics["eval/rm_score"] = rm_scores.mean().item()
    else:
        metrics["eval/rm_score"] = metrics["eval/proxy_reward"]
    references = task.references("eval")
    if references is not None:
        refs = [r for r in references for _ in range(n_samples)]  # (B,), G samples per prompt
        metrics["eval/win_rate_vs_reference"] = mean(prefers(mine.prompts, mine.responses, refs))
    if task.verifiable:
        metrics |= pass_metrics(fields, len(prompts), n_samples)
    return Evaluation(metrics, records(fields), reference_samples)


def pass_metrics(fields: dict[str, list], n_prompts: int, n_samples: int) -> dict[str, float]:
    """eval/pass@k of the policy's samples and eval/pass@k_sft of the reference's (the start of compare's
    curves, its SFT row), for k in rl.pass_ks(n_samples), from each prompt's count of right samples."""
    out = {}
    for suffix, column in (("", "pass@1"), ("_sft", "sft_gold_reward")):
        correct = torch.tensor(right(fields[column])).view(n_prompts, n_samples).sum(-1).long().tolist()
        for k in pass_ks(n_samples):
            out[f"eval/pass@{k}{suffix}"] = mean([pass_at_k(n_samples, c, k) for c in correct])
    return out


def source_means(scorer, samples: Samples, rows: int | None = None) -> dict[str, float]:
    """eval/reward_<name>: each source's own mean score on the policy's samples (reward=combined), `rows`
    rows a call (by_rows)."""
    by_source = getattr(scorer, "by_source", None)
    if by_source is None:
        return {}
    means = by_rows(by_source, rows)(samples.prompts, samples.responses, samples.finished).float().mean(0)
    return {f"eval/reward_{name}": means[k].item() for k, name in enumerate(scorer.names)}


def records(fields: dict[str, list]) -> list[dict]:
    """The columns of `per_sample` as one dict a row, in the schema's key order."""
    keys = list(fields)
    return [dict(zip(keys, row, strict=True)) for row in zip(*fields.values(), strict=True)]
