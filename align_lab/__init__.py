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
# once), "ACTIVE" (it spins), or None (libgomp's default: spin 300,000 times, then sleep)
OMP_WAIT_POLICY: str | None = None


def wait_policy(environ: MutableMapping[str, str], policy: str | None) -> None:
    """Puts `policy` in environ["OMP_WAIT_POLICY"] unless the user set one (None: leaves environ)."""
    if policy is not None:
        environ.setdefault("OMP_WAIT_POLICY", policy)


wait_policy(os.environ, OMP_WAIT_POLICY)
