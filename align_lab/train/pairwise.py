"""The pairwise loop (DPO family): minibatches of preference pairs -> loss on sequence log-probs."""

from __future__ import annotations

import time

import torch

from align_lab.algorithms.preference import PairwiseAlgorithm
from align_lab.models.sequences import encode_prompts, encode_responses, response_logits
from align_lab.rl import logprobs_from_logits, sequence_logprobs
from align_lab.train.common import (
    Context,
    Counters,
    Shuffler,
    checkpoint,
    due,
    make_optimizer,
    restore,
)
from align_lab.train.evaluate import evaluate


def pair_logps(model, tokenizer, task, pairs, average: bool):
    """Summed (or averaged) response log-probs of chosen and rejected, (N,) each."""
    prompt_ids, prompt_attn = encode_prompts(tokenizer, [p.prompt for p in pairs] * 2, task.max_prompt_tokens)
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    response_ids, mask = encode_responses(
        tokenizer, responses, [True] * len(responses), task.max_response_tokens
    )
    logits = response_logits(model, prompt_ids, prompt_attn, response_ids, mask)  # (2N, T, V)
    logps = sequence_logprobs(logprobs_from_logits(logits, response_ids), mask, average)  # (2N,)
    return logps[: len(pairs)], logps[len(pairs) :], int(mask.sum())


def train_pairwise(algo: PairwiseAlgorithm, ctx: Context) -> dict:
    cfg, task, tok = ctx.train, ctx.task, ctx.tokenizer
    optimizer, schedule = make_optimizer(ctx.policy, algo.lr, cfg.warmup_steps)
    pairs = Shuffler(ctx.preferences, ctx.seed)
    counters = Counters()
    named = {
        "policy": ctx.policy,
        "optimizer": optimizer,
        "schedule": schedule,
        "pairs": pairs,
        "counters": counters,
    }
    torch.manual_seed(ctx.seed)
    start = restore(ctx, named, algo)
    average = getattr(algo, "length_normalize", False)
    bar = ctx.progress(total=cfg.steps, initial=start, desc="preference optimisation")
    for step in range(start, cfg.steps):
        t = time.perf_counter()
        # 1. a minibatch of pairs, their log-probs under the reference and the policy
        batch = pairs.take(cfg.minibatch_size)
        with torch.no_grad():
            ref_chosen, ref_rejected, _ = pair_logps(ctx.reference, tok, task, batch, average)
        chosen, rejected, n_tokens = pair_logps(ctx.policy, tok, task, batch, average)
        # 2. loss and update
        loss, stats = algo.pair_loss(chosen, rejected, ref_chosen, ref_rejected)
        optimizer.zero_grad()
        loss.backward()
        stats["train/grad_norm"] = torch.nn.utils.clip_grad_norm_(
            ctx.policy.parameters(), cfg.max_grad_norm
        ).item()
        optimizer.step()
        schedule.step()
        counters["trained_tokens"] += n_tokens
        # 3. log
        done = step + 1
        metrics = {
            "train/loss": loss.item(),
            **stats,
            "time/train_s": time.perf_counter() - t,
            **{f"counters/{k}": v for k, v in counters.items()},
        }
        if done == cfg.steps or due(done, cfg.eval_every, cfg.steps):
            final = evaluate(
                ctx.policy,
                ctx.reference,
                tok,
                task,
                ctx.scorer,
                ctx.engine,
                cfg.eval_samples,
                ctx.seed,
            )
            metrics |= final
        ctx.tracker.log(metrics, step=done)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", margin=f"{stats['train/reward_margin']:.3f}")
        if due(done, cfg.checkpoint_every, cfg.steps):
            checkpoint(ctx, named, algo, done)
    bar.close()
    checkpoint(ctx, named, algo, cfg.steps)
    if start == cfg.steps:  # a finished run started again: evaluate (seeded) without training
        final = evaluate(
            ctx.policy, ctx.reference, tok, task, ctx.scorer, ctx.engine, cfg.eval_samples, ctx.seed
        )
    return final
