"""Bounded staleness (train.max_staleness=k): the rollouts sampled ahead of the step that trains on them,
and the thread that samples the next one while a step updates (train.async_rollouts). docs/off_policy.md.

At step t the loop samples the rollout of step t + k with the weights it has then (the policy of step
t), queues it, and trains on the rollout of step t, sampled k steps earlier; the first k steps' rollouts
come from the initial policy (staleness min(t, k)). Prompts and per-row seeds are those of the step that
trains on a rollout, so k = 0 is the on-policy loop. The queue is part of the checkpoint."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import torch

from align_lab.rollout.base import Samples
from align_lab.rollout.copies import copied_without_grads


@dataclass
class Pending:
    """A rollout sampled for `step` (the step that trains on it), before it is scored."""

    step: int
    samples: Samples
    greedy: Samples | None  # ReMax's greedy baseline responses, sampled with the same weights
    seconds: float  # the sampling took (on the sampling thread with async_rollouts)
    source: str = "policy"  # whose rows they are (algorithms/sources.py): policy, teacher or data

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "samples": dict(vars(self.samples)),
            "greedy": None if self.greedy is None else dict(vars(self.greedy)),
            "seconds": self.seconds,
            "source": self.source,
        }

    @classmethod
    def from_state(cls, state: dict) -> Pending:
        greedy = state["greedy"]
        return cls(
            state["step"],
            Samples(**state["samples"]),
            None if greedy is None else Samples(**greedy),
            state["seconds"],
            state.get("source", "policy"),  # a checkpoint from before sources: the policy's
        )


class PendingRollouts:
    """The queue of rollouts sampled ahead, in step order; checkpointed with the run."""

    def __init__(self) -> None:
        self.queue: deque[Pending] = deque()

    def next_step(self, now: int) -> int:
        """The step whose rollout is to be sampled next: after the last queued one, else `now`."""
        return self.queue[-1].step + 1 if self.queue else now

    def push(self, pending: Pending) -> None:
        if self.queue and pending.step != self.queue[-1].step + 1:
            raise RuntimeError(f"rollout of step {pending.step} queued after step {self.queue[-1].step}'s")
        self.queue.append(pending)

    def pop(self, step: int) -> Pending:
        """The rollout sampled for `step`, taken off the queue."""
        if not self.queue or self.queue[0].step != step:
            found = self.queue[0].step if self.queue else None
            raise RuntimeError(f"step {step} found the rollout of step {found} first in the queue")
        return self.queue.popleft()

    def __len__(self) -> int:
        return len(self.queue)

    def state_dict(self) -> dict:
        return {"pending": [p.state_dict() for p in self.queue]}

    def load_state_dict(self, state: dict) -> None:
        self.queue = deque(Pending.from_state(p) for p in state["pending"])


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` to sample from while `model` trains, in eval mode; its weights are only copied into
    (copy_weights), never trained."""
    clone = copied_without_grads(model)
    # requires_grad stays the policy's: sampling runs without gradients anyway, and a matmul of a
    # non-contiguous input (the LM head on the last position) takes another kernel for a weight that does
    # not require one, whose floats differ (tests/integration/test_staleness.py)
    return clone.eval()


@torch.no_grad()
def copy_weights(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """target's parameters and buffers := source's, in place."""
    for mine, theirs in zip(target.parameters(), source.parameters(), strict=True):
        mine.copy_(theirs)
    for mine, theirs in zip(target.buffers(), source.buffers(), strict=True):
        mine.copy_(theirs)


class BackgroundSampler:
    """train.async_rollouts: one rollout at a time sampled on a thread from `snapshot`, a frozen copy of
    the policy's weights taken before it is submitted, while the loop updates the policy. The engine
    must not draw from the trainer's RNG or change its thread count (HFGenerate with seed_per_sample,
    run/cross_checks.py), so the numbers are those of sampling in the loop itself. A thread per rollout:
    it ends with its rollout, so a step that fails meanwhile leaves nothing running afterwards."""

    def __init__(self, policy: torch.nn.Module) -> None:
        self.snapshot = frozen_copy(policy)
        self._thread: threading.Thread | None = None
        self._outcome: tuple = (None, None)  # (result, exception) of the last submitted call

    def freeze(self, policy: torch.nn.Module) -> None:
        """The snapshot takes the policy's weights as they are now (no sampling may be running)."""
        if self._thread is not None:
            raise RuntimeError("the sampling snapshot was refreshed while a rollout was sampled from it")
        copy_weights(policy, self.snapshot)

    def submit(self, produce) -> None:
        """Runs produce(self.snapshot) on a sampling thread, with this thread's default device (torch's
        is per thread: on a GPU run the sampler's new tensors go where the loop's do)."""
        device = torch.get_default_device()

        def run() -> None:
            try:
                torch.set_default_device(device)  # this thread's (the thread ends with the rollout)
                self._outcome = (produce(self.snapshot), None)
            except BaseException as e:  # raised in the loop's thread by result()
                self._outcome = (None, e)

        self._thread = threading.Thread(target=run, name="align_lab_rollout")
        self._thread.start()

    def result(self):
        """What the submitted call returned, after waiting for it; its exception is raised here."""
        self._thread.join()
        self._thread = None
        (result, error), self._outcome = self._outcome, (None, None)
        if error is not None:
            raise error
        return result
