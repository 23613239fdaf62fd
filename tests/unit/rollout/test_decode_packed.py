"""rollout.decode_matmul=packed: the decode step multiplies with oneDNN on weights reordered once a
rollout (docs/rollout.md, item 9). Not F.linear's bits: its logits equal the forward's up to float
rounding, and the loss never reads them (the trainer recomputes its log-probs)."""

from __future__ import annotations

import pytest
import torch

from align_lab.rollout.decode import mirrored
from align_lab.rollout.decode_matmul import resolved, weights_left, weights_packed
from align_lab.rollout.hf import HFGenerate

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch without oneDNN")


def tiny_llama(kv_heads: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=600, hidden_size=128, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=kv_heads)  # fmt: skip
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize(
    "setting, device, packs", [("packed", "cpu", True), ("packed", "cuda", False), ("exact", "cpu", False)]
)
def test_packed_is_its_own_setting_on_a_cpu(setting, device, packs):
    assert weights_packed(setting, device) is packs
    assert weights_left("packed", "cpu", "AuthenticAMD") is False  # packed never multiplies W @ h^T
    assert resolved(HFGenerate(decode_matmul="packed")) == {"rollout/decode_matmul": "packed"}


def test_mirrored_packs_every_plain_linear_and_the_head_for_the_rows_given():
    model = tiny_llama()
    plain = mirrored(model)
    assert plain.lm_head.packed is None and plain.model.layers[0].mlp.up_proj.packed is None
    packed = mirrored(model, rows=3)
    layer = packed.model.layers[1]
    for linear in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.mlp.down_proj, packed.lm_head):
        assert linear.packed is not None  # oneDNN's layout: its shape is the CPU's choice
    assert layer.mlp.down_proj.weight is model.model.layers[1].mlp.down_proj.weight  # still the live weights


def packed_steps_equal_the_forward(model, step, padded: bool) -> None:
    """Three packed decode steps of `step` (decode.mirrored(model, rows=3)) after a prefill of 3 rows of
    6 tokens (the first left-padded where `padded`): each step's logits those of `model`'s forward with
    its own cache, up to float rounding."""
    from align_lab.rollout.decode import decode_step, preallocate

    ids = torch.randint(3, 600, (3, 6))  # (B, P)
    attn = torch.ones_like(ids)
    if padded:
        attn[0, :2] = 0  # left padding
    position = (attn.cumsum(-1) - 1).clamp(min=0)
    mask = attn if padded else None
    with torch.no_grad():
        ours = model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True)
        theirs = model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True)
        kv = preallocate([(layer.keys, layer.values) for layer in ours.past_key_values.layers], 1, 9)
        tokens = torch.randint(3, 600, (3,))
        for t in range(3):
            position = position[:, -1:] + 1
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(3, 1)], dim=1)
            packed = decode_step(step, tokens, position, kv, 6 + t, mask)  # (B, V)
            cache = theirs.past_key_values
            slow = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=position,
                         past_key_values=cache, use_cache=True).logits[:, -1]  # fmt: skip
            assert torch.allclose(packed, slow, rtol=0, atol=1e-5)
            tokens = slow.argmax(-1)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("kv_heads", [4, 1])
def test_packed_decode_step_equals_the_forward_up_to_rounding(kv_heads, padded):
    model = tiny_llama(kv_heads)
    packed_steps_equal_the_forward(model, mirrored(model, rows=3), padded)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_packed_rollout_samples_the_policy_its_log_probs_near_the_trainers(dtype):
    """The engine's log-probs of its draws against the trainer's forward's (what the loss trains on):
    fp32 within float rounding; bf16 (AMX kernels where the CPU has them) within bf16's."""
    from align_lab.models.sequences import response_logprobs
    from align_lab.models.tiny import TinyLM
    from align_lab.models.tokenizer import train_tokenizer
    from align_lab.tasks.toy_prefs import ToyPrefs

    task = ToyPrefs(max_response_tokens=12)
    import tempfile

    tok = train_tokenizer(task.corpus(), tempfile.mkdtemp())
    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tok)
    engine = HFGenerate(decode_matmul="packed", dtype=dtype)
    engine.sync(model)
    torch.manual_seed(1)
    s = engine.sample(model, tok, task.prompts("train")[:3], 4, 12, 6)
    with torch.no_grad():
        trainer, _ = response_logprobs(model, s.prompt_ids, s.prompt_attn, s.response_ids, s.mask)
    gap = ((trainer - s.logprobs) * s.mask).abs().max().item()
    assert gap < (1e-5 if dtype == "float32" else 0.1)
    assert s.mask.sum() > 12


def test_bf16_weights_on_a_cpu_without_onednn_bf16_kernels_stay_unpacked(monkeypatch):
    """On an AVX2 CPU oneDNN has no bf16 matmul: a bf16 rollout with decode_matmul=packed multiplies as
    `exact` there (F.linear) instead of failing in oneDNN."""
    from align_lab.rollout import onednn

    monkeypatch.setattr(onednn, "bf16_kernels", lambda: False)
    assert onednn.packed(torch.ones(8, 4, dtype=torch.bfloat16), 8) is None
    assert onednn.packed(torch.ones(8, 4), 8) is not None  # float32: packed


@pytest.mark.parametrize("padded", [False, True])
def test_a_lora_policys_packed_decode_step_packs_its_plain_linears_and_equals_the_forward(padded):
    """`auto` packs on an AVX-512 AMD CPU whatever the policy: with LoRA adapters on attention, gate and
    the head the step multiplies their layers through peft's base weights and adapters (decode._lora)
    and packs the rest (up, down): the peft model's logits up to float rounding."""
    from align_lab.rollout.decode import fast_decode_supported
    from tests.unit.rollout.test_rollout_sampling import with_lora

    model = with_lora(tiny_llama(2)).eval()
    assert fast_decode_supported(model)
    step = mirrored(model, rows=3)
    layer = step.model.layers[0]
    assert layer.mlp.up_proj.packed is not None and layer.mlp.down_proj.packed is not None
    assert hasattr(layer.self_attn.q_proj, "base_layer") and hasattr(step.lm_head, "base_layer")  # LoRA
    packed_steps_equal_the_forward(model, step, padded)
