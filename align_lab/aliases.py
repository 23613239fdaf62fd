"""The old names of keys that became a part's config node, accepted for one release (docs/algorithms.md
"Renamed keys"): an override typed with one (the command line, a sweep, a study's file), an older run's
recorded config, read back. Each maps to the nested key and is said once; the old and the new name of one
key in one command is refused in one line. Standard library only: the entry points, admission, the run
folder's checks and the aggregator read it.

A run's digest (run/summary.py config_digest) is taken over the old flat names (flat()), so the digests
that runs recorded before the rename (summary.json, every checkpoint's identity) still match."""

from __future__ import annotations

import sys
from dataclasses import is_dataclass

GROUP = "algo"
# the old flat key of an algorithm -> its key in the part's node (algorithms/parts.py RatioClip: algo.clip)
RENAMED = {
    "clip": "clip.low",  # a number; algo.clip={low: ...} is the node itself
    "clip_high": "clip.high",
    "dual_clip": "clip.dual",
    "log_ratio_clamp": "clip.log_ratio_clamp",
    # RolloutCorrection: algo.correction
    "rollout_correction": "correction.mode",
    "correction_level": "correction.level",
    "sequence_ratio": "correction.sequence_ratio",
    "correction_low": "correction.low",
    "correction_high": "correction.high",
    "masked_in_denominator": "correction.masked_in_denominator",
    "mask_is_weight": "correction.mask_is_weight",
    "correction_ratio": "correction.ratio",
    "ppo_anchor": "correction.ppo_anchor",
    "normalize_weights": "correction.normalize_weights",
    "reject": "correction.reject",
    "reject_low": "correction.reject_low",
    "reject_high": "correction.reject_high",
    "reject_ratio": "correction.reject_ratio",
    "reject_negative_only": "correction.reject_negative_only",
    "max_rejected_steps": "correction.max_rejected_steps",
}
NODES = {new.split(".")[0] for new in RENAMED.values()}
_said: set[str] = set()


class RenameConflict(ValueError):
    """An old and a new name of one key in one command."""


def note(old: str, new: str, value) -> str:
    return f"{GROUP}.{old}={value} is now {GROUP}.{new} (the old name works for one release)"


def say(notes: list[str]) -> None:
    """Each note on stderr, once per process (a run, or a sweep's launching process)."""
    for line in notes:
        if line not in _said:
            _said.add(line)
            print(f"align_lab: {line}", file=sys.stderr)


def _is_old(name: str, value) -> bool:
    """`name` is an old flat key holding `value` (algo.clip holding a mapping, or the part, is the node)."""
    if name not in RENAMED:
        return False
    node = isinstance(value, dict) or is_dataclass(value) or str(value).lstrip().startswith("{")
    return not (name in NODES and node)


def rename_override(text: str) -> tuple[str, str | None]:
    """("algo.clip.low=0.3", its note) for "algo.clip=0.3" ('+' / '++' kept); (text, None) otherwise."""
    key, eq, value = text.partition("=")
    lead = key[: len(key) - len(key.lstrip("+~"))]
    name = key[len(lead) :].removeprefix(f"{GROUP}.")
    if not eq or key[len(lead) :] == name or not _is_old(name, value):
        return text, None
    new = RENAMED[name]
    return f"{lead}{GROUP}.{new}={value}", note(name, new, value)


def rename_overrides(overrides, strict: bool = True) -> tuple[list[str], list[str]]:
    """(the overrides with every old name mapped, the notes). `strict`: an old and a new name of one key
    is a RenameConflict naming both (read back from a record, the later one wins, as Hydra's would)."""
    renamed, notes, by_key = [], [], {}
    for text in overrides:
        new, line = rename_override(str(text))
        key = new.partition("=")[0].lstrip("+~")
        if strict and key in by_key and (line or by_key[key][1]) and by_key[key][0] != text:
            first = by_key[key][0]
            raise RenameConflict(
                f"{first} and {text}: both set {key} (the old name and the new); keep one, {key}=..."
            )
        by_key[key] = (text, line)
        renamed.append(new)
        notes += [line] if line else []
    return renamed, notes


def nest(algo: dict) -> tuple[dict, list[str]]:
    """An algorithm's settings (a recorded config's `algo`, or one a sweep file wrote) with each old flat
    key moved into its node, the flat value winning over the node's: (settings, notes). Unchanged when
    there is none."""
    if not isinstance(algo, dict) or not any(_is_old(k, v) for k, v in algo.items()):
        return algo, []
    out = {k: v for k, v in algo.items() if not _is_old(k, v)}
    notes = []
    for name, value in algo.items():
        if _is_old(name, value):
            node, field = RENAMED[name].split(".")
            current = out.get(node)
            out[node] = {**(current if isinstance(current, dict) else {}), field: value}
            notes.append(note(name, RENAMED[name], value))
    return out, notes


def flat(algo: dict) -> dict:
    """An algorithm's settings with each node's fields back under their old flat names (the digest's form:
    the same settings digest as they did before the rename)."""
    if not isinstance(algo, dict) or not any(isinstance(algo.get(n), dict) for n in NODES):
        return algo
    old = {new: name for name, new in RENAMED.items()}
    out = {}
    for name, value in algo.items():
        if name in NODES and isinstance(value, dict):
            out.update({old.get(f"{name}.{k}", f"{name}.{k}"): v for k, v in value.items()})
        else:
            out[name] = value
    return out


def nest_config(config: dict) -> tuple[dict, list[str]]:
    """A whole run config (a dict) with its `algo` nested (nest)."""
    if not isinstance(config, dict) or not isinstance(config.get(GROUP), dict):
        return config, []
    algo, notes = nest(config[GROUP])
    return ({**config, GROUP: algo} if notes else config), notes


def flat_config(config: dict) -> dict:
    """A whole run config (a dict) with its `algo` flat (flat)."""
    if not isinstance(config, dict) or not isinstance(config.get(GROUP), dict):
        return config
    return {**config, GROUP: flat(config[GROUP])}
