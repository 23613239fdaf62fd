"""align_lab: RLHF experiments as Hydra configs (python -m align_lab).

OpenMP's wait policy is set here, on the package's first import, because libgomp (torch's OpenMP
runtime) reads it once, when torch is first imported: every entry point (`python -m align_lab`, a
submitit job, which unpickles align_lab's launcher) imports this package before torch. A value the user
set in the environment wins. docs/scaling_out.md, "Beside another process".
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# the OpenMP wait policy every align_lab process starts torch with: "PASSIVE" (a waiting thread sleeps at
# once), "ACTIVE" (it spins), or None (libgomp's default: spin 300,000 times, then sleep). PASSIVE: two
# SmolLM2 runs at once on 2 cores took 20x their step alone with libgomp's default, 1.5x with it,
# which costs a run alone ~10% (docs/scaling_out.md, "Beside another process")
OMP_WAIT_POLICY: str | None = "PASSIVE"


def wait_policy(environ: MutableMapping[str, str], policy: str | None) -> None:
    """Puts `policy` in environ["OMP_WAIT_POLICY"] unless the user set one (None: leaves environ)."""
    if policy is not None:
        environ.setdefault("OMP_WAIT_POLICY", policy)


wait_policy(os.environ, OMP_WAIT_POLICY)
