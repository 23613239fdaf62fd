"""Rollouts with transformers' generate: G contiguous samples per prompt."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from align_lab.models.sequences import encode_prompts, response_mask


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


@dataclass
class HFGenerate:
    """Sampling with `model.generate`; temperature/top_k/top_p as in transformers.

    seed_per_sample: draw each row's sampling noise from its own seed (Gumbel-max over the warped
    logits, an exact sample), so a row's response does not depend on the other rows in its batch.
    Data parallel needs it: a rank then draws the very samples one process would have drawn."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed_per_sample: bool = False

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature}: must be > 0 (use greedy=True for argmax)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p}: must be in (0, 1]")

    @torch.no_grad()
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
    ) -> Samples:
        """n samples of each prompt; `seeds` (one per row) are used when seed_per_sample is on."""
        from transformers import GenerationConfig, LogitsProcessorList

        prompts = [p for p in prompts for _ in range(n)]
        prompt_ids, prompt_attn = encode_prompts(tokenizer, prompts, max_prompt_tokens)
        per_row = not greedy and self.seed_per_sample and seeds is not None
        processors = LogitsProcessorList(self._row_sampling(seeds) if per_row else [])
        sampling = (
            {"do_sample": False}
            if greedy or per_row  # per-row noise is added by a processor; argmax then samples
            else {
                "do_sample": True,
                "temperature": self.temperature,
                "top_k": self.top_k,
                "top_p": self.top_p,
            }
        )
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
        )
        was_training = model.training
        model.eval()
        out = model.generate(
            input_ids=prompt_ids,
            attention_mask=prompt_attn,
            generation_config=config,
            logits_processor=processors,
        )
        model.train(was_training)
        response_ids = out[:, prompt_ids.shape[1] :]  # (B, T')
        if response_ids.shape[1] == 0:
            response_ids = torch.full((len(prompts), 1), tokenizer.eos_token_id)
        mask = response_mask(response_ids, tokenizer.eos_token_id)  # (B, T')
        response_ids = torch.where(mask.bool(), response_ids, tokenizer.pad_token_id)
        finished = (response_ids == tokenizer.eos_token_id).any(-1).tolist()
        responses = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
        return Samples(prompts, prompt_ids, prompt_attn, response_ids, mask, responses, finished)

    def _row_sampling(self, seeds: list[int]) -> list:
        """transformers' warpers in their sampling order, then each row's own Gumbel noise."""
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        warpers = [TemperatureLogitsWarper(self.temperature)] if self.temperature != 1.0 else []
        warpers += [TopKLogitsWarper(self.top_k)] if self.top_k > 0 else []
        warpers += [TopPLogitsWarper(self.top_p)] if self.top_p < 1.0 else []
        return [*warpers, RowGumbelNoise(seeds)]


class RowGumbelNoise:
    """Adds Gumbel(0, 1) noise drawn from a generator per row: argmax(logits + noise) is a sample of
    softmax(logits) (the Gumbel-max trick), and row i's t-th token depends on seeds[i] alone."""

    def __init__(self, seeds: list[int]) -> None:
        self.generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        V = scores.shape[-1]
        u = torch.stack([torch.rand(V, generator=g, device="cpu") for g in self.generators])  # (B, V)
        gumbel = -torch.log(-torch.log(u.clamp(1e-12, 1 - 1e-7)))
        return scores + gumbel.to(scores.device, scores.dtype)
