"""rollout.decode_matmul=packed: the decode step multiplies with oneDNN on weights reordered once a
rollout (docs/rollout.md, item 9). Not F.linear's bits: its logits equal the forward's up to float
rounding, and the loss never reads them (the trainer recomputes its log-probs)."""

from __future__ import annotations

import pytest
import torch

from align_lab.rollout.decode_matmul import resolved, weights_left, weights_packed
from align_lab.rollout.hf import HFGenerate
from align_lab.rollout.mirror import mirrored

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


def tiny_qwen2():
    """Qwen2: q, k and v with biases (fused with them)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=600, hidden_size=128, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    return Qwen2ForCausalLM(config).eval()


def test_mirrored_packs_every_plain_linear_and_the_head_for_the_rows_given():
    model = tiny_llama()
    plain = mirrored(model)
    assert plain.lm_head.packed is None and plain.model.layers[0].mlp.up_proj.packed is None
    assert plain.model.layers[0].self_attn.qkv is None and plain.model.layers[0].mlp.gate_up is None
    packed = mirrored(model, rows=3)
    layer = packed.model.layers[1]
    for linear in (
        layer.self_attn.qkv,
        layer.self_attn.o_proj,
        layer.mlp.gate_up,
        layer.mlp.down_proj,
        packed.lm_head,
    ):
        assert linear.packed is not None  # oneDNN's layout: its shape is the CPU's choice
    assert (
        layer.self_attn.q_proj is None and layer.mlp.up_proj is None
    )  # multiplied as one: no copy of their own
    assert layer.self_attn.qkv.sizes == [128, 64, 64] and layer.mlp.gate_up.sizes == [96, 96]
    assert layer.mlp.down_proj.weight is model.model.layers[1].mlp.down_proj.weight  # still the live weights


@pytest.mark.parametrize("make", [tiny_llama, tiny_qwen2])
@pytest.mark.parametrize("rows", [3, 2])
def test_fused_projections_are_the_separate_packed_matmuls_bit_for_bit(make, rows):
    """q, k, v (with Qwen2's biases) and gate, up as one packed matmul each (mirror.fused): oneDNN sums
    each output in the same order as the one linear's packed matmul, at the rows packed for and fewer
    (a rollout's ended rows leave the step)."""
    from align_lab.rollout.decode import _in_one
    from align_lab.rollout.mirror import fused
    from align_lab.rollout.onednn import packed, packed_linear

    layer = make().model.layers[0]
    for linears in ((layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj),
                    (layer.mlp.gate_proj, layer.mlp.up_proj)):  # fmt: skip
        x = torch.randn(rows, 1, 128)
        with torch.no_grad():
            one = _in_one(fused(linears, 3), linears, x, left=False)
            alone = [packed_linear(x, packed(m.weight.detach(), 3), m.bias) for m in linears]
        assert all(torch.equal(a, b) for a, b in zip(one, alone, strict=True))


def test_a_lora_linear_or_a_bias_on_some_leaves_the_linears_unfused():
    from align_lab.rollout.mirror import fused
    from tests.unit.rollout.test_rollout_sampling import with_lora

    lora = with_lora(tiny_llama(2), targets=("q_proj",)).eval()
    attention = lora.base_model.model.model.layers[0].self_attn
    assert fused((attention.q_proj, attention.k_proj, attention.v_proj), 3) is None
    mixed = tiny_llama(2).model.layers[0].self_attn
    mixed.k_proj.bias = torch.nn.Parameter(torch.zeros(64))
    assert fused((mixed.q_proj, mixed.k_proj, mixed.v_proj), 3) is None


def packed_steps_equal_the_forward(model, step, padded: bool) -> None:
    """Three packed decode steps of `step` (mirror.mirrored(model, rows=3)) after a prefill of 3 rows of
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
@pytest.mark.parametrize("make", [lambda: tiny_llama(4), lambda: tiny_llama(1), tiny_qwen2])
def test_packed_decode_step_equals_the_forward_up_to_rounding(make, padded):
    model = make()
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("masked", [False, True])
def test_a_step_not_the_forwards_attends_the_faster_way_for_its_dtype(dtype, masked, monkeypatch):
    """decode._attention with exact=False (a packed step: mirror.mirrored packed a weight) on a CPU:
    float32 through SDPA's enable_gqa, bfloat16 with the query heads packed (enable_gqa was 4-5x slower
    there), mask or not; the same attention as the forward's way up to rounding."""
    import torch.nn.functional as F

    from align_lab.rollout import decode

    torch.manual_seed(0)
    q, k, v = (
        torch.randn(3, 6, 1, 16, dtype=dtype),
        torch.randn(3, 2, 9, 16, dtype=dtype),
        torch.randn(3, 2, 9, 16, dtype=dtype),
    )
    mask = torch.ones(3, 1, 1, 9, dtype=torch.bool) if masked else None
    if masked:
        mask[0, ..., :4] = False  # a left-padded row
    exact = decode._attention(q, k, v, mask, 0.25, exact=True)
    calls, sdpa = [], F.scaled_dot_product_attention
    monkeypatch.setattr(
        F, "scaled_dot_product_attention", lambda *a, **kw: calls.append(kw) or sdpa(*a, **kw)
    )
    faster = decode._attention(q, k, v, mask, 0.25, exact=False)
    assert calls[0].get("enable_gqa", False) is (dtype == torch.float32)
    torch.testing.assert_close(faster, exact, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-2)


@pytest.mark.parametrize("padded", [False, True])
def test_a_fused_step_is_the_unfused_packed_step_bit_for_bit(padded, monkeypatch):
    """The whole decode step with q|k|v and gate|up fused (mirror.fused) against the same packed step with
    every linear multiplied alone: the same logits, bit for bit, at the rows packed for and fewer."""
    from align_lab.rollout import mirror
    from align_lab.rollout.decode import decode_step, preallocate

    model = tiny_llama(2)
    together = mirror.mirrored(model, rows=3)
    monkeypatch.setattr(mirror, "fused", lambda linears, rows: None)
    alone = mirror.mirrored(model, rows=3)
    assert together.model.layers[0].self_attn.qkv is not None and alone.model.layers[0].self_attn.qkv is None
    ids = torch.randint(3, 600, (3, 6))
    attn = torch.ones_like(ids)
    attn[0, :2] = 0 if padded else 1
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0))
        cache = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        for rows in (3, 2):
            logits = []
            for step in (together, alone):
                kv = preallocate([(k[:rows], v[:rows]) for k, v in cache], 1, 8)
                mask = torch.cat([attn[:rows], attn.new_ones(rows, 1)], 1) if padded else None
                logits.append(decode_step(step, ids[:rows, -1], torch.full((rows, 1), 6), kv, 6, mask))
            assert torch.equal(*logits)


def test_a_mirror_that_packs_nothing_steps_as_the_forward(monkeypatch):
    """bf16 weights on a CPU without oneDNN's bf16 kernels pack nothing (nor fuse): the mirror is `exact`
    (decode._attention as the forward), and its step is the unpacked step bit for bit."""
    from align_lab.rollout import onednn
    from align_lab.rollout.decode import decode_step, preallocate
    from align_lab.rollout.decode_matmul import packed_bytes

    model = tiny_llama(2).to(torch.bfloat16)
    monkeypatch.setattr(onednn, "bf16_kernels", lambda: False)
    none_packed, plain = mirrored(model, rows=3), mirrored(model)
    assert none_packed.exact and plain.exact and not mirrored(tiny_llama(2), rows=3).exact
    assert none_packed.model.layers[0].mlp.gate_up is None and none_packed.lm_head.packed is None
    assert packed_bytes(HFGenerate(decode_matmul="packed", dtype="bfloat16"), model) == 0
    ids = torch.randint(3, 600, (3, 6))
    with torch.no_grad():
        out = model(input_ids=ids)
        cache = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        steps = []
        for step in (none_packed, plain):
            kv = preallocate(cache, 1, 8)
            steps.append(decode_step(step, ids[:, -1], torch.full((3, 1), 6), kv, 6, None))
    assert torch.equal(*steps)
