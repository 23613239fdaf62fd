"""The Learner: the one object that turns rows into gradients for the online and the pairwise loop, so a
loop reads as numbered steps and every way a forward is split, reused or gathered is decided in one place.

It is built with what it runs (`Learner.of`): the run's models (train/context.py `Models`), the engine
whose temperature its log-probs take, the backend's autocast, the data-parallel group, the memory plan
(train/memory/token_budget.py chooses the rows per micro-batch) and the policy's (and critic's)
optimisers. It owns micro-batching (train/micro.py's `forward` and `accumulate` stay the mechanism), the
reuse of step 3's forward graph by the first update, the gathers of each process's outputs, and the loss
the update takes (the algorithm's, minus the entropy bonus). Two calls: `forward(samples)` (step 3, no
gradient except a kept graph) and `step(rollout, index)` (step 5, one optimiser step).

Rows travel as `Rows` (train/micro.py), never a tuple indexed by position. The pairwise rows are a step's
pairs, chosen rows then rejected rows: `pair_logprobs(model, rows)` (step 3's, train/pairwise.py) and
`pair_step(rows, loss_fn)` (step 4), at temperature 1 and train.micro_batch_size pairs a forward."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import Tensor

from align_lab.algorithms.signals import VOCABULARY_DIVERGENCE, SelfTeacher, VocabularyDivergence, reads
from align_lab.models.scores import token_values
from align_lab.models.sequences import response_logprobs
from align_lab.rl import follow, masked_mean
from align_lab.train.backend import Backend
from align_lab.train.common import TrainConfig
from align_lab.train.context import Models, View
from align_lab.train.distributed import Group
from align_lab.train.ledger import Ledger
from align_lab.train.memory import Planned, first_update_rows, update_rows
from align_lab.train.micro import Rows, Term, accumulate, rows_of, whole
from align_lab.train.micro import forward as micro_forward
from align_lab.train.signals import divergence_outputs, step_signals


@dataclass
class Learner:
    """The loops' model side (module docstring), built with what it runs (`of`): the models, the engine
    whose temperature its log-probs take, the backend, the data-parallel group, the memory plan and the
    Ledger that records the rows it ran; `policy` and `critic` are the backend's prepared updaters
    (train/backend.py), `demonstrations` the ptx term's maker or None."""

    algo: object
    models: Models
    engine: object  # the rollout engine: its temperature is the one the log-probs the loss reads take
    backend: Backend
    group: Group
    train: TrainConfig
    memory: Planned
    ledger: Ledger
    view: View  # the task as the policy reads it (SDPO's teacher prompts, the ptx term's demonstrations)
    policy: object = None
    critic: object = None
    demonstrations: object = None

    @classmethod
    def of(cls, ctx, algo) -> Learner:
        """The Learner of `algo` over the Context's models and engine, its policy's updater prepared."""
        how = (ctx.backend, ctx.group, ctx.train, ctx.memory, ctx.ledger)
        learner = cls(algo, ctx.models, ctx.engine, *how, View(ctx.task, ctx.tokenizer, ctx.env))
        learner.policy = ctx.backend.prepare(ctx.models.policy, algo.lr, ctx)
        return learner

    def outputs(self, prompt_ids, prompt_attn, response_ids, attend, mask):
        """This process's forward of its rows (attending `attend`): log-probs (b, T), entropy (b, T) (a
        graph only when it is a loss term), values (b, T) on the policy's tokens (`mask`) or None, and
        the VocabularyDivergence signal (b, T) (GKD: the teacher's logits beside the policy's, these
        rows only) or None."""
        algo, models = self.algo, self.models
        entropy_grad = algo.needs.entropy_coef > 0
        rows = (prompt_ids, prompt_attn, response_ids, attend)
        temperature, divergence = self.engine.temperature, None
        vocabulary = reads(algo, VocabularyDivergence)
        with self.backend.autocast():
            if vocabulary is None:
                logprobs, entropy = response_logprobs(models.policy, *rows, temperature, True, entropy_grad)
            else:
                how = (temperature, vocabulary.divergence, entropy_grad)
                logprobs, entropy, divergence = divergence_outputs(models.policy, models.teacher, rows, *how)
            values = token_values(models.critic, *rows) * mask if algo.uses_critic else None
        return logprobs, entropy, values, divergence

    def forward(self, samples, scores: Tensor):
        """3. Log-probs of this process's responses under the sampling policy (b, T), the signals the
        algorithm declares that step 3 computes (train/signals.py: the reference's, the teacher's...;
        (b, ...) each, by name), critic values (b, T) or None; and this forward's outputs for the first
        update, (B, T) each. `scores` (b,): the rows' rewards (SDPO's teacher prompts read them).

        The first update sees the weights of this step's rollout: its forward is this one. When its
        minibatch is these very rows (one minibatch per epoch, one process) and they are one forward,
        the graph is kept for it (one forward per step); else the outputs, for the loss's gradient.
        Without a graph, the rows per forward are the plan's for no-graph forwards (train/memory/). The
        frozen models' forwards (the signals) run first: a kept graph is held beside none of them."""
        algo, cfg, dp, micro = self.algo, self.train, self.group, self.memory.forward_micro_batch_size
        first_minibatch = cfg.minibatch_size == cfg.rollout_size and dp.size == 1
        rows = Rows.of(samples)
        ptx = algo.needs.ptx_coef > 0  # PPO-ptx: the plan's rows
        keep = first_minibatch and whole(len(samples.mask), first_update_rows(self, rows.tensors(), ptx))
        signals = step_signals(self, samples, scores, rows)  # before the graph (hardware.offload_reference)
        first = micro_forward(self.outputs, rows.tensors(), None if keep else micro, graph=keep)
        logprobs, values = first[0].detach(), (None if first[2] is None else first[2].detach())  # (b, T)
        # every process's rows (a minibatch's rows come from the whole rollout); with a graph, one process
        first = tuple(None if o is None else dp.gather(o) for o in first)  # (B, T) each
        return logprobs, signals, values, first

    def frozen_logprobs(self, model, rows: tuple) -> Tensor:
        """(b, T) log-probs of this process's responses under a frozen model (the reference, the teacher)
        at the engine's temperature, in the plan's rows per no-graph forward."""
        temperature, micro = self.engine.temperature, self.memory.forward_micro_batch_size
        with self.backend.autocast():
            return micro_forward(lambda *r: response_logprobs(model, *r[:4], temperature)[0], rows, micro)

    def step(self, rollout, index, reuse=None, policy_rests: bool = False):
        """5. One optimiser step on the rollout's rows `index` (B_mb,): the model runs on this process's
        rows, the loss (`loss`) sees the whole minibatch's outputs (gathered). `reuse`: step 3's outputs,
        (B, T) each, or None. Returns the step's stats and its tokens."""
        algo, dp = self.algo, self.group
        kept = reuse is not None and reuse[0].requires_grad  # step 3's graph: this minibatch runs whole
        size, index = (None, index) if kept else update_rows(self, rollout, index, algo.needs.ptx_coef > 0)
        batch = rollout.rows(index)
        own = dp.shard(len(index))
        mine = rollout.rows(index[own])
        outputs = None if reuse is None else tuple(None if o is None else o[index[own]] for o in reuse)
        terms = [Term(self.outputs, Rows.of(mine).tensors(), partial(self.loss, batch), outputs=outputs)]
        # PPO-ptx: a term of the task's demonstrations (train/online_setup.py ptx_term), none without
        terms += [] if policy_rests or self.demonstrations is None else [self.demonstrations()]
        self._zero_grad()  # update()'s three parts, called here: the loss sits 8 calls below the command
        [(loss, stats), *ptx] = accumulate(terms, self.policy.backward, size)
        grad_norm = self._apply(apply=not policy_rests)
        taught = reads(algo, SelfTeacher)
        if taught is not None and taught.follow_rate > 0 and not policy_rests:  # SDPO's EMA teacher
            follow(self.models.teacher, self.models.policy, taught.follow_rate)
        shared = torch.zeros(())
        for ptx_loss, _ in ptx:
            stats["train/ptx_loss"] = ptx_loss.item()
            shared = algo.needs.ptx_coef * ptx_loss
        stats["train/grad_norm"] = grad_norm
        stats["train/loss"] = (loss + shared).item()
        return stats, int(batch.mask.sum())

    def loss(self, batch, outputs: tuple, rows=None) -> tuple[Tensor, dict]:
        """The algorithm's loss of the minibatch `batch` from this process's `outputs` (b, T) each,
        gathered into the whole minibatch's, minus the entropy bonus; entropy logged either way. The
        last output is the VocabularyDivergence signal (GKD), with the policy's graph, or None."""
        logprobs, entropy, values, divergence = (None if o is None else self.group.gather(o) for o in outputs)
        if divergence is not None:
            batch = replace(batch, signals={**batch.signals, VOCABULARY_DIVERGENCE: divergence})
        loss, stats = self.algo.loss(batch, logprobs, values)
        mean_entropy = masked_mean(entropy, batch.mask)
        entropy_coef = self.algo.needs.entropy_coef
        if entropy_coef > 0:
            loss = loss - entropy_coef * mean_entropy
        stats["train/entropy"] = mean_entropy.item()
        return loss, stats

    def update(self, terms: list[Term], size: int | None, apply: bool = True) -> tuple[list, float]:
        """One optimiser step of the loss made of `terms` at `size` rows a micro-batch (train/micro.py
        `accumulate`: the same gradients whole or micro-batched): each term's (loss, stats) and the
        policy's gradient norm. `apply` False: the policy's step is skipped (the critic's warm-up), its
        gradients still measured. The pairwise loop's update, and the online loop's (`step`) in parts."""
        self._zero_grad()
        results = accumulate(terms, self.policy.backward, size)
        return results, self._apply(apply)

    def _zero_grad(self) -> None:
        self.policy.zero_grad()
        if self.critic is not None:
            self.critic.zero_grad()

    def _apply(self, apply: bool = True) -> float:
        """The optimisers' steps; the policy's gradient norm (summed over processes, clipped, applied)."""
        grad_norm = self.policy.step(apply=apply)
        if self.critic is not None:
            self.critic.step()
        return grad_norm

    def pair_step(self, rows: Rows, loss_fn) -> tuple[tuple[Tensor, dict], float]:
        """4. One optimiser step on this process's 2m `rows`: `loss_fn(logprobs)` of the policy's token
        log-probs (2m, T), with a graph, is the step's (loss, stats) (it gathers what it needs from the
        other processes); returns them and the policy's gradient norm."""
        policy = partial(token_logprobs, self.backend, self.models.policy)
        term = Term(policy, rows.tensors(), lambda logprobs, _: loss_fn(logprobs))
        [result], grad_norm = self.update([term], rows_of(self.train.micro_batch_size, 2))
        return result, grad_norm

    def pair_logprobs(self, model, rows: Rows) -> Tensor:
        """(2m, T) token log-probs of the pairwise `rows` under a frozen `model`, no gradient,
        train.micro_batch_size pairs a forward (the pairwise loop's step 3, train/pairwise.py)."""
        size = rows_of(self.train.micro_batch_size, 2)  # pairs -> responses
        return micro_forward(partial(token_logprobs, self.backend, model), rows.tensors(), size)


def token_logprobs(backend, model, prompt_ids, prompt_attn, response_ids, attend, mask) -> Tensor:
    """(b, T) log-probs of the response tokens under `model` at temperature 1 (a pair loss reads the
    model's own distribution, whatever the sampling temperature), attending `attend`."""
    with backend.autocast():
        return response_logprobs(model, prompt_ids, prompt_attn, response_ids, attend)[0]
