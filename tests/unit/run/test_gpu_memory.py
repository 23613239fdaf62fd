"""A GPU that other processes (or a per-process limit) share: the run that plans for its whole memory says,
before its first step, that its predicted peak does not fit what is left, and which hardware.memory_gb
does. Figures from the fifth GPU lease (docs/gpu.md): an H200 of 139.8 GiB held to 0.04 of it, GRPO at
SmolLM2's size predicted at 10,822 MiB; that run stopped out of memory in its first update."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from align_lab.run.gpu_memory import say_shared_gpu, shared_gpu_line

GiB, MiB = 2**30, 2**20
H200 = int(139.8 * GiB)
PEAK = 10_822 * MiB


def test_a_peak_past_a_per_process_limit_names_the_memory_gb_that_fits():
    line = shared_gpu_line("cuda:0", PEAK, free=H200 - 600 * MiB, held=0, allowed=int(H200 * 0.04))
    assert line == (
        "cuda:0 has 5.59 GiB this run can use (other processes hold the rest, or a per-process limit), and "
        "its micro-batches were planned for its whole memory (hardware.memory_gb unset): a predicted peak of "
        "10.57 GiB; if it stops out of memory, set hardware.memory_gb=5 (0.9 of that room)"
    )


def test_what_other_processes_hold_is_not_the_runs_and_what_it_holds_itself_is():
    others = 130 * GiB  # another process's, on the same GPU
    free, held = H200 - others - GiB, GiB  # this process has loaded its models: 1 GiB its allocator holds
    line = shared_gpu_line("cuda:1", PEAK, free=free, held=held, allowed=H200)
    assert line.startswith("cuda:1 has 9.80 GiB this run can use") and "hardware.memory_gb=8.8 " in line
    assert shared_gpu_line("cuda:1", PEAK, free=H200 - GiB, held=held, allowed=H200) is None  # alone: fits
    assert shared_gpu_line("cuda:0", PEAK, free=50 * MiB, held=0, allowed=H200).endswith("free the GPU")


def test_a_run_on_a_shared_gpu_warns_once_and_one_with_memory_gb_or_on_the_cpu_says_nothing(
    monkeypatch, caplog
):
    """say_shared_gpu reads torch's own figures for the process's GPU (faked here: no GPU on these
    machines; the line's numbers are the function above's)."""
    cuda = {
        "is_available": lambda: True,
        "current_device": lambda: 0,
        "mem_get_info": lambda index: (H200 - 600 * MiB, H200),
        "get_per_process_memory_fraction": lambda index: 0.04,
        "memory_reserved": lambda index: 0,
    }
    for name, value in cuda.items():
        monkeypatch.setattr(torch.cuda, name, value)
    planned = SimpleNamespace(peak=SimpleNamespace(total=PEAK))
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        say_shared_gpu(SimpleNamespace(device="cuda", memory_gb=None), planned)
        say_shared_gpu(SimpleNamespace(device="cuda", memory_gb=5), planned)
        say_shared_gpu(SimpleNamespace(device="cpu", memory_gb=None), planned)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("align_lab: warning: cuda:0 has 5.59 GiB"), said


@pytest.mark.parametrize("free", [0, 1])
def test_no_room_at_all_asks_to_free_the_gpu(free):
    assert shared_gpu_line("cuda:0", PEAK, free=free, held=0, allowed=H200).endswith("free the GPU")
