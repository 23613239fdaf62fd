"""Held-out evaluation: gold and proxy reward, KL to the reference, judged win rates, length, diversity."""

from __future__ import annotations

import math

import torch

from align_lab.models.sequences import response_logprobs
from align_lab.rl import kl_penalty, masked_sum
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
    """Sum over response tokens of k1 log(pi/pi_ref) on the policy's own samples, (B,)."""
    args = (samples.prompt_ids, samples.prompt_attn, samples.response_ids, samples.mask)
    logprobs = micro_forward(lambda *r: response_logprobs(policy, *r)[0], args, micro_batch_size)  # (B, T)
    ref_logprobs = micro_forward(lambda *r: response_logprobs(reference, *r)[0], args, micro_batch_size)
    return masked_sum(kl_penalty(logprobs, ref_logprobs, "k1"), samples.mask, dim=1)


def gold_metrics(gold: torch.Tensor, gold_sft: torch.Tensor) -> dict:
    """Mean gold reward of the policy's and the reference's samples (B,) each, and the policy's win rate
    against the reference's sample of the same prompt and draw (ties count half)."""
    wins = (gold > gold_sft).float() + 0.5 * (gold == gold_sft).float()  # (B,)
    return {
        "eval/gold_reward": gold.mean().item(),
        "eval/gold_reward_sft": gold_sft.mean().item(),
        "eval/win_rate_vs_sft": wins.mean().item(),
    }


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
) -> dict:
    """Samples n per held-out prompt from the policy and the reference; the training RNG is untouched.
    Gold metrics when the task has a gold reward; `judge` (default: the run's reward) gives
    eval/rm_score and the win rates against the reference policy and the task's reference responses."""
    from align_lab.rewards.judge import ScoreJudge

    judge = judge if judge is not None else ScoreJudge(scorer)
    prompts = task.prompts("eval")
    limits = (task.max_response_tokens, task.max_prompt_tokens)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        mine = engine.sample(policy, tokenizer, prompts, n_samples, *limits)
        torch.manual_seed(seed)  # the reference's samples do not depend on the policy's
        sft = engine.sample(reference, tokenizer, prompts, n_samples, *limits)
    proxy = scorer(mine.prompts, mine.responses, mine.finished)  # (B,)
    metrics = {
        "eval/proxy_reward": proxy.mean().item(),
        "eval/proxy_reward_sft": scorer(sft.prompts, sft.responses, sft.finished).mean().item(),
        "eval/kl": sequence_kl(policy, reference, mine, micro_batch_size).mean().item(),
        "eval/response_length": sum(len(r.split()) for r in mine.responses) / len(mine.responses),
        "eval/finished_fraction": sum(mine.finished) / len(mine.finished),
        "eval/distinct_1": distinct_n(mine.responses, 1),
        "eval/distinct_2": distinct_n(mine.responses, 2),
        "eval/repeated_words": sum(repeated_fraction(r) for r in mine.responses) / len(mine.responses),
    }
    if task.has_gold_reward:
        gold = torch.tensor(task.gold_reward(mine.prompts, mine.responses, mine.finished))  # (B,)
        metrics |= gold_metrics(
            gold, torch.tensor(task.gold_reward(sft.prompts, sft.responses, sft.finished))
        )
    else:
        wins = judge.prefers(mine.prompts, mine.responses, sft.responses)
        metrics["eval/win_rate_vs_sft"] = sum(wins) / len(wins)
    if isinstance(judge, ScoreJudge) and judge.scorer is not scorer:
        metrics["eval/rm_score"] = judge.score(mine.prompts, mine.responses, mine.finished).mean().item()
    else:
        metrics["eval/rm_score"] = metrics["eval/proxy_reward"]
    references = task.references("eval")
    if references is not None:
        refs = [r for r in references for _ in range(n_samples)]  # (B,), G samples per prompt
        wins = judge.prefers(mine.prompts, mine.responses, refs)
        metrics["eval/win_rate_vs_reference"] = sum(wins) / len(wins)
    if task.verifiable:
        correct = gold.view(len(prompts), n_samples).sum(-1).long().tolist()  # (prompts,)
        for k in sorted({1, n_samples}):
            metrics[f"eval/pass@{k}"] = sum(pass_at_k(n_samples, c, k) for c in correct) / len(correct)
    return metrics
