"""The KV-cache sampling loop draws exactly the tokens of transformers' generate for one seed."""

from __future__ import annotations

import pytest
import torch

from align_lab.models.tiny import TinyLM
from align_lab.models.tokenizer import train_tokenizer
from align_lab.rollout import sampling
from align_lab.rollout.hf import HFGenerate
from align_lab.tasks.toy_prefs import ToyPrefs

TASK = ToyPrefs(max_response_tokens=12)
# prompts of 1, 2 and 3 topics: left padding in the batch
PROMPTS = [*TASK.prompts("train")[:3], "river :", "wolf storm garden :"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(TASK.corpus(), tmp_path_factory.mktemp("tok"))


def both(model, tok, greedy=False, **engine):
    out = []
    for use_generate in (True, False):
        torch.manual_seed(3)
        engine_ = HFGenerate(use_generate=use_generate, **engine)
        out.append(engine_.sample(model, tok, PROMPTS, 4, 12, 6, greedy))
    return out


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize(
    "greedy, engine",
    [(False, {}), (False, {"temperature": 0.7, "top_k": 5, "top_p": 0.9}), (True, {})],
)
def test_kv_cache_loop_draws_the_tokens_of_generate(arch, greedy, engine, fast, tokenizer, monkeypatch):
    if not fast:  # the model's own forward decodes (other model classes)
        monkeypatch.setattr(sampling, "fast_decode_supported", lambda model: False)
    torch.manual_seed(0)
    model = TinyLM(arch=arch).init_policy(tokenizer)
    generate, loop = both(model, tokenizer, greedy, **engine)
    assert torch.equal(loop.response_ids, generate.response_ids)
    assert loop.responses == generate.responses and loop.finished == generate.finished
    assert torch.equal(loop.mask, generate.mask)


def test_kv_cache_loop_stops_when_every_row_has_ended(tokenizer):
    torch.manual_seed(0)
    model = TinyLM(arch="qwen2").init_policy(tokenizer)
    with torch.no_grad():  # EOS likely at every step: all rows end well before the limit
        model.lm_head.weight[tokenizer.eos_token_id] *= 40
    generate, loop = both(model, tokenizer)
    assert all(loop.finished) and loop.response_ids.shape[1] < 12
    assert torch.equal(loop.response_ids, generate.response_ids)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("kv_heads", [4, 2, 1])  # multi-head, grouped-query (SmolLM2, Qwen2.5), multi-query
def test_decode_step_equals_the_model_forward_bit_for_bit(kv_heads, padded):
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    from align_lab.rollout.decode import decode_step, fast_decode_supported

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=128,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
    )
    model = LlamaForCausalLM(config).eval()
    assert fast_decode_supported(model)
    ids = torch.randint(3, 50, (3, 6))  # (B, P)
    attn = torch.ones_like(ids)
    if padded:
        attn[0, :2] = 0  # left padding
    position = (attn.cumsum(-1) - 1).clamp(min=0)
    mask = attn if padded else None
    with torch.no_grad():
        ours = model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True)
        theirs = model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True)
        kv = [[layer.keys, layer.values] for layer in ours.past_key_values.layers]
        cache: DynamicCache = theirs.past_key_values
        tokens = torch.randint(3, 50, (3,))
        for _ in range(3):
            position = position[:, -1:] + 1
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(3, 1)], dim=1)
            fast = decode_step(model, tokens, position, kv, mask)  # (B, V)
            slow = model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                position_ids=position,
                past_key_values=cache,
                use_cache=True,
            ).logits[:, -1]
            assert torch.equal(fast, slow)
            tokens = slow.argmax(-1)
