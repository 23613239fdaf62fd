"""The Learner: the one object that turns rows into gradients for the online and the pairwise loop, so a
loop reads as numbered steps and every way a forward is split, reused or gathered is decided in one place.

It owns the policy (and critic) and their optimisers, the backend's autocast, the data-parallel group,
micro-batching (train/micro.py's `forward` and `accumulate` stay the mechanism), the reuse of step 3's
forward graph by the first update, the gathers of each process's outputs, and the memory budget's
choice of rows per micro-batch (train/memory/token_budget.py). Two calls: `forward(samples)` (step 3, no
gradient except a kept graph) and `step(rollout, index, loss_fn)` (step 5, one optimiser step);
`update(terms, size)` is the optimiser step itself, which the pairwise loop calls too.

Rows travel as `Rows` (train/micro.py), a typed record, never a tuple indexed by position. The pairwise rows
are a step's pairs, first rows (chosen) then second rows (rejected): its two calls are `pair_forward(rows)`
(step 3) and `pair_step(rows, loss_fn)` (step 4), both at temperature 1 and train.micro_batch_size pairs
a forward."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from align_lab.algorithms.signals import SelfTeacher, VocabularyDivergence, reads
from align_lab.models.scores import token_values
from align_lab.models.sequences import response_logprobs
from align_lab.rl import follow, masked_sum
from align_lab.tasks.view import conversation_tokens, observation_renderer
from align_lab.train.memory import first_update_rows, update_rows
from align_lab.train.micro import Rows, Term, accumulate, rows_of, whole
from align_lab.train.micro import forward as micro_forward
from align_lab.train.sft import nll_term
from align_lab.train.signals import divergence_outputs, step_signals


class Learner:
    """The loops' model side (module docstring). `policy` and `critic` are the backend's
    prepared updaters (train/backend.py); `demonstrations` the ptx term's Shuffler or None."""

    def __init__(self, ctx, algo, policy, critic=None, demonstrations=None):
        self.ctx, self.algo = ctx, algo
        self.policy, self.critic, self.demonstrations = policy, critic, demonstrations

    def outputs(self, prompt_ids, prompt_attn, response_ids, attend, mask):
        """This process's forward of its rows (attending `attend`): log-probs (b, T), entropy (b, T) (a
        graph only when it is a loss term), values (b, T) on the policy's tokens (`mask`) or None, and
        the VocabularyDivergence signal (b, T) (GKD: the teacher's logits beside the policy's, these
        rows only) or None."""
        ctx, algo = self.ctx, self.algo
        entropy_grad = algo.needs.entropy_coef > 0
        rows = (prompt_ids, prompt_attn, response_ids, attend)
        temperature, divergence = ctx.engine.temperature, None
        vocabulary = reads(algo, VocabularyDivergence)
        with ctx.backend.autocast():
            if vocabulary is None:
                logprobs, entropy = response_logprobs(ctx.policy, *rows, temperature, True, entropy_grad)
            else:
                how = (temperature, vocabulary.divergence, entropy_grad)
                logprobs, entropy, divergence = divergence_outputs(ctx.policy, ctx.teacher, rows, *how)
            values = token_values(ctx.critic, *rows) * mask if algo.uses_critic else None
        return logprobs, entropy, values, divergence

    def forward(self, samples, scores: Tensor):
        """3. Log-probs of this process's responses under the sampling policy (b, T), the signals the
        algorithm declares that step 3 computes (train/signals.py: the reference's, the teacher's...;
        (b, ...) each, by name), critic values (b, T) or None; and this forward's outputs for the first
        update, (B, T) each. `scores` (b,): the rows' rewards (SDPO's teacher prompts read them).

        The first update sees the weights of this step's rollout: its forward is this one. When its
        minibatch is these very rows (one minibatch per epoch, one process) and they are one forward,
        the graph is kept for it (one forward per step); else the outputs, for the loss's gradient.
        Without a graph, the rows per forward are the plan's for no-graph forwards (train/memory/)."""
        ctx, algo = self.ctx, self.algo
        cfg, dp, micro = ctx.train, ctx.group, ctx.memory.forward_micro_batch_size
        first_minibatch = cfg.minibatch_size == cfg.rollout_size and dp.size == 1
        rows = Rows.of(samples)
        ptx = algo.needs.ptx_coef > 0  # PPO-ptx: the plan's rows
        keep = first_minibatch and whole(len(samples.mask), first_update_rows(ctx, rows.tensors(), ptx))
        first = micro_forward(self.outputs, rows.tensors(), None if keep else micro, graph=keep)
        logprobs, values = first[0].detach(), (None if first[2] is None else first[2].detach())  # (b, T)
        # every process's rows (a minibatch's rows come from the whole rollout); with a graph, one process
        first = tuple(None if o is None else dp.gather(o) for o in first)  # (B, T) each
        return logprobs, step_signals(self, samples, scores, rows), values, first

    def frozen_logprobs(self, model, rows: tuple) -> Tensor:
        """(b, T) log-probs of this process's responses under a frozen model (the reference, the teacher)
        at the engine's temperature, in the plan's rows per no-graph forward."""
        ctx = self.ctx
        temperature, micro = ctx.engine.temperature, ctx.memory.forward_micro_batch_size
        with ctx.backend.autocast():
            return micro_forward(lambda *r: response_logprobs(model, *r[:4], temperature)[0], rows, micro)

    def _ptx(self) -> list[Term]:
        """PPO-ptx: ptx_coef * NLL of a minibatch of demonstrations, a term every process computes in
        full on the same data (gradients are summed over processes, so it counts 1 / processes on each);
        none without demonstrations."""
        if self.demonstrations is None:
            return []
        ctx, algo = self.ctx, self.algo
        cfg, task = ctx.train, ctx.task
        demos = self.demonstrations.take(cfg.minibatch_size)
        env = getattr(ctx, "env", None)  # conversation demonstrations: observations as the policy reads them
        limits = (task.max_prompt_tokens, conversation_tokens(task, env))
        scale, render = algo.needs.ptx_coef / ctx.group.size, observation_renderer(task, env)
        return [nll_term(ctx.policy, ctx.tokenizer, demos, *limits, scale, ctx.backend, render)]

    def step(self, rollout, index, loss_fn, reuse=None, policy_rests: bool = False):
        """5. One optimiser step on the rollout's rows `index` (B_mb,): the model runs on this process's
        rows, `loss_fn(batch, logprobs, entropy, values)` sees the whole minibatch's outputs (gathered).
        `reuse`: step 3's outputs, (B, T) each, or None. Returns the step's stats and its tokens."""
        ctx, algo, dp = self.ctx, self.algo, self.ctx.group
        kept = reuse is not None and reuse[0].requires_grad  # step 3's graph: this minibatch runs whole
        size, index = (None, index) if kept else update_rows(ctx, rollout, index, algo.needs.ptx_coef > 0)
        batch = rollout.rows(index)
        own = dp.shard(len(index))
        mine = rollout.rows(index[own])
        outputs = None if reuse is None else tuple(None if o is None else o[index[own]] for o in reuse)

        def policy_loss(outputs, rows):  # this process's outputs (b, T) -> the whole minibatch's loss
            return loss_fn(batch, *(None if o is None else dp.gather(o) for o in outputs))

        terms = [Term(self.outputs, Rows.of(mine).tensors(), policy_loss, outputs=outputs)]
        terms += [] if policy_rests else self._ptx()
        [(loss, stats), *ptx], grad_norm = self.update(terms, size, apply=not policy_rests)
        taught = reads(algo, SelfTeacher)
        if taught is not None and taught.follow_rate > 0 and not policy_rests:  # SDPO's EMA teacher
            follow(ctx.teacher, ctx.policy, taught.follow_rate)
        shared = torch.zeros(())
        for ptx_loss, _ in ptx:
            stats["train/ptx_loss"] = ptx_loss.item()
            shared = algo.needs.ptx_coef * ptx_loss
        stats["train/grad_norm"] = grad_norm
        stats["train/loss"] = (loss + shared).item()
        return stats, int(batch.mask.sum())

    def update(self, terms: list[Term], size: int | None, apply: bool = True) -> tuple[list, float]:
        """One optimiser step of the loss made of `terms` at `size` rows a micro-batch (train/micro.py
        `accumulate`: the same gradients whole or micro-batched): each term's (loss, stats) and the
        policy's gradient norm. `apply` False: the policy's step is skipped (the critic's warm-up), its
        gradients still measured. Every loop's update goes through here (online and pairwise)."""
        self.policy.zero_grad()
        if self.critic is not None:
            self.critic.zero_grad()
        results = accumulate(terms, self.policy.backward, size)
        grad_norm = self.policy.step(apply=apply)  # summed over processes, clipped, applied
        if self.critic is not None:
            self.critic.step()
        return results, grad_norm

    def pair_forward(self, rows: Rows) -> tuple[Tensor, Tensor | None]:
        """3. The pairwise loop's forwards without a gradient over this process's 2m `rows`: token log-probs
        under the reference (2m, T), zeros when the loss reads none (SimPO, ORPO: no reference forward);
        with algo.mismatched_kl also the summed log pi - log pi_ref (2m,) of the mismatched rows, row j's
        prompt with row j - 1's response (TRL KTOTrainer's KL batch), else None."""
        ctx, algo = self.ctx, self.algo
        if not algo.uses_reference:  # a pair loss's own switch (algorithms/preference.py)
            return torch.zeros_like(rows.mask), None
        ref_logprobs = self._pair_logprobs(ctx.reference, rows)  # (2m, T)
        if not algo.mismatched_kl:
            return ref_logprobs, None
        # (x_1, y_2m), (x_2, y_1), ...: each prompt with the response of the row before it
        responses = (t.roll(1, 0) for t in (rows.response_ids, rows.attend, rows.mask))
        rotated = Rows(rows.prompt_ids, rows.prompt_attn, *responses)
        policy = self._pair_logprobs(ctx.policy, rotated)  # (2m, T)
        reference = self._pair_logprobs(ctx.reference, rotated)  # (2m, T)
        return ref_logprobs, masked_sum(policy - reference, rotated.mask, dim=1)  # (2m,)

    def pair_step(self, rows: Rows, loss_fn) -> tuple[tuple[Tensor, dict], float]:
        """4. One optimiser step on this process's 2m `rows`: `loss_fn(logprobs)` of the policy's token
        log-probs (2m, T), with a graph, is the step's (loss, stats) (it gathers what it needs from the
        other processes); returns them and the policy's gradient norm."""
        policy = partial(token_logprobs, self.ctx.backend, self.ctx.policy)
        term = Term(policy, rows.tensors(), lambda logprobs, _: loss_fn(logprobs))
        [result], grad_norm = self.update([term], rows_of(self.ctx.train.micro_batch_size, 2))
        return result, grad_norm

    def _pair_logprobs(self, model, rows: Rows) -> Tensor:
        """(2m, T) token log-probs of `rows` under `model`, no gradient, train.micro_batch_size pairs a
        forward."""
        size = rows_of(self.ctx.train.micro_batch_size, 2)  # pairs -> responses
        return micro_forward(partial(token_logprobs, self.ctx.backend, model), rows.tensors(), size)


def token_logprobs(backend, model, prompt_ids, prompt_attn, response_ids, attend, mask) -> Tensor:
    """(b, T) log-probs of the response tokens under `model` at temperature 1 (a pair loss reads the
    model's own distribution, whatever the sampling temperature), attending `attend`."""
    with backend.autocast():
        return response_logprobs(model, prompt_ids, prompt_attn, response_ids, attend)[0]
