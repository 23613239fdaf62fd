"""The rollout-engine contract: what the training loops ask of HF generate, vLLM or any other engine."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from align_lab.value_checks import Diverged


@dataclass
class Samples:
    """Generated responses; the G samples of a prompt are contiguous rows."""

    prompts: list[str]  # (B,)
    prompt_ids: Tensor  # (B, P) left-padded
    prompt_attn: Tensor  # (B, P)
    response_ids: Tensor  # (B, T) padded after EOS
    mask: Tensor  # (B, T) 1 up to and including EOS
    responses: list[str]  # (B,) decoded, without EOS
    finished: list[bool]  # (B,) True when an EOS was generated
    # (B, T) log-prob of each sampled token under the distribution the engine drew it from: softmax of
    # the logits after temperature, top-k and top-p (renormalised over the kept tokens); 0 on padding,
    # and 0 for greedy rows (a certain choice). docs/rollout.md, "Rollout log-probs"
    logprobs: Tensor
    # multi-turn (rollout/turns.py; None for a single turn): response_ids then hold every token after
    # the prompt, policy turns and observations; mask is 1 on policy tokens only, logprobs 0 on
    # observations. attend (B, T): the tokens a forward attends (policy and observation tokens)
    attend: Tensor | None = None
    turn_rewards: Tensor | None = None  # (B, T) each env step's reward at the last token of its turn
    transcripts: list[str] | None = None  # (B,) the whole conversation after the prompt, decoded
    turns: list[int] | None = None  # (B,) policy turns played
    tool_calls: list[int] | None = None  # (B,) turns that called a tool
    # (B,) [(role, text), ...]: the policy turns decoded, the observations before rendering
    conversations: list | None = None


class NonFiniteLogits(Diverged):
    """The sampled model's next-token logits hold a NaN or an infinity: its weights have diverged (a
    torch error about the probability tensor otherwise, from deep inside the sampler)."""

    def __init__(self, message: str = "diverged while sampling (non-finite logits)") -> None:
        super().__init__(message)


def check_finite_logits(logits: Tensor) -> None:
    """Raises NonFiniteLogits unless every row of (B, V) logits can be sampled from: no NaN, no +inf,
    not all -inf. One reduction (a row's max is NaN, inf or -inf in exactly those cases)."""
    if not bool(torch.isfinite(logits.amax(-1)).all()):
        raise NonFiniteLogits()


class RolloutEngine(Protocol):
    """Samples responses from a trainer's model. Token ids and masks come in the trainer tokenizer's
    terms, so the loops compute log-probs with the trainer model whatever the engine; the engine's own
    log-probs of its samples (Samples.logprobs) measure how far its distribution is from the trainer's."""

    temperature: float  # the loops divide logits by it for log-probs
    # whether a thread may sample while the trainer trains, drawing what sampling in the loop draws
    # (train.async_rollouts; an engine without it: no)
    samples_in_background: bool
    samples_adapters: bool  # whether it samples a peft LoRA policy (lora.enabled) as the trainer holds it

    def sample(
        self,
        model,
        tokenizer,
        prompts: list[str],
        n: int,
        max_new_tokens: int,
        max_prompt_tokens: int,
        greedy: bool = False,
        seeds: list[int] | None = None,
        row_seeded: bool = False,
    ) -> Samples:
        """n samples of each prompt from `model` as its weights are now; `seeds`, one per row, for
        engines that can draw each row from its own seed (data parallel needs it), which they do with
        seed_per_sample on, or always with row_seeded (evaluation: common random numbers)."""
        ...

    def sync(self, model) -> None:
        """Pushes `model`'s current weights into the engine (a no-op where the engine reads the live
        model). The loop calls it once per step so the time shows as `time/sync_s`."""
        ...

    def close(self) -> None:
        """Releases what the engine holds (processes, memory, temporary files); at the end of a run."""
        ...

    def weights_dtype(self, policy) -> torch.dtype:
        """The dtype of the weights it reads as it samples `policy` (its own copy's, where it holds one):
        what a decode step reads, for perf/rollout_mbu (train/roofline.py). Optional: `sampled_dtype`."""
        ...


def sampled_dtype(engine, policy) -> torch.dtype:
    """engine.weights_dtype(policy); the policy's own dtype for an engine that does not say."""
    says = getattr(engine, "weights_dtype", None)
    return says(policy) if callable(says) else next(policy.parameters()).dtype


def weights_version(model) -> tuple[int, int]:
    """Changes whenever a parameter of `model` is modified in place (optimizer step, load_state_dict)."""
    return id(model), sum(p._version for p in model.parameters())


COLD = 0.05  # a sampling temperature below it: all but greedy, said at admission


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    """Sampling settings every engine shares; greedy decoding is asked for per call, not by temperature."""
    if temperature <= 0:  # no greedy key: "use greedy=True" named one (thirty-first hunt, case 43)
        raise ValueError(f"temperature={temperature}: must be > 0 (top_k=1 samples the most likely token)")
    if temperature < COLD:  # 1e-9 trained nothing, and the line blamed the rewards or algo.lr (case 44)
        logging.getLogger("align_lab").warning(
            f"align_lab: warning: rollout.temperature={temperature:g} samples the most likely token all but "
            "always: its log-probs are all but 0, so the updates get all but no gradient and the policy "
            f"hardly moves (at least {COLD:g}; 0.3 to 1 as usual)"
        )
    if top_k < 0:
        raise ValueError(f"top_k={top_k}: must be >= 0 (0: no top-k filtering)")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p}: must be in (0, 1]")
