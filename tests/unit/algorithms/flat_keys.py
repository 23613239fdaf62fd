"""An algorithm built from keys that may use the old flat names of a part's node (algo.correction's
rollout_correction, correction_high, ...; align_lab/aliases.py), as the peers' tests write them: the alias
in Python, each node's keys becoming its part."""

from __future__ import annotations

from align_lab.algorithms.parts import RatioClip, RolloutCorrection
from align_lab.aliases import nest

PARTS = {"clip": RatioClip, "correction": RolloutCorrection}


def algo_of(cls, **keys):
    """cls(**keys), the old flat keys of a node built into its part (RolloutCorrection(mode=...))."""
    nested, _ = nest(keys)
    return cls(**{k: PARTS[k](**v) if k in PARTS and isinstance(v, dict) else v for k, v in nested.items()})
