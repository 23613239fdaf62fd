"""The roofline figures (train/roofline.py): hand-counted bytes, FLOPs and utilisations; the machine's
limits from the environment or the cache file, measured only where neither has them (a stand-in here)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import torch

from align_lab.train import roofline


class Tiny(torch.nn.Module):
    """An embedding (10 x 4), one linear 4 -> 4 with bias, an LM head 4 -> 10 (tied or not)."""

    def __init__(self, tied: bool) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.body = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 10, bias=False)
        if tied:
            self.head.weight = self.embed.weight

    def get_input_embeddings(self):
        return self.embed

    def get_output_embeddings(self):
        return self.head


def test_weights_count_the_head_and_not_an_untied_embedding():
    # untied: body 4*4 + 4 = 20, head 40; the embedding's 40 left out -> 60 params, 240 fp32 bytes
    assert roofline.matmul_params(Tiny(tied=False)) == 60
    assert roofline.weight_bytes(Tiny(tied=False)) == 240
    # tied: the one 10 x 4 matrix (40) once, with the body's 20 -> 60
    assert roofline.matmul_params(Tiny(tied=True)) == 60
    # bf16: 2 bytes each -> 120
    assert roofline.weight_bytes(Tiny(tied=True).to(torch.bfloat16)) == 120


def test_kv_bytes_per_position():
    # 2 (K, V) x 3 layers x 2 KV heads x head dim 8 x 4 bytes = 384
    config = SimpleNamespace(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    assert roofline.kv_bytes_per_position(config, 4) == 384
    # no KV heads or head_dim: all 4 heads, 32 / 4 = 8 each -> 2 x 3 x 4 x 8 x 2 = 384 at 2 bytes
    config = SimpleNamespace(num_hidden_layers=3, num_attention_heads=4, hidden_size=32)
    assert roofline.kv_bytes_per_position(config, 2) == 384
    assert roofline.kv_bytes_per_position(SimpleNamespace(), 4) == 0


def test_kv_positions():
    # row 1: P 5, R 3 -> reads 5, 6, 7 = 18 = 3*5 + 3*2/2; row 2: P 2, R 0 -> 0; row 3: P 1, R 1 -> 1
    assert roofline.kv_positions(torch.tensor([5, 2, 1]), torch.tensor([3, 0, 1])) == 19


def test_rollout_mbu_and_update_mfu():
    # 10 steps x 1000 bytes + 50 positions x 20 bytes = 11000 bytes in 0.5 s = 22000 B/s of 44000 -> 0.5
    assert roofline.rollout_mbu(10, 1000, 50, 20, 0.5, 44000.0) == pytest.approx(0.5)
    # 6 x 100 params x 30 tokens = 18000 FLOPs
    assert roofline.update_flops(100, 30) == 18000
    # 18000 FLOPs in 2 s = 9000 FLOP/s of 36000 -> 0.25
    assert roofline.update_mfu(100, 30, 2.0, 36000.0) == pytest.approx(0.25)


FACTS = {"weights": 1000, "params": 100, "kv_bytes": 20}
LIMITS = {"bandwidth": 44000.0, "peak_flops": 36000.0}


def test_step_perf_takes_the_rollouts_time_from_its_tokens_and_rate():
    # 40 tokens at 80 tokens/s: 0.5 s -> the MBU above, 0.5; 30 trained tokens in 2 s -> 0.25
    metrics = {
        "perf/decode_steps": 10,
        "perf/kv_positions": 50,
        "perf/response_tokens": 40,
        "time/generated_tokens_per_s": 80.0,
        "time/train_s": 2.0,
    }
    out = roofline.step_perf(metrics, FACTS, LIMITS, 30)
    assert out == pytest.approx({"perf/rollout_mbu": 0.5, "perf/update_mfu": 0.25})
    # a pairwise step samples nothing; a resumed run's first step has no token count
    assert roofline.step_perf({"time/train_s": 2.0}, FACTS, LIMITS, None) == {}


def test_observe_counts_each_steps_tokens_and_the_run_means(monkeypatch):
    monkeypatch.setenv(roofline.ENV, "44000,36000")
    state: dict = {}
    policy = Tiny(tied=False)  # 60 matmul params; the figures below use FACTS instead
    step = {"time/train_s": 2.0}
    roofline.observe(state, policy, "/nonexistent", {**step, "counters/trained_tokens": 30}, done=1)
    state["facts"] = {**FACTS}
    # step 2: 90 - 30 = 60 tokens: 6 x 100 x 60 = 36000 FLOPs in 2 s of 36000 FLOP/s -> 0.5
    out = roofline.observe(state, policy, "/nonexistent", {**step, "counters/trained_tokens": 90}, done=2)
    assert out == pytest.approx({"perf/update_mfu": 0.5})
    # step 1 with 60 params: 6 x 60 x 30 = 10800 FLOPs / 2 s / 36000 = 0.15; mean (0.15 + 0.5) / 2
    assert roofline.run_means(state) == pytest.approx({"perf/update_mfu": 0.325})
    # a resumed run (its first step is step 5): no previous count, no figure
    resumed: dict = {}
    out = roofline.observe(resumed, policy, "/nonexistent", {**step, "counters/trained_tokens": 90}, done=5)
    assert out == {}


def test_limits_are_measured_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv(roofline.ENV, raising=False)
    calls = []

    def fake(device, dtype):
        calls.append(dtype)
        return {"bandwidth": 1.0, "peak_flops": 2.0, "measured": "now"}

    cpu = torch.device("cpu")
    first = roofline.machine_limits(tmp_path, cpu, torch.float32, fake)
    again = roofline.machine_limits(tmp_path, cpu, torch.float32, fake)
    assert first == again == {"bandwidth": 1.0, "peak_flops": 2.0, "measured": "now", "probe": roofline.PROBE}
    assert calls == [torch.float32]  # the second read the file
    roofline.machine_limits(tmp_path, cpu, torch.bfloat16, fake)  # another dtype: its own entry
    known = json.loads((tmp_path / roofline.FILE).read_text())
    assert len(known) == 2
    for entry in known.values():  # measured by the probe before (a cache-served read): measured again
        del entry["probe"]
    (tmp_path / roofline.FILE).write_text(json.dumps(known))
    assert roofline.machine_limits(tmp_path, cpu, torch.float32, fake)["probe"] == roofline.PROBE
    assert calls == [torch.float32, torch.bfloat16, torch.float32]


def test_limits_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(roofline.ENV, "5e9,2e10")
    got = roofline.machine_limits(tmp_path, torch.device("cpu"), torch.float32)
    assert (got["bandwidth"], got["peak_flops"]) == (5e9, 2e10)
    assert not (tmp_path / roofline.FILE).exists()
    monkeypatch.setenv(roofline.ENV, "fast")
    with pytest.raises(ValueError, match="ALIGN_LAB_MACHINE_LIMITS='fast': must be"):
        roofline.machine_limits(tmp_path, torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("value", ["abc", "1,-5", "inf,inf", "nan,1e9", "1e9"])
def test_limits_from_the_environment_are_checked_as_the_run_is_admitted(monkeypatch, value):
    """A bad ALIGN_LAB_MACHINE_LIMITS was read at the first step, after the stages trained: a 64-line
    traceback; `inf,inf` was taken, every MBU and MFU then 0.0 (seventh hunt of 2026-12-04, e1, e2)."""
    from align_lab.config import ConfigError

    monkeypatch.setenv(roofline.ENV, value)
    said = f"ALIGN_LAB_MACHINE_LIMITS='{value}': must be '<bytes/s>,<FLOP/s>', two finite positive numbers"
    with pytest.raises(ConfigError, match=f"^{re.escape(said)}$"):
        roofline.check_env()
    monkeypatch.setenv(roofline.ENV, "5e9,2e10")
    roofline.check_env()  # a good one: nothing


def test_the_weights_are_counted_at_the_dtype_the_rollout_reads():
    """rollout.dtype=bfloat16 samples a bfloat16 copy of a float32 policy: a decode step reads half the
    bytes, so counting them at float32 doubled its MBU."""
    from align_lab.rollout.base import sampled_dtype
    from align_lab.rollout.hf import HFGenerate
    from align_lab.rollout.turns import TurnEngine

    model = Tiny(tied=True)
    model.config = SimpleNamespace(
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=8
    )
    held = roofline.model_facts(model)
    assert (held["weights"], held["kv_bytes"]) == (240, 384)  # 60 x 4; 2 x 3 x 2 x 8 x 4
    copy = roofline.model_facts(model, sampled_dtype(HFGenerate(dtype="bfloat16"), model))
    assert (copy["weights"], copy["kv_bytes"], copy["params"]) == (120, 192, 60)  # bytes halved, FLOPs not
    assert sampled_dtype(HFGenerate(), model) == torch.float32  # the policy itself
    turns = TurnEngine.__new__(TurnEngine)  # a multi-turn run's engine: its inner one's
    turns.inner = HFGenerate(dtype="bfloat16")
    assert sampled_dtype(turns, model) == torch.bfloat16
    assert sampled_dtype(object(), model.to(torch.bfloat16)) == torch.bfloat16  # an engine that does not say


def test_vllm_counts_the_weights_in_the_dtype_it_serves():
    from align_lab.rollout.vllm import VLLMEngine

    policy = torch.nn.Linear(2, 2)  # a float32 policy on the CPU
    assert VLLMEngine().weights_dtype(policy) == torch.float32  # null on a CPU: float32 (vllm_launch.py)
    assert VLLMEngine(dtype="bf16").weights_dtype(policy) == torch.bfloat16
    assert VLLMEngine(dtype="auto").weights_dtype(policy) == torch.float32  # auto: the policy's


def test_a_live_policy_of_mixed_dtypes_is_counted_at_each_parameters_own():
    """A LoRA's float32 adapters on a bfloat16 base, sampled live: each parameter at its own size; a
    bfloat16 copy of it: every parameter at 2 bytes."""
    model = Tiny(tied=True).to(torch.bfloat16)
    model.body.float()  # 20 float32 parameters beside the head's 40 bfloat16
    assert roofline.model_facts(model)["weights"] == 20 * 4 + 40 * 2
    assert roofline.model_facts(model, torch.bfloat16)["weights"] == 60 * 2
