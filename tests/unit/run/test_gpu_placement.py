"""Where a process's CUDA work goes (issue 70 item 6), checked without a GPU: torch.cuda's device calls
are monkeypatched and recorded."""

from __future__ import annotations

import os

import pytest
import torch

from align_lab.run.hardware import Hardware


@pytest.fixture
def cuda_calls(monkeypatch):
    """The devices torch.cuda.set_device and torch.set_default_device were called with, in order."""
    calls: list = []
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    monkeypatch.setattr(torch, "set_default_device", calls.append)
    return calls


@pytest.mark.parametrize(
    ("local_rank", "visible", "expected"),
    [
        (3, 8, 3),  # an 8-GPU node whose task sees every GPU: rank 3 on cuda:3, as before
        (3, 1, 0),  # one GPU per task (Slurm --gpus-per-task=1): its only device; before, cuda:3
        (5, 4, 1),  # 4 visible to 8 local ranks: 5 mod 4 = 1
    ],
)
def test_a_rank_trains_on_a_device_its_task_can_see(cuda_calls, monkeypatch, local_rank, visible, expected):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    Hardware(device="cuda", num_threads=0).use(local_rank)
    assert cuda_calls == [expected, f"cuda:{expected}"]


GIB = 2**30
GPU_80 = 80 * GIB  # 85,899,345,920 bytes


@pytest.mark.parametrize(
    ("parameters", "dtype", "kv_gb", "expected"),
    [
        # 7B in bf16: 7e9 x 2 = 14e9 B of weights + 4 GiB (4,294,967,296 B) of KV cache = 18,294,967,296 B;
        # / 85,899,345,920 = 0.2130, up to 0.22 (the fixed 0.3 of before, fp32, held 28e9 B: 0.326 > 0.3)
        (7_000_000_000, "bfloat16", None, 0.22),
        # kv_cache_gb=10: 14e9 + 10,737,418,240 = 24,737,418,240 B; / 85,899,345,920 = 0.2880 -> 0.29
        (7_000_000_000, "bfloat16", 10.0, 0.29),
        # SmolLM2-135M's 134,515,008 parameters x 2 = 269,030,016 B + 4,294,967,296 = 4,563,997,312 B;
        # / 85,899,345,920 = 0.0531 -> 0.06 (the 0.3 of before left the trainer 56 GiB, now 75.2 GiB)
        (134_515_008, "bfloat16", None, 0.06),
    ],
)
def test_vllms_share_is_chosen_by_the_models_size(parameters, dtype, kv_gb, expected):
    from align_lab.rollout.vllm_launch import auto_utilization

    assert auto_utilization(parameters, dtype, GPU_80, 40 * GIB, kv_gb) == expected


def test_a_share_that_leaves_the_trainer_less_than_its_floor_is_one_line():
    """7B in float32: 28e9 + 4,294,967,296 = 32,294,967,296 B; / 85,899,345,920 = 0.3760 -> 0.38; a trainer
    needing 56 GiB leaves vLLM 1 - 56/80 = 0.3 at most."""
    from align_lab.config import ConfigError
    from align_lab.rollout.vllm_launch import auto_utilization

    message = (
        r"^rollout.gpu_memory_utilization=null: vLLM needs 0.38 of the GPU's 80 GiB \(26.1 GiB of float32 "
        r"weights \+ 4 GiB of KV cache\) and the trainer 56.0 GiB; set rollout.gpu_memory_utilization, a "
        r"smaller rollout.dtype or model, or hardware.backend=deepspeed$"
    )
    with pytest.raises(ConfigError, match=message):
        auto_utilization(7_000_000_000, "float32", GPU_80, 56 * GIB)


def test_a_null_share_is_chosen_on_the_gpu_and_a_set_one_kept():
    """rollout=vllm's default is null (it was 0.3, which a 7B engine's fp32 weights alone overfill) and
    becomes the chosen share, which the trainer's budget then leaves (80 GiB x (1 - 0.22) = 62.4 GiB)."""
    from align_lab.rollout.hf import HFGenerate
    from align_lab.rollout.vllm import VLLMEngine
    from align_lab.rollout.vllm_launch import choose_share

    engine = VLLMEngine()
    assert engine.gpu_memory_utilization is None and engine.gpu_share == 0.0
    assert choose_share(engine, 7_000_000_000, GPU_80, 40 * GIB) == 0.22  # rollout.dtype null: bfloat16
    assert engine.gpu_share == 0.22
    assert choose_share(VLLMEngine(gpu_memory_utilization=0.5), 7_000_000_000, GPU_80, 70 * GIB) == 0.5
    assert choose_share(HFGenerate(), 7_000_000_000, GPU_80, 40 * GIB) is None


def test_a_task_that_sees_one_gpu_is_admitted_across_nodes_and_too_few_gpus_on_one_node_are_not(monkeypatch):
    """Before: every Slurm task of hardware=slurm_multinode with 8 processes a node, seeing its one GPU,
    was refused ('hardware.processes=8: must be <= the 1 visible GPUs'), though each task runs one process."""
    from align_lab.config import ConfigError
    from align_lab.run.admission import spec_from_config
    from align_lab.run.cross_checks import check_machine
    from tests.conftest import compose

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    gpus = ["hardware.device=cuda", "hardware.processes=8", "hardware.resources.gpus_per_model=2"]
    check_machine(spec_from_config(*compose(["hardware=slurm_multinode", *gpus])))
    with pytest.raises(ConfigError, match=r"^hardware.processes=8: must be <= the 1 visible GPUs"):
        check_machine(spec_from_config(*compose(gpus)))  # one node: 8 processes spawned in one task


def test_a_run_across_nodes_outside_slurm_says_to_submit_it_with_m(monkeypatch):
    """Thirty-ninth hunt, case 7: `hardware=slurm_multinode` without -m was told `use
    hardware=slurm_multinode or hardware.nodes=1`, the value the user had typed."""
    from align_lab.config import ConfigError

    for name in [n for n in os.environ if n.startswith("SLURM_")]:
        monkeypatch.delenv(name)
    with pytest.raises(ConfigError) as e:
        Hardware(device="cpu", nodes=2).slurm_task()
    assert str(e.value).endswith(
        "but this process is not in a Slurm task; submit it with -m (python -m align_lab -m "
        "hardware=slurm_multinode ...: its launcher starts them), or set hardware.nodes=1"
    ), str(e.value)
