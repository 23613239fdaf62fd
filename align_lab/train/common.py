"""What both training loops share: the train config, and the resumable prompt order and counters."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from align_lab.train.stop_at import StopAt, check_schedule
from align_lab.value_checks import check


@dataclass
class TrainConfig:
    """Budget and batching of the policy-optimisation stage; batch sizes count samples, not processes."""

    steps: int = 150
    rollout_size: int = 64
    minibatch_size: int = 32
    max_grad_norm: float = 1.0
    warmup_steps: int = 0
    eval_every: int = 50
    eval_samples: int = 4
    # write each evaluation's samples to eval_samples.jsonl (and W&B's eval/samples table)
    keep_eval_samples: bool = True
    eval_text_chars: int = 300  # characters kept of each prompt and response text in those records
    checkpoint_every: int = 25
    # false: a completed run deletes checkpoints/ (SmolLM2's is 1.6 GB, 3.1 GB with a critic); its
    # results stay, but it can no longer be extended with more train.steps
    keep_checkpoint: bool = True
    # rows per forward/backward (gradient accumulation); None: whole; "auto": from the memory budget
    # (train/micro.py). The run resolves "auto" before a loop sees this config (run/execute.py)
    micro_batch_size: int | str | None = "auto"
    # bounded staleness (docs/off_policy.md): the rollout step t trains on is sampled with the policy of
    # step t - k (the first k steps: the initial policy); 0 = on-policy
    max_staleness: int = 0
    # sample the next rollout on a thread, from a frozen copy of the weights, while this step updates;
    # the same numbers as the synchronous loop with the same max_staleness (which must be >= 1)
    async_rollouts: bool = False
    # end the run at the first evaluation where stop_at.metric >= stop_at.value (train/stop_at.py); off
    stop_at: StopAt = field(default_factory=StopAt)

    def __post_init__(self) -> None:
        check(self.steps >= 1, "steps", self.steps, ">= 1")
        check(self.rollout_size >= 1, "rollout_size", self.rollout_size, ">= 1")
        check(self.minibatch_size >= 1, "minibatch_size", self.minibatch_size, ">= 1")
        check(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "> 0")
        check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, ">= 0")
        check(self.eval_every >= 0, "eval_every", self.eval_every, ">= 0 (0: only at the end)")
        check(self.eval_samples >= 1, "eval_samples", self.eval_samples, ">= 1")
        chars = self.eval_text_chars
        integer = isinstance(chars, int) and not isinstance(chars, bool)
        check(integer and chars >= 0, "eval_text_chars", chars, "an integer >= 0 (0: no texts)")
        check(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every, ">= 0")
        micro = self.micro_batch_size
        check(
            micro in (None, "auto")
            or (isinstance(micro, int) and not isinstance(micro, bool) and micro >= 1),
            "micro_batch_size",
            micro,
            "auto (from the memory budget), an integer >= 1, or null (the whole minibatch at once)",
        )
        k = self.max_staleness
        integer = isinstance(k, int) and not isinstance(k, bool)
        check(integer and k >= 0, "max_staleness", k, "an integer >= 0")
        check(
            k < self.steps,
            "max_staleness",
            k,
            f"< train.steps={self.steps} (else every step trains on the initial policy's rollouts)",
        )
        check(
            not self.async_rollouts or k >= 1,
            "async_rollouts",
            str(self.async_rollouts).lower(),
            "false with train.max_staleness=0 (the next rollout needs this step's update: nothing to "
            "overlap); set train.max_staleness >= 1",
        )
        check_schedule(self.stop_at, self.eval_every, self.steps)


class Shuffler:
    """Items in a fresh seeded order each epoch; its position is part of the checkpoint."""

    def __init__(self, items: list, seed: int) -> None:
        self.items, self.seed, self.epoch, self.position = items, seed, 0, 0
        self._order = self._shuffle()

    def _shuffle(self) -> list[int]:
        order = list(range(len(self.items)))
        random.Random(f"{self.seed}-{self.epoch}").shuffle(order)
        return order

    def take(self, n: int) -> list:
        out = []
        while len(out) < n:
            if self.position == len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._shuffle()
            out.append(self.items[self._order[self.position]])
            self.position += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._shuffle()


class Counters(dict):
    """Cumulative compute counters (generated tokens, reward queries, trained tokens); resumable."""

    def __init__(self) -> None:
        super().__init__(generated_tokens=0, reward_queries=0, trained_tokens=0)

    def state_dict(self) -> dict:
        return dict(self)

    def load_state_dict(self, state: dict) -> None:
        self.update(state)
