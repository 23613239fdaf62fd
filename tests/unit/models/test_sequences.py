"""response_logits: rows that share a prompt share one forward of it, with the values and gradients of
the joint forward of every row (models/sequences.py)."""

from __future__ import annotations

import pytest
import torch

from align_lab.models import packing, sequences
from align_lab.models.lora import causal_lm
from align_lab.models.sequences import response_logits, shared_prompts


def tiny(kind: str):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    common = dict(
        vocab_size=50,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention
        intermediate_size=96,
        max_position_embeddings=64,
        pad_token_id=0,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**common))
    return Qwen2ForCausalLM(Qwen2Config(**common))


def batch():
    """Two prompts (one left-padded) x 3 samples each, then one prompt alone; ragged responses."""
    prompts = torch.tensor([[0, 0, 5, 6, 7], [9, 8, 7, 6, 5], [0, 4, 4, 4, 4]])  # (3, 5)
    attn = (prompts != 0).long()
    rows = torch.tensor([0, 0, 0, 1, 1, 1, 2])  # (7,)
    torch.manual_seed(1)
    response_ids = torch.randint(1, 50, (7, 6))  # (7, 6)
    mask = torch.ones(7, 6)
    mask[1, 3:] = 0  # a response that ended early
    mask[4, 1:] = 0
    return prompts[rows], attn[rows], response_ids, mask


def joint(model, *rows):
    ids, attn, pos = sequences.joint_inputs(*rows)
    T = rows[2].shape[1]
    return model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=T + 1).logits[:, :-1]


def test_shared_prompts_numbers_consecutive_equal_rows_by_ids_and_mask():
    ids = torch.tensor([[2, 3], [2, 3], [2, 3], [4, 5], [2, 3]])
    attn = torch.tensor([[1, 1], [1, 1], [0, 1], [1, 1], [1, 1]])  # row 2: same ids, padded
    assert shared_prompts(ids, attn).tolist() == [0, 0, 1, 2, 3]
    assert shared_prompts(ids[2:], attn[2:]) is None  # no neighbours share a prompt


def tiny_or_lora(kind: str):
    """`tiny(kind)`, or for "lora" the tiny Llama with peft LoRA adapters on every linear whose B is not
    0 (test_rollout_sampling's), whose adapters alone train."""
    from tests.unit.rollout.test_rollout_sampling import with_lora

    return with_lora(tiny("llama")) if kind == "lora" else tiny(kind)


def trained(model) -> list:
    """The parameters a backward gives gradients: LoRA's adapters, or every weight."""
    return [p for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("kind", ["llama", "qwen2", "lora"])
def test_a_shared_prompt_forward_gives_the_joint_forwards_logits_and_gradients(kind):
    model = tiny_or_lora(kind)
    rows = batch()
    mask = rows[3]
    shared = response_logits(model, *rows)  # (7, 6, 50)
    reference = joint(model, *rows)  # (7, 6, 50)
    keep = mask.bool()
    assert shared.shape == reference.shape
    assert torch.allclose(shared[keep], reference[keep], atol=1e-5)

    def grads(logits):
        model.zero_grad()
        (logits.log_softmax(-1).amax(-1) * mask).sum().backward()
        return [p.grad.clone() for p in trained(model)]

    for a, b in zip(grads(response_logits(model, *rows)), grads(joint(model, *rows)), strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["llama", "lora"])  # a peft wrapper's model forwards as it
def test_the_shared_forward_runs_each_distinct_prompt_once(kind, monkeypatch):
    monkeypatch.setattr(packing, "PACKING_OVERHEAD", 0)  # a tiny model's second forward priced at 0
    model = tiny_or_lora(kind)
    seen = []
    causal_lm(model).register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    response_logits(model, *batch())
    # 3 distinct prompts of 5 tokens, then 7 responses of 6 - 1 tokens (the last predicts nothing)
    assert seen == [(3, 5), (7, 5)]


def test_a_tiny_models_few_rows_forward_jointly_where_sharing_cannot_pay_its_second_forward():
    model = tiny("llama")
    seen = []
    model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    response_logits(model, *batch())
    # sharing saves (7 rows - 3 prompts) x 5 positions x 61,440 multiply-adds = 1.2e6 < PACKING_OVERHEAD
    # (1e7): one joint forward of 7 rows of 5 + 6 tokens
    assert seen == [(7, 11)]


def test_a_checkpointing_model_forwards_every_row_jointly():
    model = tiny("llama")
    model.gradient_checkpointing_enable()
    model.train()
    rows = batch()
    assert not sequences.caches_with_grad(model)
    assert torch.allclose(response_logits(model, *rows), joint(model, *rows))
