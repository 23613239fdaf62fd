"""The online loop: rollout -> score -> advantages -> minibatch updates -> log. One loop for every
online algorithm; the only algorithm-dependent branch is whether a critic exists.

A few optional attributes switch on generic extras, each off when an algorithm lacks it:
`greedy_baseline` (ReMax: also score one greedy response per prompt), `critic_pretrain_steps` (the
policy rests while the critic warms up), `entropy_coef` (entropy bonus) and `ptx_coef` (PPO-ptx: NLL
of the task's demonstrations). PPO-max uses the last three."""

from __future__ import annotations

import time
from functools import partial

import torch

from align_lab.algorithms.base import OnlineAlgorithm, Rollout, check
from align_lab.models.sequences import micro_batched, response_logprobs, token_values
from align_lab.rl import kl_penalty, masked_mean, masked_sum
from align_lab.train.common import (
    Context,
    Counters,
    Shuffler,
    TrainConfig,
    end_of_step,
    finish,
    restore,
)
from align_lab.train.distributed import row_seeds
from align_lab.train.sft import nll, nll_backward


def _rows(b) -> tuple:
    """The tensors a forward over responses needs, from Samples or a Rollout."""
    return b.prompt_ids, b.prompt_attn, b.response_ids, b.mask


def _outputs(ctx, algo, temperature: float, entropy: bool, entropy_grad: bool, *rows):
    """This process's forward of `rows`: log-probs (b, T), entropy (b, T) or None, values (b, T) or None."""
    logprobs, ent = response_logprobs(ctx.policy, *rows, temperature, entropy, entropy_grad)
    values = token_values(ctx.critic, *rows) if algo.uses_critic else None
    return logprobs, ent, values


def _loss(algo, batch: Rollout, logprobs, entropy, values, entropy_coef: float):
    """The algorithm's loss of a minibatch, minus the entropy bonus; entropy logged either way."""
    loss, stats = algo.loss(batch, logprobs, values)
    mean_entropy = masked_mean(entropy, batch.mask)
    if entropy_coef > 0:
        loss = loss - entropy_coef * mean_entropy
    stats["train/entropy"] = mean_entropy.item()
    return loss, stats


def _accumulate(ctx, algo, update, batch, mine, own, outputs, temperature, entropy_coef):
    """Gradient accumulation that equals one minibatch for any loss (micro_batch_size): the loss is
    computed once on detached whole-minibatch outputs, its gradient with respect to each row's
    outputs is taken, then each micro-batch's forward is run with a graph and backpropagated against
    those gradients, so the parameter gradients sum to the whole minibatch's."""
    dp = ctx.group
    leaves = [None if o is None else dp.gather(o.detach()).requires_grad_() for o in outputs]  # (B, T)
    if entropy_coef == 0 and leaves[1] is not None:  # logged, not a loss term: no gradient to take
        leaves[1] = leaves[1].detach()
    loss, stats = _loss(algo, batch, *leaves, entropy_coef)
    wrt = [x for x in leaves if x is not None and x.requires_grad]
    grads = dict(zip(map(id, wrt), torch.autograd.grad(loss, wrt, allow_unused=True), strict=True))
    # dL/d(outputs) for this process's rows of the minibatch, (b, T) each, None where no gradient
    mine_grads = [None if x is None else grads.get(id(x)) for x in leaves]
    mine_grads = [None if g is None else g[own] for g in mine_grads]
    size = ctx.train.micro_batch_size
    for i in range(0, len(mine.mask), size):
        rows = [t[i : i + size] for t in _rows(mine)]
        with ctx.backend.autocast():
            out = _outputs(ctx, algo, temperature, entropy_coef > 0, entropy_coef > 0, *rows)
        terms = [(o * g[i : i + size]).sum() for o, g in zip(out, mine_grads, strict=True) if g is not None]
        if terms:
            update.backward(sum(terms))
    return loss.detach(), stats


def validate(algo: OnlineAlgorithm, cfg: TrainConfig) -> int:
    """Checks batch arithmetic before any compute; returns prompts per step."""
    check(
        cfg.rollout_size % algo.group_size == 0,
        "train.rollout_size",
        cfg.rollout_size,
        f"a multiple of algo.group_size={algo.group_size}",
    )
    check(
        cfg.rollout_size % cfg.minibatch_size == 0,
        "train.minibatch_size",
        cfg.minibatch_size,
        f"a divisor of train.rollout_size={cfg.rollout_size}",
    )
    return cfg.rollout_size // algo.group_size


def train_online(algo: OnlineAlgorithm, ctx: Context) -> dict:
    cfg, task, tok = ctx.train, ctx.task, ctx.tokenizer
    n_prompts = validate(algo, cfg)
    temperature = ctx.engine.temperature
    policy_update = ctx.backend.prepare(ctx.policy, algo.lr, ctx)
    prompts = Shuffler(task.prompts("train"), ctx.seed)
    counters = Counters()
    named = {
        **policy_update.checkpointed("policy", "optimizer", "schedule"),
        "prompts": prompts,
        "counters": counters,
    }
    if algo.uses_critic:  # plain torch: the policy's backward of the one loss fills its gradients
        critic_update = ctx.backend.prepare(ctx.critic, algo.critic_lr, ctx, plain=True)
        named |= critic_update.checkpointed("critic", "critic_optimizer", "critic_schedule")
    ptx_coef = getattr(algo, "ptx_coef", 0.0)
    demonstrations = Shuffler(task.demonstrations(), ctx.seed) if ptx_coef > 0 else None
    if demonstrations is not None:
        named["demonstrations"] = demonstrations
    entropy_coef = getattr(algo, "entropy_coef", 0.0)
    greedy_baseline = getattr(algo, "greedy_baseline", False)
    # the reference policy only enters through the KL coefficient (an adaptive one may move off 0)
    uses_reference = getattr(algo, "kl_coef", 1.0) != 0 or getattr(algo, "kl_target", None) is not None
    torch.manual_seed(ctx.seed)
    start = restore(ctx, named, algo)
    bar = ctx.progress(total=cfg.steps, initial=start, desc="policy optimisation")
    final = None
    dp = ctx.group  # data parallel: this process samples, scores and trains its own rows
    for step in range(start, cfg.steps):
        times = {}
        # 0. engines that hold their own copy of the weights (vLLM) take the policy's; HF samples the live one
        t = time.perf_counter()
        ctx.engine.sync(ctx.policy)
        times["time/sync_s"] = time.perf_counter() - t
        # 1. sample G responses for each of this process's share of the step's prompts
        t = time.perf_counter()
        step_prompts = prompts.take(n_prompts)
        mine = dp.shard(n_prompts)
        my_prompts = step_prompts[mine]
        G = algo.group_size
        seeds = row_seeds(ctx.seed, step, mine.start * G, len(my_prompts) * G)
        limits = (task.max_response_tokens, task.max_prompt_tokens)
        s = ctx.engine.sample(ctx.policy, tok, my_prompts, G, *limits, seeds=seeds)
        if greedy_baseline:  # ReMax: one greedy response per prompt as the baseline
            g = ctx.engine.sample(ctx.policy, tok, my_prompts, 1, *limits, greedy=True)
        times["time/rollout_s"] = time.perf_counter() - t
        # 2. score them
        t = time.perf_counter()
        scores = ctx.scorer(s.prompts, s.responses, s.finished)  # (b,)
        baseline_scores = None
        if greedy_baseline:
            greedy_scores = dp.gather(ctx.scorer(g.prompts, g.responses, g.finished))  # (B/G,)
            baseline_scores = greedy_scores.repeat_interleave(G)  # (B,)
            counters["generated_tokens"] += int(dp.gather(g.mask).sum())
            counters["reward_queries"] += len(greedy_scores)
        times["time/score_s"] = time.perf_counter() - t
        # 3. log-probs under the sampling policy and the reference; critic values
        t = time.perf_counter()
        micro = cfg.micro_batch_size
        # the first update sees the weights of this step's rollout: its forward is this one. Without
        # micro-batches and with one minibatch per epoch (one process), keep its graph for the update;
        # with micro-batches, keep its outputs (no graph) for the first minibatch (step 5)
        keep_graph = cfg.minibatch_size == cfg.rollout_size and dp.size == 1 and micro is None
        keep = keep_graph or micro is not None
        with torch.set_grad_enabled(keep_graph), ctx.backend.autocast():
            first_forward = micro_batched(
                partial(_outputs, ctx, algo, temperature, keep, entropy_coef > 0),
                _rows(s),
                micro,
            )  # (b, T) log-probs, entropy, values
        logprobs, values = first_forward[0].detach(), first_forward[2]  # (b, T)
        values = None if values is None else values.detach()
        if micro is not None:  # every process's rows: a minibatch's rows come from the whole rollout
            first_forward = tuple(None if o is None else dp.gather(o.detach()) for o in first_forward)
        first_forward = first_forward if keep else None  # (B, T) each (b = B when the graph is kept)
        with torch.no_grad(), ctx.backend.autocast():
            # no KL term (kl_coef = 0, TRL's GRPO default): no reference forward; every KL is then 0
            ref_logprobs = (
                micro_batched(
                    lambda *rows: response_logprobs(ctx.reference, *rows, temperature)[0], _rows(s), micro
                )
                if uses_reference
                else logprobs
            )  # (b, T)
        times["time/ref_s"] = time.perf_counter() - t
        # every process holds the whole step's rollout (B rows) from here on
        pad = tok.pad_token_id
        rollout = Rollout(
            dp.gather(s.prompt_ids, pad, left=True),
            dp.gather(s.prompt_attn, left=True),
            dp.gather(s.response_ids, pad),
            dp.gather(s.mask),
            dp.gather(logprobs),
            dp.gather(ref_logprobs),
            dp.gather(scores),
            G,
            None if values is None else dp.gather(values),
            baseline_scores=baseline_scores,
        )
        scores, mask = rollout.scores, rollout.mask
        # 4. advantages (and value targets)
        rollout.advantages, rollout.returns = algo.advantages(rollout)
        # 5. a few epochs of minibatch updates (only the critic's while it is pre-trained)
        policy_rests = step < getattr(algo, "critic_pretrain_steps", 0)
        t = time.perf_counter()
        stats: dict[str, list[float]] = {}
        for _ in range(algo.epochs):
            for index in torch.randperm(len(scores)).split(cfg.minibatch_size):
                batch = rollout.rows(index)
                # the model runs on this process's rows; the loss sees the whole minibatch
                own = dp.shard(len(index))
                mine = rollout.rows(index[own])
                outputs = None
                if first_forward is not None:  # the weights have not moved since step 3
                    outputs = tuple(None if o is None else o[index[own]] for o in first_forward)
                    first_forward = None
                policy_update.zero_grad()
                if algo.uses_critic:
                    critic_update.zero_grad()
                if micro is None:
                    with ctx.backend.autocast():
                        if outputs is None:
                            outputs = _outputs(ctx, algo, temperature, True, entropy_coef > 0, *_rows(mine))
                        outputs = [None if o is None else dp.gather(o) for o in outputs]
                    loss, loss_stats = _loss(algo, batch, *outputs, entropy_coef)
                else:
                    if outputs is None:  # detached outputs of the current weights, for the loss's gradient
                        with torch.no_grad(), ctx.backend.autocast():
                            outputs = micro_batched(
                                partial(_outputs, ctx, algo, temperature, True, False),
                                _rows(mine),
                                micro,
                            )
                    args = (ctx, algo, policy_update, batch, mine, own, outputs, temperature, entropy_coef)
                    loss, loss_stats = _accumulate(*args)
                shared = torch.zeros(())  # terms every process computes in full, on the same data
                if demonstrations is not None and not policy_rests:
                    demos = demonstrations.take(cfg.minibatch_size)
                    limits = (task.max_prompt_tokens, task.max_response_tokens)
                    with ctx.backend.autocast():
                        if micro is None:
                            ptx_loss = nll(ctx.policy, tok, demos, *limits)
                        else:  # backpropagated here, micro-batch by micro-batch
                            scale = ptx_coef / dp.size
                            ptx_loss = nll_backward(
                                ctx.policy, tok, demos, *limits, micro, scale, policy_update
                            )
                    shared = ptx_coef * ptx_loss
                    loss_stats["train/ptx_loss"] = ptx_loss.item()
                if micro is None:
                    # gradients are summed over processes, so a shared term counts once
                    policy_update.backward(loss + shared / dp.size)
                loss_stats["train/grad_norm"] = policy_update.step(apply=not policy_rests)
                if algo.uses_critic:
                    critic_update.step()
                loss_stats["train/loss"] = (loss + shared).item()
                for k, v in loss_stats.items():
                    stats.setdefault(k, []).append(v)
                counters["trained_tokens"] += int(batch.mask.sum())
        times["time/train_s"] = time.perf_counter() - t
        # 6. log what a comparison needs
        counters["generated_tokens"] += int(mask.sum())
        counters["reward_queries"] += len(scores)
        kl = masked_sum(kl_penalty(rollout.logprobs, rollout.ref_logprobs, "k1"), mask, dim=1)  # (B,)
        groups = scores.view(-1, G)  # (B/G, G)
        metrics = {
            "train/reward": scores.mean().item(),
            "train/reward_std": scores.std().item() if len(scores) > 1 else 0.0,
            **({"train/kl": kl.mean().item()} if uses_reference else {}),
            "train/response_length": mask.sum(-1).mean().item(),
            "train/zero_std_groups": (groups.std(-1) == 0).float().mean().item() if G > 1 else 0.0,
            **{k: sum(v) / len(v) for k, v in stats.items()},
            **times,
            "time/step_s": sum(times.values()),
            "time/generated_tokens_per_s": int(mask.sum()) / max(times["time/rollout_s"], 1e-9),
            **{f"counters/{k}": v for k, v in counters.items()},
        }
        done = step + 1
        final = end_of_step(ctx, named, algo, done, metrics) or final
        bar.update(1)
        bar.set_postfix(reward=f"{metrics['train/reward']:.3f}", kl=f"{metrics.get('train/kl', 0.0):.3f}")
    bar.close()
    return finish(ctx, named, algo, final)
