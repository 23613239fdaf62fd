"""Rollouts from a transformers causal LM: G contiguous samples per prompt, from the live policy."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from align_lab.models.sequences import encode_prompts, is_partitioned, left_pad, response_mask
from align_lab.rollout.base import Samples, check_finite_logits, check_sampling, weights_version
from align_lab.rollout.busy import BusyMeter, check_threads, sampling_threads
from align_lab.rollout.copies import gather_into, low_precision_copy, whole_copy
from align_lab.rollout.decode import hidden_size
from align_lab.rollout.decode_matmul import DECODE_MATMULS, decode_ways
from align_lab.rollout.sampling import (
    SAMPLERS,
    RowNoise,
    partitioned_across_processes,
    sample_with_cache,
    sampled_logprobs,
    warp,
)
from align_lab.value_checks import canonical_dtype, check

__all__ = ["HFGenerate", "Samples"]


@dataclass
class HFGenerate:
    """Sampling from the live policy; temperature/top_k/top_p as in transformers' generate.

    By default the tokens come from align_lab's KV-cache loop (rollout/sampling.py), at a fraction of
    `model.generate`'s per-token overhead; use_generate=true calls `model.generate` itself (for model
    classes the loop does not cover). sampler: how the loop draws a token from the warped
    probabilities: "inverse_cdf" (the default: one uniform a row against the cumulative
    probabilities) or "multinomial" (generate's torch.multinomial, V exponential draws a row: the
    very tokens `model.generate` draws for one seed). The same distribution either way; generate
    itself always draws with its own multinomial. decode_matmul: the loop's Llama/Qwen2 decode step
    multiplies as the forward does ("exact": its logits bit for bit the forward's) or as W @ h^T
    ("fast": the same products summed in another order; the weights aligned first, since its bits
    depend on where they lie) or with oneDNN on packed weights ("packed"); "auto" (the default):
    packed on an AMD CPU with AVX-512, fast on another AMD CPU, exact elsewhere (rollout/decode_matmul.py;
    docs/rollout.md). threads: torch's threads while sampling ("auto", the default: the run's as it
    started, kept by a resume; None: this segment's; "load": fewer as others keep cores busy).

    seed_per_sample: draw each row's sampling noise from its own seed (inverse_cdf: one uniform a row;
    multinomial and generate: Gumbel-max over the warped logits; exact samples either way), so a row's
    response does not depend on the other rows in its batch.
    Data parallel needs it: a process then draws the very samples one process would have drawn.

    dtype=bfloat16: sample with a bfloat16 copy of the policy (`policy_copy`), refreshed from the
    trainer's float32 weights by `sync` (and by `sample` when they changed since); the trainer, and
    the log-probs it trains on, stay float32. float32 (the default) samples the live model itself,
    except a DeepSpeed ZeRO-3 model (its weights partitioned): with zero3_whole_copy (the default) that
    one is gathered once per call into a whole float32 copy (`whole_copy`, kept per model) which the
    tokens are drawn from, rather than gathering every layer on every decode step (10x slower rollouts
    on an H100, docs/gpu.md); the same tokens, for one whole copy's memory per process."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    use_generate: bool = False
    seed_per_sample: bool = False
    dtype: str = "float32"
    zero3_whole_copy: bool = True
    sampler: str = "inverse_cdf"
    decode_matmul: str = "auto"
    threads: str | int | None = "auto"

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p)
        check(self.sampler in SAMPLERS, "sampler", self.sampler, " or ".join(SAMPLERS))
        way = self.decode_matmul
        check(way in DECODE_MATMULS, "decode_matmul", way, "|".join(DECODE_MATMULS))
        check_threads(self.threads)
        self.meter, self.fixed_threads = BusyMeter(), None  # threads=load's; threads=auto's (run/start.py)
        self.dtype = canonical_dtype(self.dtype)
        check(self.dtype in ("float32", "bfloat16"), "dtype", self.dtype, "float32 (fp32) or bfloat16 (bf16)")
        self.policy_copy = None  # the bfloat16 copy the engine samples (dtype=bfloat16), once made
        self._synced: tuple | None = None  # weights_version of the model policy_copy was copied from
        self.whole_copies: dict = {}  # id(ZeRO-3 model) -> its whole float32 copy (sampled_model)

    samples_adapters = True  # a peft LoRA policy: its decode step reads base weights and adapters

    @property
    def samples_in_background(self) -> bool:
        """Whether a thread may sample while the trainer trains (train.async_rollouts) and draw what
        sampling in the loop draws: with per-row seeds no draw comes from torch's global generator,
        which the trainer's minibatch permutations use."""
        return self.seed_per_sample

    def sync(self, model) -> None:
        """float32: nothing to push, the engine samples the live model. bfloat16: copies `model`'s
        weights into policy_copy in place (made on the first call, or when `model` is another model)."""
        if self.dtype == "float32":
            return
        if self._synced is None or self._synced[0] != id(model):
            self.policy_copy = low_precision_copy(model, getattr(torch, self.dtype))
        else:
            with torch.no_grad():
                for mine, theirs in zip(self.policy_copy.parameters(), model.parameters(), strict=True):
                    mine.copy_(theirs)
        self._synced = weights_version(model)

    def sampled_model(self, model):
        """The model the tokens are drawn from: `model` itself, its bfloat16 copy, synced, or for a ZeRO-3
        model its whole copy, gathered now (a collective: every process samples at the same calls)."""
        whole = self.zero3_whole_copy and self.dtype == "float32"
        if whole and is_partitioned(model) and is_plain_causal_lm(model):
            if id(model) not in self.whole_copies:
                self.whole_copies[id(model)] = whole_copy(model)
            return gather_into(model, self.whole_copies[id(model)])
        if self.dtype == "float32":
            return model
        if self._synced != weights_version(model):
            self.sync(model)  # another model (the reference), or its weights changed since the last sync
        return self.policy_copy

    def weights_dtype(self, policy) -> torch.dtype:
        """The dtype of the weights a rollout reads: bfloat16 where it samples that copy, else the
        policy's."""
        return torch.bfloat16 if self.dtype == "bfloat16" else next(policy.parameters()).dtype

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
        row_seeded: bool = False,
    ) -> Samples:
        """n samples of each prompt; `seeds` (one per row) are used when seed_per_sample is on, or
        row_seeded (evaluation: common random numbers whatever seed_per_sample)."""
        distinct_ids, distinct_attn = encode_prompts(tokenizer, prompts, max_prompt_tokens)  # (B/n, P)
        prompts = [p for p in prompts for _ in range(n)]
        prompt_ids = distinct_ids.repeat_interleave(n, dim=0)  # (B, P)
        prompt_attn = distinct_attn.repeat_interleave(n, dim=0)  # (B, P)
        per_row = (self.seed_per_sample or row_seeded) and seeds is not None and not greedy
        noise = RowNoise(seeds) if per_row else None
        if self.use_generate:  # generate takes every row; the loop prefills each distinct prompt once
            distinct_ids, distinct_attn, n = prompt_ids, prompt_attn, 1
        how = (max_new_tokens, greedy, noise, n)
        response_ids, mask, logprobs = self._draw(model, tokenizer, distinct_ids, distinct_attn, *how)
        finished = (response_ids == tokenizer.eos_token_id).any(-1).tolist()
        responses = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
        return Samples(prompts, prompt_ids, prompt_attn, response_ids, mask, responses, finished, logprobs)

    @torch.no_grad()
    def sample_ids(
        self,
        model,
        tokenizer,
        contexts: list[list[int]],
        max_new_tokens: int,
        greedy: bool = False,
        seeds: list[int] | None = None,
        row_seeded: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """One sample continuing each context from its exact token ids (a multi-turn conversation so far:
        prompt, sampled and observation ids): (response ids (b, T'), log-probs (b, T')), right-padded
        after each row's EOS, as `sample` draws them (`seeds` as there)."""
        ids, attn = left_pad(contexts, tokenizer.pad_token_id)  # (b, L)
        per_row = (self.seed_per_sample or row_seeded) and seeds is not None and not greedy
        noise = RowNoise(seeds) if per_row else None
        response_ids, _, logprobs = self._draw(model, tokenizer, ids, attn, max_new_tokens, greedy, noise, 1)
        return response_ids, logprobs

    def _draw(self, model, tokenizer, ids, attn, max_new_tokens, greedy, noise, n) -> tuple:
        """(response ids, mask, log-probs), (B, T') each, of n samples of each row of `ids` (left-padded):
        pad after EOS, log-probs 0 there."""
        sampled = self.sampled_model(model)
        was_training = sampled.training
        sampled.eval()
        how = (max_new_tokens, greedy, noise)
        try:
            with sampling_threads(self.threads, self.meter, ids.device.type == "cpu", self.fixed_threads):
                draw = self._generate if self.use_generate else partial(self._sample, n=n)
                response_ids, logprobs = draw(sampled, tokenizer, ids, attn, *how)
        finally:
            sampled.train(was_training)
        if response_ids.shape[1] == 0:
            response_ids = torch.full((len(ids) * n, 1), tokenizer.eos_token_id)
            logprobs = torch.zeros(len(ids) * n, 1)
        mask = response_mask(response_ids, tokenizer.eos_token_id)  # (B, T')
        response_ids = torch.where(mask.bool(), response_ids, tokenizer.pad_token_id)
        logprobs = torch.where(mask.bool(), logprobs.float().to(mask.device), 0.0)  # (B, T')
        return response_ids, mask, logprobs

    def _sample(
        self, model, tokenizer, prompt_ids, prompt_attn, max_new_tokens, greedy, noise, n
    ) -> tuple[Tensor, Tensor]:
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
            n,
            self.sampler,
            *decode_ways(self.decode_matmul, prompt_ids.device.type, hidden_size(model)),
        )

    def _generate(
        self, model, tokenizer, prompt_ids, prompt_attn, max_new_tokens, greedy, noise
    ) -> tuple[Tensor, Tensor]:
        """model.generate's response ids (B, T') and each token's log-prob under the warped
        distribution (B, T'): generate's raw logits, warped as its sampler warps them."""
        from transformers import GenerationConfig, LogitsProcessorList

        def finite(_, scores):  # leaves the scores as they are; stops diverged weights in one line
            check_finite_logits(scores)
            return scores

        sampled_greedily = greedy
        if noise is not None:  # warp, add each row's noise, then generate's argmax is the sample
            warpers = lambda _, scores: warp(scores, self.temperature, self.top_k, self.top_p)  # noqa: E731
            processors = LogitsProcessorList([finite, warpers, noise])
            greedy = True
        else:
            processors = LogitsProcessorList([finite])
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
            output_logits=not sampled_greedily,
            return_dict_in_generate=True,
        )
        response_ids = out.sequences[:, prompt_ids.shape[1] :]  # (B, T')
        if sampled_greedily:
            return response_ids, torch.zeros(response_ids.shape)  # a certain choice
        logprobs = [
            sampled_logprobs(warp(logits.float(), self.temperature, self.top_k, self.top_p), ids)
            for logits, ids in zip(out.logits, response_ids.unbind(1), strict=True)
        ]  # T' x (B,)
        return response_ids, torch.stack(logprobs, dim=1) if logprobs else torch.zeros(response_ids.shape)


def is_plain_causal_lm(model) -> bool:
    """A transformers model as its class builds it (no LoRA adapters or other wrappers)."""
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel) and not hasattr(model, "peft_config")
