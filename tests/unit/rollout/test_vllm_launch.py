"""What vllm.LLM is built with (issue 70 items 1, 4 and 6), checked without vllm: a stand-in `vllm`
module records the keyword arguments and the environment its LLM class is constructed with (the vLLM
engine itself runs in tests/integration/test_vllm.py, on vLLM's CPU build)."""

from __future__ import annotations

import os
import sys
from types import ModuleType, SimpleNamespace

import pytest
import torch

from align_lab.rollout import vllm as vllm_rollout
from align_lab.rollout.vllm import VLLMEngine
from align_lab.rollout.vllm_launch import RankPlace, engine_dtype, launcher_env, llm_kwargs, rank_place

LAUNCHER = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@pytest.fixture
def built(monkeypatch):
    """Starts a VLLMEngine against a stand-in vllm on a pretend GPU: returns (what LLM was built with,
    the CUDA devices set, in order), the trainer on cuda:3 and vLLM's worker setting cuda:0."""
    seen: dict = {}
    devices: list[int] = []

    class LLM:
        def __init__(self, **kwargs):
            seen["kwargs"] = kwargs
            seen["env"] = {name: os.environ.get(name) for name in LAUNCHER}
            torch.cuda.set_device(0)  # vLLM's gpu_worker: torch.cuda.set_device(its device)
            torch.cuda.set_rng_state_all(["vLLM's seed"])  # its start seeds every generator

    fake = ModuleType("vllm")
    fake.LLM = LLM
    platforms = ModuleType("vllm.platforms")
    platforms.current_platform = SimpleNamespace(is_cpu=lambda: False)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    monkeypatch.setattr(vllm_rollout, "save_for_engine", lambda *args: None)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: devices[-1] if devices else 3)
    monkeypatch.setattr(torch.cuda, "set_device", devices.append)
    seen["cuda_rng"] = []  # the CUDA generator states set, in order
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: ["the trainer's"])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", seen["cuda_rng"].append)
    for name in LAUNCHER:
        monkeypatch.delenv(name, raising=False)
    return seen, devices


def _start(engine: VLLMEngine) -> None:
    engine._start(torch.nn.Linear(2, 2), None, 64)
    engine.close()


def test_sleep_when_idle_builds_the_engine_with_sleep_mode_on_a_gpu(built):
    """Before: LLM was built without enable_sleep_mode, so LLM.sleep() freed nothing."""
    seen, _ = built
    _start(VLLMEngine(sleep_when_idle=True))
    assert seen["kwargs"]["enable_sleep_mode"] is True
    _start(VLLMEngine())
    assert "enable_sleep_mode" not in seen["kwargs"]


def test_a_data_parallel_ranks_engine_takes_its_own_gpu_and_the_trainer_keeps_its_device(built, monkeypatch):
    """Rank 1 of 2, training on cuda:3: vLLM's external launcher reads RANK/LOCAL_RANK/WORLD_SIZE (its
    worker takes cuda:LOCAL_RANK, not cuda:0), set while the engine starts and taken back after; the
    trainer's device is set back after vLLM's worker set its own."""
    seen, devices = built
    monkeypatch.setattr(vllm_rollout, "rank_place", lambda on_cpu: RankPlace(rank=1, size=2, local_rank=3))
    _start(VLLMEngine())
    assert seen["kwargs"]["distributed_executor_backend"] == "external_launcher"
    assert seen["env"] == {"RANK": "1", "LOCAL_RANK": "3", "WORLD_SIZE": "2"}
    assert all(name not in os.environ for name in LAUNCHER)
    assert devices == [0, 3]  # vLLM's worker's, then the trainer's again
    assert seen["cuda_rng"] == [["vLLM's seed"], ["the trainer's"]]  # the trainer's generators back
    assert seen["kwargs"]["dtype"] == "bfloat16"  # rollout.dtype null on a GPU


def test_one_process_or_a_cpu_engine_is_built_as_before():
    engine = VLLMEngine()
    cpu = llm_kwargs(engine, "/m", 64, on_cpu=True, place=None)
    assert cpu == {
        "model": "/m",
        "dtype": "float32",  # rollout.dtype null on CPU
        "seed": 0,
        "max_model_len": 64,
        "logprobs_mode": "processed_logprobs",
        "enforce_eager": True,
        "gpu_memory_utilization": 0.3,
        "kv_cache_memory_bytes": 268_435_456,  # 0.25 GiB = 2**28 bytes
    }
    assert rank_place(on_cpu=True) is None and rank_place(on_cpu=False) is None  # no process group here
    assert launcher_env(None) == {}
    assert engine_dtype("float16", on_cpu=False) == "float16"  # a dtype set is kept
