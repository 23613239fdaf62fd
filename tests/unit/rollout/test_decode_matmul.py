"""rollout.decode_matmul resolved on a machine (rollout/decode_matmul.py): auto's way by the CPU's
vendor and instruction set, the policy's width and the device; what a run records; the bytes a packed
rollout copies."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from align_lab.rollout.decode_matmul import decode_way, packed_bytes, resolved, weights_left, weights_packed
from align_lab.rollout.hf import HFGenerate
from align_lab.rollout.onednn import bf16_kernels

ONEDNN = torch.backends.mkldnn.is_available()
PACKED = "packed" if ONEDNN else "exact"  # packed without oneDNN multiplies as exact


@pytest.mark.parametrize(
    "setting, device, vendor, capability, width, way",
    [
        ("auto", "cpu", "AuthenticAMD", "AVX512", 576, PACKED),  # EPYC Zen 4 / Zen 5: oneDNN's packed
        ("auto", "cpu", "AuthenticAMD", "AVX512", None, PACKED),  # width unknown: taken as wide
        ("auto", "cpu", "AuthenticAMD", "AVX2", 576, "fast"),  # the AVX2 EPYC: W @ h^T (item 7)
        ("auto", "cpu", "AuthenticAMD", "AVX512", 64, "exact"),  # the toy policy: F.linear everywhere
        ("auto", "cpu", "AuthenticAMD", "AVX2", 64, "exact"),
        ("auto", "cuda", "AuthenticAMD", "AVX512", 576, "exact"),  # a GPU on an EPYC host
        ("auto", "cpu", "GenuineIntel", "AVX512", 576, "exact"),  # the Xeon: F.linear is its fastest
        ("auto", "cpu", "", "AVX512", 576, "exact"),  # vendor unknown (no /proc/cpuinfo)
        ("exact", "cpu", "AuthenticAMD", "AVX512", 576, "exact"),  # a set way holds
        ("fast", "cpu", "GenuineIntel", "AVX512", 64, "fast"),
        ("packed", "cpu", "GenuineIntel", "AVX2", 64, PACKED),
        ("packed", "cuda", "AuthenticAMD", "AVX512", 576, "exact"),
    ],
)
def test_auto_takes_packed_on_an_avx512_amd_cpu_fast_on_another_amd_and_exact_elsewhere(
    setting, device, vendor, capability, width, way
):
    assert decode_way(setting, device, width, vendor, capability) == way


def test_the_helpers_and_the_record_follow_this_machines_way(monkeypatch):
    from align_lab.rollout import decode_matmul

    monkeypatch.setattr(decode_matmul, "cpu_vendor", lambda: "AuthenticAMD")
    monkeypatch.setattr(decode_matmul, "cpu_capability", lambda: "AVX512")
    assert HFGenerate().decode_matmul == "auto"
    assert (
        weights_packed("auto", "cpu", 576) is ONEDNN and weights_left("auto", "cpu", width=576) is not ONEDNN
    )
    assert resolved(HFGenerate(), "cpu", 576) == {"rollout/decode_matmul": PACKED}
    assert resolved(HFGenerate(), "cpu", 64) == {"rollout/decode_matmul": "exact"}
    monkeypatch.setattr(decode_matmul, "cpu_capability", lambda: "AVX2")
    assert resolved(HFGenerate(), "cpu", 576) == {"rollout/decode_matmul": "fast"}
    assert resolved(object()) == {}  # an engine without the setting (vLLM): nothing recorded


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=600, hidden_size=128, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    return LlamaForCausalLM(config)


@pytest.mark.skipif(not ONEDNN, reason="torch without oneDNN")
def test_packed_bytes_are_the_plain_linears_at_the_sampled_dtype_and_none_for_a_lora_base():
    model = tiny_llama()
    # a layer: q 128x128, k and v 64x128 each, o 128x128, gate and up 96x128, down 128x96; the head 600x128
    layer = 128 * 128 * 2 + 64 * 128 * 2 + 96 * 128 * 3
    assert packed_bytes(HFGenerate(decode_matmul="packed"), model) == 4 * (2 * layer + 600 * 128)
    bf16 = 2 * (2 * layer + 600 * 128) if bf16_kernels() else 0  # AVX2: oneDNN packs no bf16 weight
    assert packed_bytes(HFGenerate(decode_matmul="packed", dtype="bfloat16"), model) == bf16
    assert packed_bytes(SimpleNamespace(dtype=None), model) == 0  # an engine without the setting (vLLM's)
    assert packed_bytes(HFGenerate(decode_matmul="fast"), model) == 0
    assert packed_bytes(HFGenerate(), model) == 0  # auto: 128 wide, narrower than LEFT_MIN_WIDTH
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    # q and v stay LoRA modules (decode._lora reads their adapters): neither their bases nor adapters packed
    unpacked = 2 * (128 * 128 + 64 * 128)
    assert packed_bytes(HFGenerate(decode_matmul="packed"), lora) == 4 * (2 * layer + 600 * 128 - unpacked)
