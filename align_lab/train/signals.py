"""The producers of the signals (algorithms/signals.py) the Learner computes: step 3's, the responses
scored by a frozen model (the reference, the teacher, a self-teacher under its own prompts), and the
update's per-minibatch divergence over the vocabulary. One function a signal; the Learner calls them for
whatever the algorithm declares, so a new family that reads an existing signal edits nothing here."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from align_lab.algorithms.signals import (
    REFERENCE,
    TEACHER,
    TEACHER_INFORMED,
    Reference,
    SelfTeacher,
    TeacherLogprobs,
)
from align_lab.models.sequences import response_logits
from align_lab.rl import selective_entropy, selective_logprobs


def left_padded(tokenizer, texts: list[str], limit: int | None) -> tuple[Tensor, Tensor]:
    """Left-padded ids and attention mask (b, P) of `texts`, each cut to its last `limit` tokens (None:
    whole), as TRL cuts a teacher's reprompt (max_reprompt_len)."""
    enc = [tokenizer(t)["input_ids"] for t in texts]
    enc = [e if limit is None else e[-limit:] for e in enc]
    width = max(len(e) for e in enc)
    ids = torch.full((len(enc), width), tokenizer.pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(enc), width), dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, width - len(e) :] = torch.tensor(e, dtype=torch.long)
        attn[i, width - len(e) :] = 1
    return ids, attn


def reference(learner, signal: Reference, samples, scores: Tensor, rows) -> dict[str, Tensor]:
    """signals["reference"] (b, T): the responses under the frozen reference."""
    with learner.models.reference_in_memory() as model:  # out of it after (hardware.offload_reference)
        return {REFERENCE: learner.frozen_logprobs(model, rows.tensors())}


def teacher(learner, signal: TeacherLogprobs, samples, scores: Tensor, rows) -> dict[str, Tensor]:
    """signals["teacher"] (b, T): the responses under the distillation's frozen teacher."""
    return {TEACHER: learner.frozen_logprobs(learner.models.teacher, rows.tensors())}


def self_teacher(learner, signal: SelfTeacher, samples, scores: Tensor, rows) -> dict[str, Tensor]:
    """SDPO: signals["teacher"] (b, T), the responses scored by the self-teacher (models.teacher, the EMA
    or starting copy; None: the live policy) under each row's teacher prompt (algo.teacher_prompts, which
    read the rows' `scores`), rendered as the policy's prompts are, the prompt keeping its last tokens
    where the model's positions run out; signals["teacher_informed"] (b,) which rows it taught."""
    view, models = learner.view, learner.models
    raw, render = getattr(view.task, "raw", str), getattr(view.task, "render", str)
    prompts = [raw(p) for p in samples.prompts]
    texts, informed = learner.algo.teacher_prompts(prompts, samples.responses, scores.tolist())
    room = getattr(models.policy.config, "max_position_embeddings", None)
    limit = None if room is None else room - samples.response_ids.shape[1]
    ids, attn = left_padded(view.tokenizer, [render(t) for t in texts], limit)  # (b, P')
    device = samples.prompt_ids.device
    taught = replace(rows, prompt_ids=ids.to(device), prompt_attn=attn.to(device))
    model = models.policy if models.teacher is None else models.teacher
    logprobs = learner.frozen_logprobs(model, taught.tensors())  # (b, T)
    return {TEACHER: logprobs, TEACHER_INFORMED: torch.tensor(informed, device=device)}


# step 3's producers, by the signal's type; the others are made where their inputs are (module docstring)
STEP_3 = {Reference: reference, TeacherLogprobs: teacher, SelfTeacher: self_teacher}


def step_signals(learner, samples, scores: Tensor, rows) -> dict[str, Tensor]:
    """3. This process's signals (b, ...) of the algorithm's declared step-3 signals, in its order."""
    out: dict[str, Tensor] = {}
    for signal in learner.algo.signals:
        produce = STEP_3.get(type(signal))
        if produce is not None:
            out |= produce(learner, signal, samples, scores, rows)
    return out


def divergence_outputs(
    model, teacher, rows: tuple, temperature: float, divergence, entropy_grad
) -> tuple[Tensor, Tensor, Tensor]:
    """response_logprobs's log-probs and entropy (b, T) each, and `divergence(student_logits,
    teacher_logits)` (b, T) over the whole vocabulary, the teacher's logits taken without a graph (GKD).
    `rows`: (prompt_ids, prompt_attn, response_ids, attend).

    One forward of each model over these rows: the caller's micro-batch bounds the two (b, T, V) logits,
    which are never held for more rows than that (no packing: the divergence reads every position)."""
    logits = response_logits(model, *rows)  # (b, T, V)
    with torch.no_grad():
        teacher_logits = response_logits(teacher, *rows)  # (b, T, V)
    logprobs = selective_logprobs(logits, rows[2], temperature)  # (b, T)
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = selective_entropy(logits, temperature)  # (b, T)
    return logprobs, entropy, divergence(logits, teacher_logits)
