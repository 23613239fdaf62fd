"""Name -> component tables, read from the config groups: a YAML in conf/<group>/ registers a choice."""

from __future__ import annotations

from pathlib import Path

import yaml

CONF = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ("algo", "model", "task", "env", "reward", "judge", "rollout", "hardware", "tracker")


def choices(group: str) -> list[str]:
    """The choices of a config group, e.g. choices("algo") -> ["dpo", "ppo", "reinforce_pp"]."""
    if group not in GROUPS:
        raise ValueError(f"group={group}: must be one of {', '.join(GROUPS)}")
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def target(group: str, choice: str) -> str | None:
    """The `_target_` a choice builds (following `defaults:` to its base), or None."""
    data = yaml.safe_load((CONF / group / f"{choice}.yaml").read_text()) or {}
    if "_target_" in data:
        return data["_target_"]
    # a base may carry a package (`hf@model` in a global preset such as model/smollm2_135m.yaml)
    bases = [d.split("@")[0] for d in data.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    return target(group, bases[0]) if bases else None
