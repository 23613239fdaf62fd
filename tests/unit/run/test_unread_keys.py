"""A setting away from its default that the run does not read, because the key that turns it on is off,
is said once the run is admitted (run/unread.py): `hardware.zero_stage=3` under the torch backend ran with
rc 0 and no word (seventh hunt of 2026-12-04, d3). Said, not refused: a sweep over the switch gives the
key to every arm on purpose; and after the folder checks, so that a refused resume writes nothing."""

from __future__ import annotations

from types import SimpleNamespace

from align_lab.models.lora import LoRA
from align_lab.run.hardware import Hardware
from align_lab.run.unread import unread


def spec(hardware: dict | None = None, lora: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(hardware=Hardware(**(hardware or {})), lora=LoRA(**(lora or {})))


def test_a_setting_whose_switch_is_off_is_said():
    assert unread(spec({"zero_stage": 3})) == [
        "hardware.zero_stage=3 is read only with hardware.backend=deepspeed, and this run has "
        "hardware.backend=torch: it changes nothing"
    ]
    assert unread(spec(lora={"r": 16, "target_modules": ["q_proj"]})) == [
        "lora.r=16 is read only with lora.enabled=true, and this run has lora.enabled=false: it changes "
        "nothing",
        "lora.target_modules=['q_proj'] is read only with lora.enabled=true, and this run has "
        "lora.enabled=false: it changes nothing",
    ]


def test_a_setting_read_by_its_run_or_at_its_default_is_not():
    assert unread(spec({"backend": "deepspeed", "zero_stage": 3}, {"enabled": True, "r": 16})) == []
    assert unread(spec()) == []  # every default, the switches off
    assert unread(spec({"zero_stage": 2}, {"r": 8})) == []  # typed at the default: nothing changes either way
