"""align_lab: RLHF experiments as Hydra configs (python -m align_lab).

OpenMP's wait policy is set here, on the package's first import, because libgomp (torch's OpenMP
runtime) reads it once, when torch is first imported: every entry point (`python -m align_lab`, a
submitit job, which unpickles align_lab's launcher) imports this package before torch. A value the user
set in the environment wins. docs/scaling_out.md, "Beside another process". torch's huge-page switch
for its CPU allocator is set here for the same reason (read at torch's first allocation).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping, MutableMapping

# the OpenMP wait policy every align_lab process starts torch with: "PASSIVE" (a waiting thread sleeps at
# once), "ACTIVE" (it spins), or None (libgomp's default: spin 300,000 times, then sleep). PASSIVE: two
# SmolLM2 runs at once on 2 cores took 20x their step alone with libgomp's default, 1.5x with it,
# which costs a run alone ~10% (docs/scaling_out.md, "Beside another process")
OMP_WAIT_POLICY: str | None = "PASSIVE"
# ...but before sleeping a waiting thread spins this many times (GOMP_SPINCOUNT overrides the policy's
# spin count), unless the user set GOMP_SPINCOUNT or OMP_WAIT_POLICY: on the 2-core Sapphire Rapids Xeon
# PASSIVE's futex wake-up at each of a decode step's parallel regions made SmolLM2's rollout 1.7x slower
# (4.7 s against 2.8). Beside another process spins cost what PASSIVE saves; tiny models run on one
# thread (model.max_threads), where nothing waits. 3,000: a SmolLM2 step alone 16% faster than PASSIVE's,
# two at once 1.91x and beside a busy thread 1.82x their step alone (10,000 spins with
# rollout.threads=load, then called auto: 2.40x, 2.07x; with tcmalloc, align_lab/malloc.py, 2.16x and
# 2.10x of a faster step alone): docs/scaling_out.md. None: the policy's own spin count.
GOMP_SPINCOUNT: str | None = "3000"


def spin_count(environ: MutableMapping[str, str], count: str | None) -> None:
    """Puts `count` in environ["GOMP_SPINCOUNT"] unless the user set it or an OMP_WAIT_POLICY (None: leaves
    environ)."""
    if count is not None and "OMP_WAIT_POLICY" not in environ:
        environ.setdefault("GOMP_SPINCOUNT", count)


def wait_policy(environ: MutableMapping[str, str], policy: str | None) -> None:
    """Puts `policy` in environ["OMP_WAIT_POLICY"] unless the user set one (None: leaves environ)."""
    if policy is not None:
        environ.setdefault("OMP_WAIT_POLICY", policy)


# torch's CPU allocator asks the kernel for transparent huge pages (2 MiB, madvise) for every tensor of
# 2 MiB or more when THP_MEM_ALLOC_ENABLE is "1", read once, at torch's first allocation: a fresh tensor
# then costs one page fault per 2 MiB, not per 4 KiB: half the page faults of a SmolLM2 GRPO step on the AVX2
# EPYC, faster in 3 of 4 pairs (docs/memory.md, "Huge pages"). None: torch's default (off). The user's wins.
THP_MEM_ALLOC: str | None = "1"


def huge_pages(environ: MutableMapping[str, str], value: str | None) -> None:
    """Puts `value` in environ["THP_MEM_ALLOC_ENABLE"] unless the user set it (None: leaves environ)."""
    if value is not None:
        environ.setdefault("THP_MEM_ALLOC_ENABLE", value)


# transformers (5.x) loads a model with use_kernels=True unless USE_HUB_KERNELS says no: where the `kernels`
# package is installed its layers may be swapped for kernels fetched from the Hugging Face Hub at load time
# (code and numbers a run's config does not name, downloaded at run time), and where it is not, every
# from_pretrained fails ("Kernels are not available": each run on the lent H200 of 2026-12-04, whose image
# has no `kernels`; docs/gpu.md). "0": transformers' own layers, installed or not. The user's setting wins.
HUB_KERNELS: str | None = "0"


def hub_kernels(environ: MutableMapping[str, str], value: str | None) -> None:
    """Puts `value` in environ["USE_HUB_KERNELS"] unless the user set it (None: leaves environ)."""
    if value is not None:
        environ.setdefault("USE_HUB_KERNELS", value)


# ALIGN_LAB_PROCESS=untouched: importing align_lab changes nothing of the process (none of the settings
# here, nor glibc's mmap threshold below): for another library's process that imports align_lab only for
# its tasks, and must run on that library's own defaults (benchmarks/real_model_vs_trl.py's TRL worker)
UNTOUCHED = os.environ.get("ALIGN_LAB_PROCESS") == "untouched"
_before = dict(os.environ)
if not UNTOUCHED:
    spin_count(os.environ, GOMP_SPINCOUNT)  # before the policy: a policy the user chose keeps its own spins
    wait_policy(os.environ, OMP_WAIT_POLICY)
    huge_pages(os.environ, THP_MEM_ALLOC)
    hub_kernels(os.environ, HUB_KERNELS)
# what this import put in os.environ (a user's own settings are not here): a benchmark takes these out
# of another library's worker, which must run with that library's defaults (benchmarks/real_model_vs_trl.py)
SET_ENV: dict[str, str] = {k: v for k, v in os.environ.items() if _before.get(k) != v}


# glibc malloc serves a block of at least this many bytes from its own mapping, returned to the system
# when freed. Its default threshold rises (up to 32 MiB) each time such a block is freed, after which
# freed activations of up to that size stay in the heap: REINFORCE++ 64 x 64 on SmolLM2 peaked at 4157 MiB
# with it, 3892 MiB with 1 MiB fixed (docs/memory.md, "The allocator"). None: glibc's default. (Under
# tcmalloc, which `python -m align_lab` starts with where installed, align_lab/malloc.py, it has no effect.)
MMAP_THRESHOLD: int | None = 1 << 20
M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc's malloc.h)


def mmap_threshold(environ: Mapping[str, str], threshold: int | None) -> bool:
    """Fixes glibc malloc's mmap threshold at `threshold` bytes unless the user set MALLOC_MMAP_THRESHOLD_
    (read by glibc at start) or this is not Linux with glibc; returns whether it was set."""
    if threshold is None or "MALLOC_MMAP_THRESHOLD_" in environ or not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # another C library (musl): its own allocator
        return False


mmap_threshold(os.environ, None if UNTOUCHED else MMAP_THRESHOLD)
