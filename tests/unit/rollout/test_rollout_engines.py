"""The rollout-engine contract, without vllm installed: every `rollout=` choice builds into an engine
with sample/sync/close, bad settings end in one line, and the vLLM engine sees in-place weight changes.
The vLLM engine itself runs in tests/integration/test_vllm.py (scripts/test_vllm.sh)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from align_lab import registry
from align_lab.config import ConfigError
from align_lab.rollout.vllm import _weights_version
from align_lab.run.admission import spec_from_config
from align_lab.run.cross_checks import check_run
from tests.conftest import compose


@pytest.mark.parametrize("choice", registry.choices("rollout"))
def test_every_rollout_choice_builds_an_engine_with_the_contract(choice, tmp_path):
    engine = spec_from_config(*compose([f"rollout={choice}", f"cache_dir={tmp_path}"])).rollout
    for method in ("sample", "sync", "close"):
        assert callable(getattr(engine, method)), method
    assert engine.temperature == 1.0
    engine.sync(torch.nn.Linear(2, 2))  # before any sample: nothing to push, nothing started
    engine.close()


@pytest.mark.parametrize(
    "override,expected",
    [
        (
            "rollout.dtype=int8",
            "rollout.dtype=int8: must be one of auto, float32, bfloat16, float16 (or fp32, bf16, fp16)",
        ),
        ("rollout.sleep_level=3", "rollout.sleep_level=3: must be 1 (offload weights) or 2 (drop them)"),
        (
            "rollout.gpu_memory_utilization=1.5",
            "rollout.gpu_memory_utilization=1.5: must be in (0, 1] (or null: by the model's size)",
        ),
        ("rollout.top_k=-1", "rollout.top_k=-1: must be >= 0 (0: no top-k filtering)"),
    ],
)
def test_bad_vllm_settings_are_one_line_at_build(override, expected, tmp_path):
    with pytest.raises(ConfigError) as e:
        spec_from_config(*compose(["rollout=vllm", override, f"cache_dir={tmp_path}"]))
    assert str(e.value) == expected


def test_a_bad_hf_rollout_dtype_is_one_line_at_build(tmp_path):
    with pytest.raises(ConfigError) as e:
        spec_from_config(*compose(["rollout=hf", "rollout.dtype=float16", f"cache_dir={tmp_path}"]))
    assert str(e.value) == "rollout.dtype=float16: must be float32 (fp32) or bfloat16 (bf16)"


def test_a_bad_hf_rollout_sampler_is_one_line_at_build(tmp_path):
    with pytest.raises(ConfigError) as e:
        spec_from_config(*compose(["rollout=hf", "rollout.sampler=gumbel", f"cache_dir={tmp_path}"]))
    assert str(e.value) == "rollout.sampler=gumbel: must be inverse_cdf or multinomial"


@pytest.mark.parametrize("short,name", [("fp32", "float32"), ("bf16", "bfloat16")])
def test_rollout_dtype_takes_the_fields_short_names(short, name, tmp_path):
    """rollout.dtype=bf16 (the name OpenRLHF, verl and DeepSpeed use) is bfloat16, on both engines."""
    for engine in ("hf", "vllm"):
        spec = spec_from_config(
            *compose([f"rollout={engine}", f"rollout.dtype={short}", f"cache_dir={tmp_path}"])
        )
        assert spec.rollout.dtype == name, engine


def test_rollout_vllm_without_vllm_installed_fails_in_one_line_before_any_compute(tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here; this checks the message where it is not")
    spec = spec_from_config(*compose(["rollout=vllm", f"cache_dir={tmp_path}"]))
    with pytest.raises(ConfigError, match=r"^rollout=vllm: the vllm package is not installed") as e:
        check_run(spec)
    assert "scripts/setup_vllm.sh" in str(e.value) and "\n" not in str(e.value)


def test_weights_version_changes_with_in_place_updates_only():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    v0 = _weights_version(model)
    model(torch.randn(4, 3)).sum().backward()
    assert _weights_version(model) == v0  # a forward and backward leave the weights alone
    optimizer.step()
    v1 = _weights_version(model)
    assert v1 != v0
    model.load_state_dict({k: torch.zeros_like(v) for k, v in model.state_dict().items()})
    assert _weights_version(model) != v1
    assert _weights_version(torch.nn.Linear(3, 2))[0] != v0[0]  # another model is another version


NOT_INSTALLED = "{}: the {} package is not installed (pip install -e '.[{}]')"


@pytest.mark.parametrize(
    "override,package,extra",
    [("lora.enabled=true", "peft", "lora"), ("hardware.backend=deepspeed", "deepspeed", "deepspeed")],
)
def test_an_optional_package_a_key_needs_is_named_in_one_line_before_any_compute(
    override, package, extra, tmp_path, monkeypatch
):
    """.venv-vllm has no peft: a LoRA run there ended in a traceback after its stages were built."""
    spec = spec_from_config(*compose([override, f"cache_dir={tmp_path}"]))
    find_spec = importlib.util.find_spec
    missing = lambda name, *a: None if name == package else find_spec(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", missing)
    with pytest.raises(ConfigError) as e:
        check_run(spec)
    assert str(e.value) == NOT_INSTALLED.format(override, package, extra)


def test_a_lora_policy_on_vllm_is_refused_in_one_line_before_any_compute(tmp_path):
    """vLLM starts from and reloads the policy's state_dict under transformers' names: a peft policy's
    adapters would not reach it (and its prefixed names not load)."""
    spec = spec_from_config(*compose(["rollout=vllm", "lora.enabled=true", f"cache_dir={tmp_path}"]))
    with pytest.raises(ConfigError) as e:
        check_run(spec)
    assert str(e.value) == (
        "lora.enabled=true: rollout=vllm cannot sample a LoRA policy yet (its adapters are not pushed to "
        "the engine); use rollout=hf"
    )
    check_run(spec_from_config(*compose(["lora.enabled=true", f"cache_dir={tmp_path}"])))  # the HF engine
