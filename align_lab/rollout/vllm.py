"""Rollouts with vLLM, in the trainer's process; the trainer's weights are pushed in place each step.

The engine starts on first use from the model saved once to a temporary folder (config, weights,
tokenizer). After that, `sync` hands the trainer's state_dict to vLLM's in-place reload
(`reload_weights` with checkpoint-format tensors): vLLM loads them into its own layout and redoes its
post-load processing, so nothing is written to or read from disk. That reload also repacks the
CPU backend's linear weights, which vLLM otherwise replaces by empty tensors after the first load.
The prefix cache is reset after each sync: cached prompt keys/values belong to the old weights.

Token ids, masks and decoded texts come back in the trainer tokenizer's terms (prompts are encoded
and responses decoded by it), so the loop computes log-probs with the trainer model as with `hf`.
The engine's own log-prob of each sampled token comes back too, as `hf` returns it: vLLM's
"processed_logprobs", after temperature, top-k and top-p (renormalised over the kept tokens).
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch

from align_lab.models.sequences import encode_prompts
from align_lab.rerun import PROJECT, project_script
from align_lab.rollout.base import NonFiniteLogits, Samples, check_sampling
from align_lab.rollout.base import weights_version as _weights_version
from align_lab.rollout.vllm_launch import engine_dtype, llm_kwargs, rank_place, save_for_engine, starting_on
from align_lab.rollout.vllm_outputs import completion_tensors
from align_lab.user_code import importable
from align_lab.value_checks import canonical_dtype

DTYPES = ("auto", "float32", "bfloat16", "float16")


@contextmanager
def _trainer_rng():
    """The trainer's global RNGs as they were: vLLM's start reseeds them, and its sampler draws from
    torch's global generator by an amount that depends on the rows a process samples, so ranks of a
    data-parallel run would otherwise draw different minibatch permutations afterwards."""
    state = (torch.get_rng_state(), random.getstate())
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None  # every GPU's
    try:
        yield
    finally:
        torch.set_rng_state(state[0])
        random.setstate(state[1])
        if cuda is not None:  # vLLM's start seeds the CUDA generators too (the rank's one resumes)
            torch.cuda.set_rng_state_all(cuda)


@contextmanager
def _one_thread():
    """One torch thread while vLLM works, as vLLM serves: its step loop is serial, and on a shared CPU
    the trainer's OpenMP threads spin-waiting between small ops made it 20x slower (2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class VLLMEngine:
    """Sampling with vLLM (`vllm.LLM`, in-process); temperature/top_k/top_p as in `hf`."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    dtype: str | None = None  # null: float32 on CPU, bfloat16 on a GPU (rollout/vllm_launch.py)
    gpu_memory_utilization: float | None = None  # null: by the model's size (vllm_launch.choose_share)
    kv_cache_gb: float | None = None
    enforce_eager: bool = True
    sleep_when_idle: bool = False
    sleep_level: int = 1
    seed: int = 0
    seed_per_sample: bool = False  # one request per response, seeded by its row seed (data parallel)

    def __post_init__(self) -> None:
        self._llm = None  # vllm.LLM; these are run-time state, not configuration: set on first use
        self._dir: str | None = None  # the model as first saved, which vLLM starts from
        self._synced: tuple | None = None  # _weights_version of the model the engine holds
        self._asleep = self._can_sleep = False
        self.start_s: float | None = None  # seconds the engine took to start, `import vllm` included
        self._context_tokens = 0  # the longest context a multi-turn rollout continues (reserve_context)
        check_sampling(self.temperature, self.top_k, self.top_p)
        self.dtype = None if self.dtype is None else canonical_dtype(self.dtype)
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype}: must be one of {', '.join(DTYPES)} (or fp32, bf16, fp16)")
        if (share := self.gpu_memory_utilization) is not None and not 0 < share <= 1:
            raise ValueError(
                f"gpu_memory_utilization={share}: must be in (0, 1] (or null: by the model's size)"
            )
        if self.kv_cache_gb is not None and self.kv_cache_gb <= 0:
            raise ValueError(f"kv_cache_gb={self.kv_cache_gb}: must be > 0 (or null)")
        if self.sleep_level not in (1, 2):
            raise ValueError(f"sleep_level={self.sleep_level}: must be 1 (offload weights) or 2 (drop them)")

    # No (lora.enabled): the engine starts from, and reloads, the model's state_dict under its
    # transformers names; a peft policy's names and its adapters would have to be merged first
    samples_adapters = False
    pushes_state_dict = True  # sync hands vLLM the state_dict: ZeRO-3 refused (run/placement.py)

    @property
    def gpu_share(self) -> float:
        """The share of its GPU the engine takes: the trainer plans its micro-batches in the rest."""
        return self.gpu_memory_utilization or 0.0

    @property
    def samples_in_background(self) -> bool:
        """No (train.async_rollouts): sampling sets torch's thread count and restores its global RNG
        around vLLM's calls (_one_thread, _trainer_rng), which a training thread shares."""
        return False

    def check_installed(self) -> None:
        """Fails before any compute when this Python has no vllm (it lives in its own environment)."""
        if not importable("vllm"):
            venv = PROJECT / ".venv-vllm"
            raise ValueError(
                "rollout=vllm: the vllm package is not installed in this Python; "
                f"{project_script('scripts/setup_vllm.sh')} makes {venv}; run {venv}/bin/python -m align_lab"
            )

    # engine life cycle
    def _start(self, model, tokenizer, max_len: int) -> None:
        """Builds vllm.LLM from `model` as it is now, for sequences of at most `max_len` tokens (the
        run's prompt plus response limits: a real model's own limit, 8192 for SmolLM2, asks for a KV
        cache larger than the CPU default); the trainer's RNG and thread count survive it."""
        # in-process engine core: sync reaches the model directly, and no engine process is spawned
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        # the trainer shares these cores: vLLM must not pin this process's threads
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # its INFO lines would drown the run's log
        t = time.perf_counter()
        from vllm import LLM
        from vllm.platforms import current_platform

        # every in-place reload finds no checkpoint tensor for the rotary cache (derived, not trained)
        # and keeps the one it has; vLLM warns about that on each sync
        logging.getLogger("vllm.model_executor.model_loader.reload.layerwise").addFilter(
            lambda r: "RotaryEmbedding: Failed to load weights" not in r.getMessage()
        )
        self._dir = tempfile.mkdtemp(prefix="align_lab_vllm_")
        atexit.register(shutil.rmtree, self._dir, True)  # also when close() is never called
        save_for_engine(model, tokenizer, self._dir)
        on_cpu = current_platform.is_cpu()
        place = rank_place(on_cpu)  # a data-parallel rank on a GPU: its engine on that GPU
        threads, set_threads = torch.get_num_threads(), torch.set_num_threads
        try:
            # vLLM's worker reseeds the global RNGs and sets its own CUDA device
            with _trainer_rng(), starting_on(place):
                self._llm = LLM(**llm_kwargs(self, self._dir, max_len, on_cpu, place))
        finally:
            # it also lowers torch's thread count and replaces torch.set_num_threads; in-process,
            # those belong to the trainer
            torch.set_num_threads = set_threads
            torch.set_num_threads(threads)
        self._synced = _weights_version(model)
        self._can_sleep = not on_cpu
        if self.sleep_when_idle and not self._can_sleep:
            warnings.warn("rollout.sleep_when_idle: vLLM has no sleep mode on CPU; ignored", stacklevel=2)
        self.start_s = time.perf_counter() - t

    def weights_dtype(self, policy) -> torch.dtype:
        """The dtype of the weights the engine reads (its own copy): the one it started in (vLLM resolves
        `auto` from the checkpoint); before it starts, rollout.dtype as it will ask (`auto`: the policy's)."""
        started = getattr(getattr(self._llm, "llm_engine", None), "model_config", None)
        if isinstance(getattr(started, "dtype", None), torch.dtype):
            return started.dtype
        name = engine_dtype(self.dtype, next(policy.parameters()).device.type == "cpu")
        return next(policy.parameters()).dtype if name == "auto" else getattr(torch, name)

    def close(self) -> None:
        """Shuts the engine down and deletes its temporary folder."""
        if self._llm is not None:
            engine = getattr(self._llm, "llm_engine", None)
            if engine is not None and hasattr(engine, "engine_core"):
                engine.engine_core.shutdown()
            self._llm = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._synced = None

    def sleep(self) -> None:
        """Frees vLLM's accelerator memory between rollouts (colocated training); GPU only."""
        if self._llm is not None and self._can_sleep and not self._asleep:
            self._llm.sleep(level=self.sleep_level)
            self._asleep = True
            if self.sleep_level == 2:
                self._synced = None  # weights dropped: the next sample pushes them again

    def wake(self) -> None:
        if self._asleep:
            self._llm.wake_up()
            self._asleep = False

    # the RolloutEngine contract
    def sync(self, model) -> None:
        """Pushes `model`'s weights into the running engine in place (no disk). Before the engine has
        started there is nothing to push: the first `sample` starts it from the model as it is then."""
        if self._llm is None:
            return
        self.wake()
        state = model.state_dict()
        with _one_thread(), _trainer_rng():
            self._llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(state.items())})
        self._llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights
        self._synced = _weights_version(model)

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
        """n samples of each prompt from vLLM's copy of the weights. With seed_per_sample (or row_seeded:
        evaluation's common random numbers) and `seeds` (one per row, train/distributed.row_seeds), each
        row is its own request seeded with its row seed, so a response does not depend on the batch it
        is drawn in or the process drawing it."""
        if self._llm is None:
            self._start(model, tokenizer, max(max_prompt_tokens + max_new_tokens, self._context_tokens))
        elif self._synced != _weights_version(model):
            self.sync(model)  # another model (the reference), or its weights changed since the last sync
        self.wake()
        rows = [p for p in prompts for _ in range(n)]
        prompt_ids, prompt_attn = encode_prompts(tokenizer, rows, max_prompt_tokens)  # (B, P)
        firsts = zip(prompt_ids[::n], prompt_attn[::n], strict=True)  # each prompt once; n samples of it
        inputs = [{"prompt_token_ids": ids[attn.bool()].tolist()} for ids, attn in firsts]

        sampling = partial(self._params, tokenizer, max_new_tokens, greedy)
        params = sampling(1 if greedy else n)  # greedy samples are identical: decode once, copy below
        if (self.seed_per_sample or row_seeded) and seeds is not None and not greedy:
            # one request per row with its own seed: n copies of each prompt, one sample each
            inputs = [inp for inp in inputs for _ in range(n)]
            params = [sampling(1, seed) for seed in seeds]
        with _one_thread(), _trainer_rng():
            outputs = self._llm.generate(inputs, params, use_tqdm=False)
        if self.sleep_when_idle:
            self.sleep()
        copies = n if greedy else 1
        completions = [
            c for o in outputs for c in sorted(o.outputs, key=lambda c: c.index) for _ in range(copies)
        ]  # (B,) the G samples of a prompt contiguous
        response_ids, mask, logprobs = self._tensors(completions, tokenizer, greedy)
        finished = (response_ids == tokenizer.eos_token_id).any(-1).tolist()
        responses = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
        return Samples(rows, prompt_ids, prompt_attn, response_ids, mask, responses, finished, logprobs)

    def _params(self, tokenizer, max_new_tokens: int, greedy: bool, n: int, seed: int | None = None):
        from vllm import SamplingParams

        return SamplingParams(
            n=n,
            seed=seed,
            temperature=0.0 if greedy else self.temperature,
            top_k=0 if greedy else self.top_k,
            top_p=1.0 if greedy else self.top_p,
            max_tokens=max_new_tokens,
            stop_token_ids=[tokenizer.eos_token_id],
            detokenize=False,
            logprobs=None if greedy else 0,  # 0: the sampled token's log-prob only
        )

    def _tensors(self, completions, tokenizer, greedy: bool) -> tuple:
        response_ids, mask, logprobs = completion_tensors(completions, tokenizer.pad_token_id, greedy)
        if not bool(torch.isfinite(logprobs).all()):  # vLLM samples NaN logits without an error
            raise NonFiniteLogits()
        return response_ids, mask, logprobs

    # multi-turn rollouts (rollout/turns.py); tests/integration/test_vllm.py runs them on the toy game
    def reserve_context(self, tokens: int) -> None:
        """The engine, when it starts, takes contexts of up to `tokens` (a conversation's limit)."""
        self._context_tokens = max(self._context_tokens, tokens)

    @torch.no_grad()
    def sample_ids(
        self, model, tokenizer, contexts, max_new_tokens, greedy=False, seeds=None, row_seeded=False
    ):
        """One sample continuing each context from its exact token ids (vLLM's prompt_token_ids: no
        re-tokenisation): (response ids (b, T'), log-probs (b, T')), seeded per row as `sample`."""
        if self._llm is None:
            self._start(model, tokenizer, max(self._context_tokens, max(map(len, contexts)) + max_new_tokens))
        elif self._synced != _weights_version(model):
            self.sync(model)
        self.wake()
        seeded = (self.seed_per_sample or row_seeded) and seeds is not None and not greedy
        params = [
            self._params(tokenizer, max_new_tokens, greedy, 1, seed)
            for seed in (seeds if seeded else [None] * len(contexts))
        ]
        inputs = [{"prompt_token_ids": list(c)} for c in contexts]
        with _one_thread(), _trainer_rng():
            outputs = self._llm.generate(inputs, params, use_tqdm=False)
        if self.sleep_when_idle:
            self.sleep()
        response_ids, _, logprobs = self._tensors([o.outputs[0] for o in outputs], tokenizer, greedy)
        return response_ids, logprobs
