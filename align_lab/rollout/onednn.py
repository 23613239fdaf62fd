"""rollout.decode_matmul=packed: the decode step's matmuls with oneDNN on weights reordered once a
rollout into its blocked layout for a few rows (docs/rollout.md, item 9). Not F.linear's bits (other
blocking, another summation order: |d logit| ~1e-5 at SmolLM2's shapes); the loss's log-probs are the
trainer's forward's whatever the engine's are (train/online.py, step 3), so only rollout/mismatch_*
see the difference. With rollout.dtype=bfloat16 the packed bf16 weights take oneDNN's AMX kernels
where the CPU has them."""

from __future__ import annotations

import torch
from torch import Tensor


def packed(weight: Tensor, rows: int) -> Tensor | None:
    """`weight` (out, in) reordered by oneDNN for matmuls of `rows` rows (a hint: other row counts
    multiply too). A copy: valid while the weights do not change (one rollout: mirror.mirrored). None
    (the step multiplies as `exact`) for bf16 weights on a CPU whose oneDNN has no bf16 kernels (AVX2)."""
    if not packs(weight.dtype):
        return None
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)


def packs(dtype: torch.dtype) -> bool:
    """Whether `packed` packs weights of `dtype` here: bf16 needs oneDNN's bf16 kernels."""
    return dtype != torch.bfloat16 or bf16_kernels()


def bf16_kernels() -> bool:
    """oneDNN has bf16 matmul kernels on this CPU (AVX-512 BF16, AMX; not AVX2)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def packed_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x (..., in) times a `packed` weight, plus bias: (..., out)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
