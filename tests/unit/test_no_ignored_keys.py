"""Every config key is used (issue 25 item 3: a key that is accepted but ignored is either used or
removed). For each dataclass that a `_target_` in conf/ builds, every field must be read somewhere
in align_lab/ or hydra_plugins/ outside the lines that validate it or print it."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VALIDATION = re.compile(r"check\(|raise |ValueError|ConfigError")


def _targets() -> set[str]:
    found = set()
    for path in (ROOT / "conf").rglob("*.yaml"):
        found |= set(re.findall(r"_target_:\s*(align_lab\.[\w.]+)", path.read_text()))
    return found


def _classes():
    for target in sorted(_targets()):
        module, _, name = target.rpartition(".")
        cls = getattr(importlib.import_module(module), name, None)
        if dataclasses.is_dataclass(cls):
            yield cls


def _code_lines() -> list[str]:
    files = [*(ROOT / "align_lab").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")]
    return [line for f in files for line in f.read_text().splitlines() if not VALIDATION.search(line)]


LINES = _code_lines()
FIELDS = [(cls, f.name) for cls in _classes() for f in dataclasses.fields(cls)]


def test_the_conf_tree_builds_dataclasses_to_audit():
    assert len(FIELDS) > 100, len(FIELDS)  # algorithms, train, sft, rewards, rollout, hardware, ...


def _read(name: str) -> bool:
    used = re.compile(rf"\.{name}\b|[\"']{name}[\"']|\b{name}=")
    # `name in line` first: the regex on only the lines that hold the name (it took 18 s over every line)
    return any(
        name in line and used.search(line) and not line.lstrip().startswith(f"{name}:") for line in LINES
    )


def test_every_config_field_is_read_outside_its_validation():
    ignored = [f"{cls.__module__}.{cls.__name__}.{name}" for cls, name in FIELDS if not _read(name)]
    assert ignored == [], f"accepted from the config but never read: {ignored}"


def test_the_audit_finds_a_field_nobody_reads():
    assert not _read("a_key_no_code_reads") and _read("kl_coef")
