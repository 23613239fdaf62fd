"""The digest of the training code a run executes, kept inside each of its checkpoints (run/summary.py
run_identity): a resume on changed training code would mix two versions of the code in one run's numbers,
and the stages' code versions (run/stages.py) cover only the stages. Refused at admission unless
`resume_changed_code=true` (docs/faults.md)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
# what computes a run's numbers after the stages: the loops, the algorithms and their math, the models,
# sampling, environments, rewards and tasks (the run folder, tracking and results code change no number)
TRAINING_CODE = ("algorithms", "envs", "models", "rewards", "rl", "rollout", "tasks", "train")


@lru_cache(maxsize=1)
def training_code_digest() -> str:
    """sha256 over the training code's .py files (their paths and bytes), 16 hex chars."""
    digest = hashlib.sha256()
    for folder in TRAINING_CODE:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
