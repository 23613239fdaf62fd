"""What a run that ended with an exception adds to its summary.json, and the one line said in its place
where the user can act on it: their code's error, a check only the run could make, a divergence, a
signal, a full disk, and memory that ran out (out_of_memory)."""

from __future__ import annotations

import math
import re
import traceback
from pathlib import Path

from align_lab.envs.base import EnvError
from align_lab.run.inputs import stages_from_the_task
from align_lab.run.spec import RunSpec
from align_lab.run.summary import RunStopped, resume_hint, stopped
from align_lab.train.backend import Diverged
from align_lab.train.preemption import Interrupted
from align_lab.train.submitit_signals import Preempted
from align_lab.value_checks import ArtifactMissing, ConfigError, TrainsNothing, UserCodeError, text_of

PACKAGE = Path(__file__).resolve().parents[1]  # align_lab/
UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
SIZE = r"([\d.]+) (bytes|KiB|MiB|GiB|TiB)"  # torch's format_size in its CUDA allocator's message
CPU_ALLOCATION = re.compile(r"DefaultCPUAllocator: can't allocate memory: you tried to allocate (\d+) bytes")


def failure(e: BaseException, spec: RunSpec, ckpt: Path) -> tuple[dict, BaseException | None]:
    """What a run that ended with `e` adds to its summary, and the one-line RunStopped to raise in its
    place (None: raise `e` itself)."""
    if isinstance(e, Preempted):  # requeued by the scheduler, or resumed by a rerun
        if isinstance(e.code, str):  # no scheduler requeues it: the line names the command (13th hunt)
            line = e.code.removesuffix("; rerun to resume")
            return {"status": "preempted"}, Preempted(f"align_lab: {line}; {resume_hint(ckpt)}")
        return {"status": "preempted"}, None
    if isinstance(e, UserCodeError | EnvError):  # the user's code: named, and the run kept to resume
        # its fix changes a file a resume checks (run/inputs.py): the command allows it (20th hunt, 6)
        allow = " resume_changed_inputs=true" if getattr(e, "fixed_in_checked_inputs", True) else ""
        error = f"{e}; fix it, then {resume_hint(ckpt, allow)}"
        if getattr(e, "fixed_in_config", False):  # a weight: a resume would refuse the changed key
            error = f"{e}, and run it again (a new run: a resume keeps the run's config)"
        elif allow and (stages := stages_from_the_task(str(e), ckpt)):  # 27th hunt, 13: a resume it refuses
            error = f"{e}; fix it, then rerun in another hydra.run.dir (stages {stages} are built from it)"
        return {"status": "failed", "error": error}, RunStopped(f"error: {error}")
    # one line naming the correction's keys, or a saved model that is gone
    if isinstance(e, TrainsNothing | ArtifactMissing | ConfigError):  # a check only the run could make
        return {"status": "failed", "error": str(e)}, RunStopped(f"error: {e}")
    if isinstance(e, Diverged):  # the weights were not stepped into NaN; the last checkpoint is sound
        stage = str(e).startswith(("sft ", "reward model "))  # a stage says which key to lower
        error = str(e) if stage else f"policy optimisation {e}: lower algo.lr (now {spec.algo.lr})"
        return {"status": "failed", "error": error}, RunStopped(f"error: {error}")
    stop = stopped(e, ckpt) or out_of_memory(e, spec, ckpt)
    signalled = isinstance(e, Interrupted | KeyboardInterrupt) and not getattr(e, "raised_by_code", False)
    return {
        "status": "interrupted" if signalled else "failed",
        "error": str(stop) if stop else f"{getattr(e, 'type_name', type(e).__name__)}: {text_of(e)}",
        **({} if stop else {"traceback": traceback.format_exc()}),
    }, stop


def out_of_memory(e: BaseException, spec: RunSpec | None, ckpt: Path) -> RunStopped | None:
    """The one line of memory that ran out: a GPU's (torch.OutOfMemoryError), or the machine's for one
    allocation (torch's CPU allocator, Python's MemoryError); None for anything else. It says where, what
    the run could use, and what makes its micro-batches fit: train.micro_batch_size=auto plans them for
    hardware.memory_gb (a GPU's total when unset, though other processes may hold some of it), which a
    resume may change. A CUDA out-of-memory on an H200 held to 5.6 GiB was a 143-line traceback
    (2026-12-04); the same run with hardware.memory_gb=5 completed."""
    import torch

    text = str(e)
    if isinstance(e, torch.OutOfMemoryError):
        what, room = "GPU memory", gpu_room(text)
        asked = re.search(f"Tried to allocate {SIZE}", text)
        asked = f"{asked[1]} {asked[2]}" if asked else None
    elif isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and CPU_ALLOCATION.search(text)):
        from align_lab.train.memory import machine_memory

        what, room = "memory", machine_memory()
        size = CPU_ALLOCATION.search(text)
        asked = f"{int(size[1]) / 2**30:.2f} GiB" if size else None
    else:
        return None
    train, hardware = getattr(spec, "train", None), getattr(spec, "hardware", None)
    setting, budget = getattr(train, "micro_batch_size", "auto"), getattr(hardware, "memory_gb", None)
    tried = f"tried to allocate {asked}; " * bool(asked)
    had = f"{tried}{room / 2**30:.2f} GiB for this run" if room else tried.removesuffix("; ")
    said = f"error: out of {what} {where(e)}" + f" ({had})" * bool(had)
    if setting != "auto":  # fixed rows per forward: a resume keeps them (they may move a float's bits)
        smaller = "auto" if setting is None else f"auto or below {setting}"
        fix = f"run it again with train.micro_batch_size={smaller} (a new run: a resume keeps it)"
        fixed = "null (whole minibatches)" if setting is None else setting
        return RunStopped(f"{said}: train.micro_batch_size={fixed} does not fit; {fix}")
    gb = memory_gb(room, budget)
    whole = "the device's whole memory (hardware.memory_gb unset)"
    planned = f"hardware.memory_gb={budget:g}" if budget else whole
    if gb is None:
        return RunStopped(f"{said}: micro-batches were planned for {planned}; set hardware.memory_gb lower")
    fix = resume_hint(ckpt, f" hardware.memory_gb={gb:g}")
    return RunStopped(f"{said}: micro-batches were planned for {planned}; plan them for {gb:g} GiB: {fix}")


def gpu_room(text: str) -> int | None:
    """The bytes this process could hold on its GPU, from torch's message: its per-process limit where one
    is set ("5.59 GiB allowed"), else what it holds and what is free (other processes hold the rest)."""
    allowed = re.search(f"{SIZE} allowed", text)
    if allowed:
        return size_of(allowed)
    free, held = re.search(f"of which {SIZE} is free", text), re.search(f"has {SIZE} memory in use", text)
    return size_of(free) + size_of(held) if free and held else None


def size_of(match: re.Match) -> int:
    return int(float(match[1]) * UNITS[match[2]])


def memory_gb(room: int | None, budget: float | None) -> float | None:
    """The hardware.memory_gb to plan for: 0.9 of the room the run had (a tenth of a GiB down), below a
    budget already set that did not fit (0.75 of it then); None where neither is known or it is < 0.1."""
    gb = math.floor(room / 2**30 * 0.9 * 10) / 10 if room else None
    if budget and (gb is None or gb >= budget):
        gb = math.floor(budget * 0.75 * 10) / 10
    return gb if gb and gb >= 0.1 else None


def where(e: BaseException) -> str:
    """`at align_lab/<file>:<line>`, the deepest frame of align_lab's own that the error passed through."""
    found = ""
    for frame, line in traceback.walk_tb(e.__traceback__):
        path = Path(frame.f_code.co_filename).resolve()
        if path.is_relative_to(PACKAGE):
            found = f"at align_lab/{path.relative_to(PACKAGE)}:{line}"
    return found or "during the run"
