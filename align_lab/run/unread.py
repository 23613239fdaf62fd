"""Settings a run does not read: a key away from its default whose switch is off (`hardware.zero_stage`
under `hardware.backend=torch`, a `lora.*` key under `lora.enabled=false`) changed nothing, and the run
said nothing (seventh hunt of 2026-12-04, d3: `hardware.zero_stage=3`, rc 0). Said, not refused: a sweep
over the switch (`-m hardware.backend=torch,deepspeed hardware.zero_stage=3`) gives the key to every arm
on purpose."""

from __future__ import annotations

import dataclasses

from align_lab.models.lora import LoRA
from align_lab.run.hardware import Hardware


def default_of(cls, name: str):
    """The default of a dataclass's field `name`."""
    (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def line(key: str, value, switch: str, on: str, now: str) -> str:
    return (
        f"{key}={value} is read only with {switch}={on}, and this run has {switch}={now}: it changes nothing"
    )


def unread(spec) -> list[str]:
    """A line for each setting of `spec` away from its default that the run does not read."""
    hw, lora, lines = spec.hardware, spec.lora, []
    if hw.backend != "deepspeed" and hw.zero_stage != default_of(Hardware, "zero_stage"):
        lines.append(line("hardware.zero_stage", hw.zero_stage, "hardware.backend", "deepspeed", hw.backend))
    for f in dataclasses.fields(LoRA) if not lora.enabled else ():
        if f.name != "enabled" and (value := getattr(lora, f.name)) != default_of(LoRA, f.name):
            lines.append(line(f"lora.{f.name}", value, "lora.enabled", "true", "false"))
    return lines
