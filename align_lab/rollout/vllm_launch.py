"""What `vllm.LLM` is built with (rollout/vllm.py): its keyword arguments, and for one of several
data-parallel ranks on GPUs the environment vLLM's external launcher reads, so each rank's engine takes
that rank's GPU (TRL's colocate mode does the same). Pure where it can be: a unit test checks them
without vllm installed."""

from __future__ import annotations

import logging
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from align_lab.value_checks import ConfigError

GiB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}  # "auto" (the checkpoint's): float32's, at most
# what auto gives vLLM beside its weights: its KV cache, and the activations of its profiling run and its
# non-torch memory (CUDA context) out of the same bytes. A 7B Llama's KV is 0.5 MiB a token in bf16 (2 x 32
# layers x 4096 x 2 bytes): 4 GiB would hold 8,192 tokens (16 x 512 at once; vLLM queues the rest), the
# overheads leave fewer. A chosen value, not measured on a GPU (docs/gpu.md)
KV_FLOOR_GB = 4.0


@dataclass(frozen=True)
class RankPlace:
    """A data-parallel rank's place: global `rank` of `size`, and `local_rank`, the GPU it trains on
    (torch.cuda.current_device(), which run/hardware.py `use` set), where its engine must live too."""

    rank: int
    size: int
    local_rank: int


def rank_place(on_cpu: bool) -> RankPlace | None:
    """This process's place among the run's data-parallel ranks on GPUs; None with one process, and on
    CPU (every rank's CPU engine shares the host, as before)."""
    import torch.distributed as dist

    if on_cpu or not dist.is_initialized() or dist.get_world_size() == 1:
        return None
    return RankPlace(dist.get_rank(), dist.get_world_size(), torch.cuda.current_device())


def launcher_env(place: RankPlace | None) -> dict[str, str]:
    """The variables vLLM's `external_launcher` executor reads: its worker takes cuda:LOCAL_RANK (else
    every rank's engine starts on cuda:0, vLLM's uniproc default) and joins the process group the
    trainer already opened, of WORLD_SIZE ranks, as RANK. {} for one process or on CPU."""
    if place is None:
        return {}
    return {"RANK": str(place.rank), "LOCAL_RANK": str(place.local_rank), "WORLD_SIZE": str(place.size)}


def engine_dtype(dtype: str | None, on_cpu: bool) -> str:
    """rollout.dtype, or when null: float32 on CPU (vLLM's CPU backend), bfloat16 on a GPU (half the
    weights' memory of float32, the dtype vLLM serves in)."""
    if dtype is not None:
        return dtype
    return "float32" if on_cpu else "bfloat16"


def auto_utilization(parameters: int, dtype: str, gpu_bytes: int, trainer_bytes: int, kv_gb=None) -> float:
    """rollout.gpu_memory_utilization when null, on a GPU of `gpu_bytes`: the share that holds the
    model's `parameters` in the engine's `dtype` and a KV cache of kv_cache_gb (null: KV_FLOOR_GB),
    rounded up to a hundredth; one line when it leaves less than the `trainer_bytes` the trainer needs."""
    weights = parameters * DTYPE_BYTES.get(dtype, 4)
    share = math.ceil(100 * (weights + (kv_gb or KV_FLOOR_GB) * GiB) / gpu_bytes) / 100
    if share > 1 - trainer_bytes / gpu_bytes:
        raise ConfigError(
            f"rollout.gpu_memory_utilization=null: vLLM needs {share} of the GPU's {gpu_bytes / GiB:.0f} GiB "
            f"({weights / GiB:.1f} GiB of {dtype} weights + {kv_gb or KV_FLOOR_GB:g} GiB of KV cache) and "
            f"the trainer {trainer_bytes / GiB:.1f} GiB; set rollout.gpu_memory_utilization, a smaller "
            "rollout.dtype or model, or hardware.backend=deepspeed"
        )
    return share


def choose_share(engine, parameters: int, gpu_bytes: int, trainer_bytes: int) -> float | None:
    """`engine`'s (a VLLMEngine's) gpu_memory_utilization, chosen when null for a model of `parameters`
    on a GPU of `gpu_bytes` whose trainer needs `trainer_bytes` (auto_utilization), and logged; None
    for an engine without one (hf)."""
    if not hasattr(engine, "gpu_memory_utilization") or engine.gpu_memory_utilization is not None:
        return getattr(engine, "gpu_memory_utilization", None)
    dtype = engine_dtype(engine.dtype, on_cpu=False)
    engine.gpu_memory_utilization = auto_utilization(
        parameters, dtype, gpu_bytes, trainer_bytes, engine.kv_cache_gb
    )
    logging.getLogger("align_lab").info(
        f"rollout.gpu_memory_utilization {engine.gpu_memory_utilization} (null: {parameters / 1e9:.2f}B "
        f"parameters in {dtype} + KV cache of the GPU's {gpu_bytes / GiB:.0f} GiB; the trainer the rest)"
    )
    return engine.gpu_memory_utilization


def llm_kwargs(engine, folder: str, max_len: int, on_cpu: bool, place: RankPlace | None) -> dict:
    """`vllm.LLM`'s keyword arguments for `engine` (a VLLMEngine) started from `folder`, for sequences
    of at most `max_len` tokens."""
    kv_gb = engine.kv_cache_gb
    if kv_gb is None and on_cpu:
        kv_gb = 0.25  # vLLM's CPU default reserves a share of host memory; the trainer needs it
    kwargs = {
        "model": folder,
        "dtype": engine_dtype(engine.dtype, on_cpu),
        "seed": engine.seed,
        "max_model_len": max_len,
        # the log-probs of the distribution each token is drawn from (as `hf` returns them); on CUDA
        # this keeps top-k/top-p sampling on vLLM's PyTorch path, not FlashInfer's
        "logprobs_mode": "processed_logprobs",
        "enforce_eager": engine.enforce_eager,
        # null on CPU, where kv_cache_memory_bytes decides: the 0.3 it always was
        "gpu_memory_utilization": engine.gpu_memory_utilization or 0.3,
    }
    if kv_gb:
        kwargs["kv_cache_memory_bytes"] = int(kv_gb * 2**30)
    if engine.sleep_when_idle and not on_cpu:  # else LLM.sleep() frees nothing (vLLM needs it at start)
        kwargs["enable_sleep_mode"] = True
    if place is not None:
        kwargs["distributed_executor_backend"] = "external_launcher"
    return kwargs


@contextmanager
def starting_on(place: RankPlace | None):
    """The block (the engine's start) with launcher_env(place) in os.environ, and afterwards the
    environment and the trainer's current CUDA device as they were: vLLM's worker sets its own."""
    env = launcher_env(place)
    before = {name: os.environ.get(name) for name in env}
    device = torch.cuda.current_device() if torch.cuda.is_initialized() else None
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if device is not None:
            torch.cuda.set_device(device)


def save_for_engine(model, tokenizer, folder: str) -> None:
    """`model` and `tokenizer` as a checkpoint folder vLLM starts from, written by every process:
    transformers' save_pretrained writes only on rank 0 of a process group, and in a data-parallel
    run each rank starts its own engine. Tied weights are written once, under their source's name."""
    from safetensors.torch import save_file

    tied = getattr(model, "all_tied_weights_keys", None) or {}  # {target: source}, e.g. lm_head -> embed
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k not in tied}
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(folder)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
