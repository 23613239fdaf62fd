"""The queue of rollouts sampled ahead (train/staleness.py): step order, and its checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from align_lab.rollout.base import Samples
from align_lab.train.staleness import Pending, PendingRollouts, copy_weights, frozen_copy


def samples(fill: float) -> Samples:
    ids = torch.full((2, 3), int(fill))
    return Samples(
        ["a", "a"],
        ids,
        torch.ones(2, 3),
        ids,
        torch.ones(2, 3),
        ["x", "y"],
        [True, False],
        torch.full((2, 3), fill),
    )


def test_the_queue_gives_each_step_the_rollout_sampled_for_it_in_order():
    queue = PendingRollouts()
    assert queue.next_step(now=5) == 5  # empty: the loop's own step comes next
    queue.push(Pending(5, samples(1), None, 0.1))
    queue.push(Pending(6, samples(2), None, 0.1))
    assert queue.next_step(now=5) == 7 and len(queue) == 2
    with pytest.raises(RuntimeError, match="rollout of step 9 queued after step 6's"):
        queue.push(Pending(9, samples(3), None, 0.1))
    with pytest.raises(RuntimeError, match="step 6 found the rollout of step 5 first"):
        queue.pop(6)
    assert queue.pop(5).samples.logprobs[0, 0] == 1 and queue.pop(6).step == 6


def test_the_queue_survives_a_checkpoint_round_trip(tmp_path):
    queue = PendingRollouts()
    queue.push(Pending(3, samples(1), samples(7), 0.25))
    queue.push(Pending(4, samples(2), None, 0.5))
    torch.save({"q": queue.state_dict()}, tmp_path / "c.pt")
    again = PendingRollouts()
    again.load_state_dict(torch.load(tmp_path / "c.pt", weights_only=False)["q"])
    first, second = again.pop(3), again.pop(4)
    assert torch.equal(first.samples.response_ids, samples(1).response_ids)
    assert first.greedy.responses == ["x", "y"] and torch.equal(first.greedy.logprobs, samples(7).logprobs)
    assert second.greedy is None and second.seconds == 0.5 and second.samples.finished == [True, False]


def test_the_frozen_copy_takes_the_weights_only_when_told():
    policy = torch.nn.Linear(3, 2)
    copy = frozen_copy(policy)
    with torch.no_grad():
        policy.weight.add_(1.0)
    assert not torch.equal(copy.weight, policy.weight)  # training the policy leaves the copy as it was
    copy_weights(policy, copy)
    assert torch.equal(copy.weight, policy.weight) and copy.weight.data_ptr() != policy.weight.data_ptr()
    assert not copy.training


def test_the_sampling_thread_makes_tensors_on_the_loops_default_device():
    # torch's default device is per thread: a GPU run (hardware.device=cuda sets it in the loop's
    # thread) must sample on the GPU in the async sampler's thread too; "meta" stands in for cuda here
    from align_lab.train.staleness import BackgroundSampler

    sampler = BackgroundSampler(torch.nn.Linear(2, 2))
    with torch.device("meta"):
        sampler.submit(lambda snapshot: torch.zeros(1).device)
    assert sampler.result() == torch.device("meta")
    sampler.submit(lambda snapshot: torch.zeros(1).device)
    assert sampler.result() == torch.device("cpu")
