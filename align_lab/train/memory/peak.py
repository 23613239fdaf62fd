"""A run's predicted peak resident memory, term by term (docs/memory.md "The memory model"): what it holds
throughout plus the largest of its phases, as train/memory/planner.py prices them for the rows it plans."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 2**20


@dataclass(frozen=True)
class Peak:
    """A run's predicted peak resident memory (bytes): held (runtime, weights of every model held, AdamW
    moments of what trains) + the largest phase (update, rollout forward, evaluation, sampling), at the
    rows planned."""

    runtime: int
    weights: int
    gradients: int
    optimiser: int
    train_row: int  # a graph row's activations (a pair's for the pairwise loop)
    train_rows: int  # rows of this process's largest update forward (micro-batch)
    forward_rows: int  # rows of the largest no-graph forward over this process's rollout (step 3, reference)
    eval_row: int  # a no-graph forward row's working set
    eval_rows: int  # rows of evaluation's largest forward
    eval_reference: int  # a reference loaded for evaluation only (the run holds none)
    kv_row: int  # a sampled row's KV cache
    rollout_rows: int  # rows of this process's rollout
    sample_rows: int  # rows of evaluation's largest sampling chunk
    eval_kept: int = 0  # what an evaluation keeps of all its rows until it ends (kept.py)
    whole_update: bool = False  # one forward: its backward frees activations as it fills gradients
    graph_kept: bool = False  # step 3's graph kept for the first update (minibatch = rollout, one forward)
    packed: int = 0  # the engine's copy of a sampled model's weights for one rollout (decode_matmul=packed)
    # train.async_rollouts: the sampling thread's frozen copy of the policy, held throughout; its sampling
    # runs beside the loop's forwards, update and evaluation
    snapshot: int = 0
    engine_copy: int = 0  # the engine's own copy of the policy, held throughout (rollout.dtype=bfloat16)
    # of `weights`, the reference's when it leaves memory between its forwards (hardware.offload_reference):
    # in memory for step 3's forwards and evaluation (its sampling too), out of it for the update
    offloaded: int = 0

    @property
    def held(self) -> int:  # throughout the run
        return (
            self.runtime + self.weights - self.offloaded + self.optimiser + self.snapshot + self.engine_copy
        )

    @property
    def phases(self) -> dict[str, int]:
        kv, back = self.kv_row, self.offloaded  # what an offloaded reference adds where it is back
        return {
            "update": (max if self.whole_update else sum)((self.gradients, self.train_rows * self.train_row)),
            # step 3's no-graph forwards, and beside them the graph kept for the first update: since
            # 2026-12-05 the frozen models' forwards run before it is made, but the kept graph's update
            # peaks above max(activations, gradients) (tests/integration/test_memory_peak.py: 833 MiB
            # measured, 722 predicted without this term), which this term holds
            "rollout forward": back
            + self.forward_rows * self.eval_row
            + (self.train_rows * self.train_row if self.graph_kept else 0),
            "evaluation": back + self.eval_reference + self.eval_rows * self.eval_row + self.eval_kept,
            "sampling": max(kv * self.rollout_rows, kv * self.sample_rows + back) + self.packed,
        }

    @property
    def total(self) -> int:
        phases = self.phases
        loop = max(phases["update"], phases["rollout forward"], phases["evaluation"])
        return self.held + max(*phases.values(), loop + phases["sampling"] if self.snapshot else 0)

    def describe(self) -> str:
        """The one line a run logs about its prediction."""
        held = {
            "runtime": self.runtime,
            "weights": self.weights - self.offloaded,
            "optimiser": self.optimiser,
        }
        held |= {"offloaded reference": self.offloaded} if self.offloaded else {}
        held |= {"sampling snapshot": self.snapshot} if self.snapshot else {}
        held |= {"sampling copy": self.engine_copy} if self.engine_copy else {}
        terms = held | {f"{k} phase": v for k, v in self.phases.items()}
        parts = ", ".join(f"{k} {v / MiB:.0f}" for k, v in terms.items())
        return f"predicted peak memory {self.total / MiB:.0f} MiB ({parts} MiB)"
