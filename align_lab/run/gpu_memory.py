"""A GPU other processes share, said before the first step: with hardware.memory_gb unset a run plans its
micro-batches for the GPU's whole memory (the same sizes on the same GPU, whatever else runs: they may
move a float's last bits), so where others hold memory the plan's predicted peak may not fit what is left.
On an H200 held to 5.6 GiB the run planned for 139.8 GiB and stopped out of memory in its first update
(2026-12-04, docs/gpu.md "The fifth lease"); this says so, with the hardware.memory_gb that fits, before
any step is taken."""

from __future__ import annotations

import logging

from align_lab.run.failure import memory_gb

log = logging.getLogger("align_lab")
GiB = 2**30


def shared_gpu_line(device: str, peak: int, free: int, held: int, allowed: int) -> str | None:
    """The warning for a predicted `peak` (bytes) past what this process can reach on `device`: what is
    free now and what its own allocator holds (`held`), within its per-process limit (`allowed`); None
    where the peak fits."""
    room = min(free + held, allowed)
    if peak <= room:
        return None
    gb = memory_gb(room, None)
    fix = f"set hardware.memory_gb={gb:g} (0.9 of that room)" if gb else "free the GPU"
    return (
        f"{device} has {room / GiB:.2f} GiB this run can use (other processes hold the rest, or a "
        f"per-process limit), and its micro-batches were planned for its whole memory (hardware.memory_gb "
        f"unset): a predicted peak of {peak / GiB:.2f} GiB; if it stops out of memory, {fix}"
    )


def say_shared_gpu(hardware, planned) -> None:
    """Logs shared_gpu_line for this process's GPU where the run plans for its whole memory."""
    import torch

    if hardware.device != "cuda" or hardware.memory_gb or not torch.cuda.is_available():
        return
    index = torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    allowed = int(total * torch.cuda.get_per_process_memory_fraction(index))
    held = torch.cuda.memory_reserved(index)
    if line := shared_gpu_line(f"cuda:{index}", planned.peak.total, free, held, allowed):
        log.warning(f"align_lab: warning: {line}")
