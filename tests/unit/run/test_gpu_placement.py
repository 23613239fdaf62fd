"""Where a process's CUDA work goes (issue 70 item 6), checked without a GPU: torch.cuda's device calls
are monkeypatched and recorded."""

from __future__ import annotations

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
