"""Rollouts with transformers' generate: G contiguous samples per prompt."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from align_lab.models.sequences import encode_prompts, response_mask
from align_lab.rollout.base import Samples, check_sampling

__all__ = ["HFGenerate", "Samples"]


@dataclass
class HFGenerate:
    """Sampling with `model.generate`; temperature/top_k/top_p as in transformers."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p)

    def sync(self, model) -> None:
        """Nothing to push: generate runs the trainer's live model."""

    def close(self) -> None:
        """Nothing held."""

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
    ) -> Samples:
        from transformers import GenerationConfig

        prompts = [p for p in prompts for _ in range(n)]
        prompt_ids, prompt_attn = encode_prompts(tokenizer, prompts, max_prompt_tokens)
        sampling = (
            {"do_sample": False}
            if greedy
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
        out = model.generate(input_ids=prompt_ids, attention_mask=prompt_attn, generation_config=config)
        model.train(was_training)
        response_ids = out[:, prompt_ids.shape[1] :]  # (B, T')
        if response_ids.shape[1] == 0:
            response_ids = torch.full((len(prompts), 1), tokenizer.eos_token_id)
        mask = response_mask(response_ids, tokenizer.eos_token_id)  # (B, T')
        response_ids = torch.where(mask.bool(), response_ids, tokenizer.pad_token_id)
        finished = (response_ids == tokenizer.eos_token_id).any(-1).tolist()
        responses = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
        return Samples(prompts, prompt_ids, prompt_attn, response_ids, mask, responses, finished)
