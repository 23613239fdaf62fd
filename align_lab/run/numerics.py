"""What gives the same stage inputs other bits: the stage code, libraries, device, threads, micro-batch.

`numerics()` is part of every stage key (run/stages.py), so an artifact built by other code, on another
device or with another thread count is never served to a run that would have built other bits.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import torch

# The package's code that builds the stages. Its hash is in every stage key, so an artifact built by
# other code (another clone, an older checkout sharing ~/.cache/align_lab) is never served; a
# forgotten VERSIONS bump can no longer serve one.
PACKAGE = Path(__file__).resolve().parent.parent
STAGE_CODE = (
    *("models", "tasks", "envs", "rollout", "rl", "train"),
    *("run/stages.py", "run/pairs.py", "run/teacher.py", "cache.py"),
)


@functools.cache
def code_fingerprint(root: Path = PACKAGE, entries: tuple[str, ...] = STAGE_CODE) -> str:
    """sha256 (16 hex) over the path and bytes of every .py file of `entries` under `root`."""
    digest = hashlib.sha256()
    for entry in entries:
        path = root / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(f"{file.relative_to(root).as_posix()}\0".encode() + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; platform's processor elsewhere): two CPUs with one
    instruction set can still round differently (the default run gave gold 0.509 on one 2-core
    machine and 0.249 on an AMD EPYC with the same code, 2026-11-22/23)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "unknown"


# what selects the kernels a CPU run's numbers come from, when the user sets it (issue 25 item 8;
# docs/reproducibility.md measures each)
MATH_FLAGS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def math_libraries() -> dict:
    """The BLAS and oneDNN builds torch calls (from torch.__config__.show()) and the flags above that
    are set: with the CPU's capability (numerics' "device") they decide a CPU run's bits."""
    found = {}
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if "Math Kernel Library Version" in line:
            found["blas"] = "MKL " + line.split("Version", 1)[1].split()[0].split("-")[0]
        elif line.startswith(("Intel(R) MKL-DNN", "oneDNN")):
            found["onednn"] = line.split()[2] if line.startswith("Intel") else line.split()[1]
        elif line.startswith("Build settings:") and "blas" not in found:
            blas = [part.split("=", 1)[1] for part in line.split(", ") if part.startswith("BLAS_INFO=")]
            found["blas"] = blas[0] if blas else "unknown"
    found["flags"] = {k: os.environ[k] for k in MATH_FLAGS if k in os.environ}
    return found


def numerics(micro_batch_size: int | None) -> dict:
    """What gives the same stage inputs other bits: the stage code, library versions, the device
    (GPU model, or the CPU's vector instruction set), torch's thread count and the stage's rows per
    micro-batch (resolved: an int, or None for whole batches)."""
    import tokenizers
    import transformers

    device = torch.get_default_device()
    return {
        "code": code_fingerprint(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu-{torch.backends.cpu.get_cpu_capability()} {cpu_model()}",
        # on a GPU transformers may swap layers for the Hub's kernels unless USE_HUB_KERNELS says no
        # (align_lab/__init__.py sets "0"; the user's wins): other kernels, other bits (none for a CPU)
        "math": math_libraries()
        if device.type == "cpu"
        else {"USE_HUB_KERNELS": os.environ.get("USE_HUB_KERNELS")},
        "threads": torch.get_num_threads(),
        "micro_batch_size": micro_batch_size,
    }
