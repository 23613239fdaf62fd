"""Rollouts from a transformers causal LM: G contiguous samples per prompt, from the live policy."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from align_lab.models.sequences import encode_prompts, response_mask
from align_lab.rollout.base import Samples, check_sampling
from align_lab.rollout.sampling import RowGumbelNoise, partitioned_across_processes, sample_with_cache, warp

__all__ = ["HFGenerate", "Samples"]


@dataclass
class HFGenerate:
    """Sampling from the live policy; temperature/top_k/top_p as in transformers' generate.

    By default the tokens come from align_lab's KV-cache loop (rollout/sampling.py), which draws the
    same tokens as `model.generate` for one seed at a fraction of its per-token overhead;
    use_generate=true calls `model.generate` itself (for model classes the loop does not cover).

    seed_per_sample: draw each row's sampling noise from its own seed (Gumbel-max over the warped
    logits, an exact sample), so a row's response does not depend on the other rows in its batch.
    Data parallel needs it: a process then draws the very samples one process would have drawn."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    use_generate: bool = False
    seed_per_sample: bool = False

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
        seeds: list[int] | None = None,
    ) -> Samples:
        """n samples of each prompt; `seeds` (one per row) are used when seed_per_sample is on."""
        prompts = [p for p in prompts for _ in range(n)]
        prompt_ids, prompt_attn = encode_prompts(tokenizer, prompts, max_prompt_tokens)
        was_training = model.training
        model.eval()
        noise = RowGumbelNoise(seeds) if self.seed_per_sample and seeds is not None and not greedy else None
        generate = self._generate if self.use_generate else self._sample
        response_ids = generate(model, tokenizer, prompt_ids, prompt_attn, max_new_tokens, greedy, noise)
        model.train(was_training)
        if response_ids.shape[1] == 0:
            response_ids = torch.full((len(prompts), 1), tokenizer.eos_token_id)
        mask = response_mask(response_ids, tokenizer.eos_token_id)  # (B, T')
        response_ids = torch.where(mask.bool(), response_ids, tokenizer.pad_token_id)
        finished = (response_ids == tokenizer.eos_token_id).any(-1).tolist()
        responses = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
        return Samples(prompts, prompt_ids, prompt_attn, response_ids, mask, responses, finished)

    def _sample(self, model, tokenizer, prompt_ids, prompt_attn, max_new_tokens, greedy, noise) -> Tensor:
        return sample_with_cache(
            model,
            prompt_ids,
            prompt_attn,
            max_new_tokens,
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
            self.temperature,
            self.top_k,
            self.top_p,
            greedy,
            noise,
        )

    def _generate(self, model, tokenizer, prompt_ids, prompt_attn, max_new_tokens, greedy, noise) -> Tensor:
        from transformers import GenerationConfig, LogitsProcessorList

        if noise is not None:  # warp, add each row's noise, then generate's argmax is the sample
            warpers = lambda _, scores: warp(scores, self.temperature, self.top_k, self.top_p)  # noqa: E731
            processors = LogitsProcessorList([warpers, noise])
            greedy = True
        else:
            processors = LogitsProcessorList()
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
        out = model.generate(
            input_ids=prompt_ids,
            attention_mask=prompt_attn,
            generation_config=config,
            logits_processor=processors,
            synced_gpus=partitioned_across_processes(model),  # ZeRO-3: every process forwards in step
        )
        return out[:, prompt_ids.shape[1] :]  # (B, T')
