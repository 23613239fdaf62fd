"""A non-finite gradient stops training at its optimiser step, and is never applied."""

from __future__ import annotations

import pytest
import torch

from align_lab.train.backend import Diverged, TorchUpdater
from align_lab.train.distributed import Group


def test_a_non_finite_gradient_raises_diverged_and_leaves_the_weights_as_they_were():
    model = torch.nn.Linear(2, 1)
    updater = TorchUpdater(model, 1e-3, 0, 1.0, Group(0, 1))
    model(torch.ones(1, 2)).sum().backward()
    assert updater.step() > 0 and updater.updates == 1  # a finite step is taken and counted
    before = model.weight.detach().clone()
    (model(torch.ones(1, 2)).sum() * float("nan")).backward()
    with pytest.raises(Diverged, match=r"^diverged at optimiser step 2 \(gradient norm nan\)$"):
        updater.step()
    assert torch.equal(model.weight.detach(), before) and model.weight.grad is None


def test_a_resumed_runs_diverged_step_counts_the_steps_before_the_resume():
    """Its own count read `optimiser step 1` in a run resumed after 3 steps (2026-12-04's note): the
    schedule's count, restored from the checkpoint, is the run's."""
    model = torch.nn.Linear(2, 1)
    updater = TorchUpdater(model, 1e-3, 0, 1.0, Group(0, 1))
    for _ in range(3):
        model(torch.ones(1, 2)).sum().backward()
        updater.step()
    resumed = TorchUpdater(model, 1e-3, 0, 1.0, Group(0, 1))
    resumed.schedule.load_state_dict(updater.schedule.state_dict())
    assert resumed.updates == 3
    (model(torch.ones(1, 2)).sum() * float("nan")).backward()
    with pytest.raises(Diverged, match=r"^diverged at optimiser step 4 \(gradient norm nan\)$"):
        resumed.step()
