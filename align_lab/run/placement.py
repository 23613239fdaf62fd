"""The checks of where a run's parts run together that are not built yet: DeepSpeed across nodes, and a
ZeRO-3 partitioned policy pushed into an engine that holds its own copy of the weights (vLLM)."""

from __future__ import annotations

from align_lab.config import ConfigError
from align_lab.run.spec import RunSpec


def check_nodes(spec: RunSpec) -> None:
    """What a run across nodes does not do yet."""
    if spec.hardware.nodes > 1 and spec.backend.uses_deepspeed:
        raise ConfigError(
            f"hardware.nodes={spec.hardware.nodes}: hardware.backend=deepspeed runs on one node for now; "
            "use hardware.backend=torch or hardware.nodes=1"
        )


def check_weight_push(spec: RunSpec) -> None:
    """ZeRO-3 leaves each process a shard of every weight (its state_dict() gives shape (0,) tensors),
    so an engine that is pushed the policy's state_dict (rollout.pushes_state_dict: vLLM) would load
    empty weights and fail at the first rollout; gathering each module's parameters first (TRL's
    GatheredParameters) is not built."""
    if not (spec.backend.uses_deepspeed and spec.backend.zero_stage == 3):
        return
    if getattr(spec.rollout, "pushes_state_dict", False):
        engine = spec.names.get("rollout", type(spec.rollout).__name__)
        raise ConfigError(
            f"hardware.zero_stage=3: rollout={engine} is pushed the policy's state_dict, which ZeRO-3 "
            "partitions (each process holds a shard); use hardware.zero_stage=2 or rollout=hf"
        )
