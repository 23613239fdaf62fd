"""rollout.decode_matmul: how the decode step multiplies on this machine (docs/rollout.md, items 7
and 9). `exact`: as the model's forward, F.linear, its logits the forward's bit for bit; `fast`: as
W @ h^T, the same products summed in another order; `packed`: oneDNN on the weights reordered once a
rollout (rollout/onednn.py). `auto` (the default) takes, for a policy at least LEFT_MIN_WIDTH wide on
a CPU: `packed` on an AMD CPU with AVX-512, `fast` on another AMD CPU, `exact` on every other CPU; and
`exact` on a GPU and for a narrower policy. The choice depends only on the machine and the model: a
run's numbers stay the same on one machine, and summary.json records it (`resolved`). The prefill's
head reads its last position as `last_logits` says (a bfloat16 model on a CPU: by index)."""

from __future__ import annotations

import functools
import inspect

import torch

from align_lab.rollout.decode import hidden_size
from align_lab.rollout.onednn import packs

DECODE_MATMULS = ("auto", "exact", "fast", "packed")  # rollout.decode_matmul
LEFT_MIN_WIDTH = 512  # hidden size from which auto leaves F.linear on an AMD CPU (SmolLM2-135M: 576)


@functools.cache
def cpu_vendor() -> str:
    """The CPU's vendor id (Linux /proc/cpuinfo: GenuineIntel, AuthenticAMD, ...), or "" where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")), "")
    except OSError:
        return ""


def cpu_capability() -> str:
    """The instruction set torch's CPU kernels run with here: "AVX512", "AVX2", "DEFAULT", ..."""
    return torch.backends.cpu.get_cpu_capability()


def onednn_here(device: str) -> bool:
    """Whether the decode step can multiply packed weights on `device`: a CPU whose torch has oneDNN."""
    return device == "cpu" and torch.backends.mkldnn.is_available()


def decode_way(
    setting: str, device: str = "cpu", width: int | None = None, vendor: str | None = None,
    capability: str | None = None,
) -> str:  # fmt: skip
    """`setting` resolved for a policy of hidden size `width` (None: not known, taken as wide) whose
    weights are on `device`: "exact", "fast" or "packed". vendor / capability: this CPU's (cpu_vendor,
    cpu_capability) unless given.

    auto, on an AMD CPU: MKL's F.linear at decode shapes is the slow way there. With AVX-512 (EPYC Zen 4
    and Zen 5) oneDNN's packed weights are the fastest way measured: SmolLM2's GRPO rollout 0.56-0.75x
    `fast`'s, its peak 0.5-2% higher, within its run-to-run spread (its copy of the weights lives one
    rollout; the update's gradients are freed before it: docs/rollout.md item 9); on the AVX2 EPYC
    `fast` (W @ h^T: its 30 layers 63.1 ms at 8 rows against F.linear's 76.7, docs/rollout.md item 7;
    `packed` not measured there). Every
    other CPU keeps `exact` (the Xeon's W @ h^T is 1.2-1.4x slower; its packed fp32 not measured idle),
    a GPU multiplies as the forward does, and a policy narrower than LEFT_MIN_WIDTH keeps `exact`: its
    matmuls are too small to be bound by reading the weights, and W @ h^T's transposes cost more than
    MKL's path saves (the toy policy, 64 wide: a decode step 1.17 ms as F.linear against 1.47 as W @ h^T
    at 16 rows; hidden 256 6.6 against 6.9; the AVX2 EPYC, 1 thread, 2026-11-28): its numbers are then
    the same on every CPU family. `packed` without oneDNN multiplies as `exact`."""
    if setting == "packed":
        return "packed" if onednn_here(device) else "exact"
    if setting != "auto":
        return setting
    narrow = width is not None and width < LEFT_MIN_WIDTH
    if device != "cpu" or narrow or (vendor if vendor is not None else cpu_vendor()) != "AuthenticAMD":
        return "exact"
    avx512 = (capability if capability is not None else cpu_capability()).startswith("AVX512")
    return "packed" if avx512 and onednn_here(device) else "fast"


def decode_ways(setting: str, device: str = "cpu", width: int | None = None) -> tuple[bool, bool]:
    """(weights_left, weights_packed) of one resolution: what sampling.sample_with_cache takes."""
    way = decode_way(setting, device, width)
    return way == "fast", way == "packed"


def weights_left(
    setting: str, device: str = "cpu", vendor: str | None = None, width: int | None = None
) -> bool:
    """Whether the decode step multiplies as W @ h^T (decode._linear's left)."""
    return decode_way(setting, device, width, vendor) == "fast"


def weights_packed(setting: str, device: str = "cpu", width: int | None = None) -> bool:
    """Whether the decode step multiplies oneDNN's packed weights (rollout/onednn.py)."""
    return decode_way(setting, device, width) == "packed"


def resolved(engine, device: str = "cpu", width: int | None = None) -> dict:
    """What a run's rollouts multiply with (rollout.decode_matmul resolved for a policy of hidden size
    `width`), for its summary.json."""
    setting = getattr(engine, "decode_matmul", None)
    if setting is None:  # an engine without the setting (vLLM): nothing to record
        return {}
    return {"rollout/decode_matmul": decode_way(setting, device, width)}


def packed_bytes(engine, model, device: str | None = None) -> int:
    """The bytes of the copy of `model`'s weights a rollout of `engine` packs on `device` (None: where
    the weights are; 0: it packs none): every plain linear's weight (the LM head's included, tied or
    not; a LoRA linear's base stays unpacked) at the dtype it samples in. The copy lives one rollout:
    the memory plan's sampling phase (train/memory/planner.py)."""
    setting = getattr(engine, "decode_matmul", None)
    device = device or next((p.device.type for p in model.parameters()), "cpu")
    if setting is None or not weights_packed(setting, device, hidden_size(model)):
        return 0  # an engine without the setting (vLLM: its dtype may be None) packs nothing
    dtype = getattr(torch, getattr(engine, "dtype", None) or "float32")
    if not packs(dtype):
        return 0  # bf16 on a CPU without oneDNN's bf16 kernels: nothing packed (onednn.packed)
    lora = {id(part) for m in model.modules() if hasattr(m, "base_layer") for part in m.modules()}
    plain = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and id(m) not in lora]
    return sum(m.weight.numel() for m in plain) * dtype.itemsize


def last_logits(model, P: int) -> dict:
    """The prefill's `logits_to_keep` (where the model's forward takes it), its last position of `P`: 1,
    or the index of it for a CPU model in a 16-bit dtype, whose head then reads a contiguous copy of that
    position's hidden states: torch's CPU linear of the strided slice hidden[:, -1:] in bfloat16 expands
    the head's weight to every row (SmolLM2, 47 prompts: 47 x 576 x 49,152 x 2 bytes, 2.5 GiB) for the
    same bits. float32 keeps the slice (a contiguous copy moves its last bits)."""
    if "logits_to_keep" not in inspect.signature(model.forward).parameters:
        return {}
    weight = next(model.parameters())
    index = weight.device.type == "cpu" and weight.dtype != torch.float32
    return {"logits_to_keep": torch.tensor([P - 1]) if index else 1}
