"""Training backends: how a loss becomes an update of a model, chosen by `hardware.*` keys.

`torch` (the default): AdamW with warm-up, gradients summed over data-parallel ranks, clipped to
train.max_grad_norm, then one optimiser and scheduler step. `deepspeed`: the same client AdamW and
schedule inside a DeepSpeed engine at ZeRO stage 0-3 (it partitions optimiser state, gradients and,
at stage 3, weights), with clipping in its config. Both loops drive an `Updater` the same way:
zero_grad -> backward(loss) -> step(). `dtype=bf16` runs training and log-prob forward passes under
bf16 autocast (weights and optimiser stay fp32); `gradient_checkpointing` recomputes activations in
the backward pass. With the defaults (torch, fp32, no checkpointing) the ops are those of a plain
PyTorch loop, in the same order.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from align_lab.value_checks import Diverged

BACKENDS = ("torch", "deepspeed")
DTYPES = ("fp32", "bf16")
ZERO_STAGES = (0, 1, 2, 3)
NO_REENTRY = {"use_reentrant": False}  # torch.utils.checkpoint's non-reentrant variant


def make_optimizer(model, lr: float, warmup_steps: int):
    """AdamW over the trainable parameters, with a linear warm-up then constant learning rate.

    torch's fused AdamW: one pass over each parameter's weights, gradient and moments, where the
    per-tensor loop torch uses by default on CPU makes about six (four times the time on SmolLM2's
    135M parameters, benchmarks/RESULTS.md); the same update up to float rounding."""
    params = [p for p in model.parameters() if p.requires_grad]  # LoRA: the adapters only
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    )
    return optimizer, schedule


class Updater(Protocol):
    """One trained model's optimiser side; the loops call zero_grad -> backward -> step."""

    def zero_grad(self) -> None: ...
    def backward(self, loss: torch.Tensor) -> None: ...
    def step(self, apply: bool = True) -> float: ...  # returns the gradient norm before clipping
    def checkpointed(self, model: str, optimizer: str, schedule: str) -> dict: ...


@dataclass
class Backend:
    """hardware.backend / zero_stage / dtype / gradient_checkpointing (conf/hardware/cpu.yaml)."""

    backend: str = "torch"
    zero_stage: int = 2
    dtype: str = "fp32"
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        self.dtype = {"float32": "fp32", "bfloat16": "bf16"}.get(self.dtype, self.dtype)  # torch's names too
        for key, value, allowed in (
            ("backend", self.backend, BACKENDS),
            ("zero_stage", self.zero_stage, ZERO_STAGES),
            ("dtype", self.dtype, DTYPES),
        ):
            if value not in allowed:
                raise ValueError(f"{key}={value}: must be one of {', '.join(map(str, allowed))}")

    @property
    def uses_deepspeed(self) -> bool:
        return self.backend == "deepspeed"

    def autocast(self):
        """The context of training and log-prob forward passes: bf16 autocast, or nothing (fp32)."""
        if self.dtype == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(torch.get_default_device().type, dtype=torch.bfloat16)

    def prepare(self, model, lr: float, ctx, plain: bool = False) -> Updater:
        """The updater of `model` (AdamW at `lr`, ctx.train's warm-up and clip). `plain`: always the
        torch updater; the online loop's critic uses it, because the policy updater's backward (one
        loss for both models) also fills the critic's gradients."""
        checkpointing = self.gradient_checkpointing  # transformers 5's name: its old one warned on the
        if checkpointing and hasattr(model, "activation_checkpointing_enable"):  # terminal (2026-12-04, n29)
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=NO_REENTRY)
        elif checkpointing:  # transformers 4
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=NO_REENTRY)
        if self.uses_deepspeed and not plain:
            folder = Path(ctx.checkpoint_dir) / "deepspeed"
            return DeepSpeedUpdater(model, lr, ctx.train.warmup_steps, ctx.train.max_grad_norm, self, folder)
        # the DeepSpeed policy's backward scales the one loss by the process count (DeepSpeedUpdater),
        # which scales the critic's gradients too: undone here
        scale = 1 / ctx.group.size if self.uses_deepspeed else 1.0
        return TorchUpdater(model, lr, ctx.train.warmup_steps, ctx.train.max_grad_norm, ctx.group, scale)

    def every_rank_saves(self, group) -> bool:
        """A DeepSpeed engine across processes saves (and loads) its checkpoint with every process:
        each writes its own partition of the optimiser state (and, at ZeRO-3, of the weights)."""
        return self.uses_deepspeed and group.size > 1

    def every_rank_forwards(self, group) -> bool:
        """ZeRO-3 partitions the weights: a forward gathers them from every process, so every
        process runs every forward of the policy (evaluation included), in step."""
        return self.every_rank_saves(group) and self.zero_stage == 3


def check_finite_loss(loss: float, stage: str, step: int, key: str) -> float:
    """A stage's loss, or Diverged naming the stage, the step and the key to lower: nothing non-finite
    is ever stepped into, or cached."""
    if not math.isfinite(loss):
        raise Diverged(f"{stage} diverged at step {step} (loss {loss}): lower {key}")
    return loss


def check_finite_norm(norm: float, updates: int) -> float:
    """The gradient norm, or Diverged naming the optimiser step at which it stopped being finite."""
    if not math.isfinite(norm):
        raise Diverged(f"diverged at optimiser step {updates + 1} (gradient norm {norm})")
    return norm


class TorchUpdater:
    """AdamW + schedule (make_optimizer above); gradients summed over ranks, then clipped."""

    def __init__(
        self, model, lr: float, warmup_steps: int, max_grad_norm: float, group, scale: float = 1.0
    ) -> None:
        self.model, self.max_grad_norm, self.group, self.scale = model, max_grad_norm, group, scale
        self.optimizer, self.schedule = make_optimizer(model, lr, warmup_steps)

    @property
    def updates(self) -> int:
        """Optimiser steps the run has taken (for Diverged's message): the schedule's, which a checkpoint
        restores (a count of this process's own read from 1 again after a resume)."""
        return self.schedule.last_epoch

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, apply: bool = True) -> float:
        """Sums gradients over ranks, clips them; steps optimiser and schedule unless `apply` is False."""
        self.group.all_reduce_grads(self.model.parameters())
        if self.scale != 1.0:
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(self.scale)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm).item()
        try:
            check_finite_norm(norm, self.updates)  # NaN/inf weights are never stepped into
        except Diverged:
            self.optimizer.zero_grad()
            raise
        if apply:
            self.optimizer.step()
            self.schedule.step()
        self.optimizer.zero_grad()  # frees the gradients (set to None) until the next backward
        return norm

    def checkpointed(self, model: str, optimizer: str, schedule: str) -> dict:
        return {model: self.model, optimizer: self.optimizer, schedule: self.schedule}


class DeepSpeedUpdater:
    """The model in a DeepSpeed engine with the client AdamW and schedule (no DeepSpeed-built optimiser,
    which would JIT-compile an op). The engine clips (stages 1-3) and steps the schedule; at stage 0
    it does not report the norm, so we clip as the torch updater does and tell the engine not to.

    Across N processes the engine averages gradients, while each process's loss holds only its own
    rows' share of the minibatch's gradient (train/distributed.py): the loss is scaled by N, so the
    average is the sum, and N processes take the update of one."""

    def __init__(self, model, lr: float, warmup_steps: int, max_grad_norm: float, backend: Backend, folder):
        import warnings

        from align_lab.train.preemption import held

        # whole: a SIGTERM raised inside the import left deepspeed half made, and the run's end, importing
        # it again, a 122-line circular-import traceback (eighteenth hunt, case 38)
        with held("the run stops once DeepSpeed is imported ({name} again: now)"):
            import deepspeed
            from deepspeed.utils import logger

        logger.setLevel("WARNING")
        # DeepSpeed calls torch.distributed functions that torch has renamed: one warning per call, about
        # DeepSpeed's code, nothing the user can change
        warnings.filterwarnings(
            "ignore", message=r"`torch\.distributed\.\w+` is deprecated", category=FutureWarning
        )
        optimizer, schedule = make_optimizer(model, lr, warmup_steps)
        self.model, self.max_grad_norm, self.stage = model, max_grad_norm, backend.zero_stage
        config = {
            "train_micro_batch_size_per_gpu": 1,  # the loops batch; the engine never splits
            "gradient_accumulation_steps": 1,
            "gradient_clipping": max_grad_norm if self.stage > 0 else 0.0,
            "zero_optimization": {"stage": self.stage},
            "zero_allow_untested_optimizer": True,  # torch AdamW
            "steps_per_print": 2**31 - 1,
        }
        import torch.distributed as dist

        from align_lab.train.op_build import comm_op_build
        from align_lab.train.rank_env import own_env

        device = (
            torch.cuda.current_device() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        )
        own_env("LOCAL_RANK", str(local_rank(dist.get_rank(), os.environ, device)))
        with contextlib.redirect_stdout(io.StringIO()), comm_op_build(say=dist.get_rank() == 0):
            # (a bare print per process of its shm op's load); the run's group (run/execute.py)
            deepspeed.init_distributed(dist.get_backend(), verbose=False)
        self.processes = dist.get_world_size()
        self.engine, *_ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=schedule, config=config
        )
        self.state = EngineState(self.engine, Path(folder), main=dist.get_rank() == 0)

    def zero_grad(self) -> None:
        pass  # the engine zeroes gradients after each step

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss * self.processes if self.processes > 1 else loss)

    def step(self, apply: bool = True) -> float:
        if not apply:
            raise ValueError("backend=deepspeed: cannot skip an update (algo.critic_pretrain_steps)")
        norm = None
        if self.stage == 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm).item()
        self.engine.step()
        norm = norm if norm is not None else float(self.engine.get_global_grad_norm())
        return check_finite_norm(norm, self.engine.global_steps - 1)

    def checkpointed(self, model: str, optimizer: str, schedule: str) -> dict:
        """Weights, optimiser and schedule are one DeepSpeed checkpoint (partitioned at ZeRO-3)."""
        return {model: self.state}


class EngineState:
    """A DeepSpeed engine as a checkpointed object: state_dict() writes `folder/step-N` with the
    engine's own save_checkpoint and returns its tag; load_state_dict(tag) loads it back. The
    previous tag is kept until the next save, so the run's `last` checkpoint always has its files.
    Every process calls both (each saves and loads its own partitions); the main one prunes."""

    def __init__(self, engine, folder: Path, main: bool = True) -> None:
        self.engine, self.folder, self.main = engine, folder, main

    def state_dict(self) -> dict:
        from align_lab.cache import disk_full_error

        tag = f"step-{self.engine.global_steps:08d}"
        try:
            self.engine.save_checkpoint(str(self.folder), tag=tag, save_latest=False)
        except (RuntimeError, OSError) as e:  # a full disk: torch.save's RuntimeError, on each rank
            full = disk_full_error(e, self.folder / tag)
            if full is None:
                raise
            shutil.rmtree(self.folder / tag, ignore_errors=True)  # no half-written engine checkpoint
            raise full from None  # one line naming it (twentieth hunt, case 33: 79-137 lines of ranks')
        if self.main:  # after the engine's closing barrier: every process has written its files
            tags = sorted(p.name for p in self.folder.glob("step-*"))
            for old in tags[: max(0, tags.index(tag) - 1)]:
                shutil.rmtree(self.folder / old)
        return {"tag": tag}

    def load_state_dict(self, state: dict) -> None:
        path, _ = self.engine.load_checkpoint(str(self.folder), tag=state["tag"])
        if path is None:
            raise FileNotFoundError(f"DeepSpeed checkpoint {self.folder / state['tag']} is missing")


def forget_process_group() -> None:
    """Drops DeepSpeed's cached process groups and ZeRO-3's counters (module globals), so that the next
    run in this process builds its engine as a fresh process would; call before destroying the group."""
    import sys

    groups = sys.modules.get("deepspeed.utils.groups")
    offload = sys.modules.get("deepspeed.runtime.zero.parameter_offload")
    partition = sys.modules.get("deepspeed.runtime.zero.partition_parameters")
    if None in (groups, offload, partition) or "deepspeed" not in sys.modules:
        return  # never imported whole (a signal as it was imported): nothing cached, nothing to import
    for name in (
        "_WORLD_GROUP",
        "_ZERO_PARAM_INTRA_PARALLEL_GROUP",
        "_DATA_PARALLEL_GROUP",
        "_MODEL_PARALLEL_GROUP",
        "_TENSOR_MODEL_PARALLEL_GROUP",
        "mesh_device",
    ):
        setattr(groups, name, None)
    for name in ("_EXPERT_PARALLEL_GROUP", "_EXPERT_DATA_PARALLEL_GROUP", "_ALL_TO_ALL_GROUP"):
        getattr(groups, name).clear()
    # ZeRO-3 numbers parameters and modules with per-process counters, and checks that every process
    # traces the same numbers: the next run's engine here must count from 0, as its fresh workers do
    partition.Init.param_id = 0
    offload.DeepSpeedZeRoOffload._register_deepspeed_module.__defaults__[0][0] = 0


def local_rank(rank: int, env: dict[str, str] | os._Environ, cuda_device: int | None = None) -> int:
    """LOCAL_RANK for a library that takes its device from it (DeepSpeed: cuda:LOCAL_RANK): the CUDA
    device this process already uses (Hardware.use set it: cuda:0 where each Slurm task sees one GPU),
    else its rank on its node: SLURM_LOCALID in a run across Slurm tasks, else `rank` (the processes
    of one node). Never the global rank of a run across nodes (rank 9 on an 8-GPU node)."""
    if cuda_device is not None:
        return cuda_device
    from align_lab.train.slurm_world import slurm_world

    world = slurm_world(env)
    return world.local_rank if world is not None and world.size > 1 else rank
