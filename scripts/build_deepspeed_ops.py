"""Compiles the DeepSpeed op that a DeepSpeed run on CPU builds on its first start (its shared-memory
comm op, deepspeed_shm_comm: about a minute on 2 cores), by the very call that run makes
(deepspeed.comm.torch.build_shm_op, from deepspeed.init_distributed), so that it lands in the same
cache (TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions) and no test waits for it. A cached op
loads in seconds. scripts/test.sh runs this beside the installs; a failed build fails it.

    .venv/bin/python scripts/build_deepspeed_ops.py
"""

from __future__ import annotations

import sys
import time


def main() -> int:
    t = time.perf_counter()
    from deepspeed.accelerator import get_accelerator
    from deepspeed.comm.torch import build_shm_op

    from align_lab.train.op_build import comm_op_build

    with comm_op_build():  # a build killed midway leaves torch's lock: ours is known as ours, and removed
        op = build_shm_op()  # None where the accelerator has no such op: DeepSpeed then uses torch's own
    name = get_accelerator().device_name()
    if op is None:
        print(f"scripts/build_deepspeed_ops.py: the {name} accelerator has no shared-memory op to build")
    else:
        seconds = time.perf_counter() - t
        print(f"scripts/build_deepspeed_ops.py: the {name} shared-memory op is ready ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
