"""A LoRA run's reference on the policy's own frozen weights (models/lora.py `frozen_base`): no copy,
the separately loaded reference's bits, untouched by training and by the policy's mode."""

import copy

import pytest
import torch

from align_lab.models.lora import frozen_base
from align_lab.models.sequences import response_logprobs
from tests.unit.models.test_sequences import batch, tiny
from tests.unit.rollout.test_rollout_sampling import with_lora


def storages(model) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_the_reference_is_the_policys_base_weights_with_the_loaded_references_bits(kind):
    loaded = tiny(kind).eval().requires_grad_(False)  # the reference as a run loads it (frozen SFT)
    policy = with_lora(copy.deepcopy(loaded))  # its adapters change every output (B != 0)
    reference = frozen_base(policy).eval()
    assert type(reference) is type(loaded)
    assert storages(reference) <= storages(policy)  # no tensor of its own: nothing copied
    rows = batch()
    expected = response_logprobs(loaded, *rows)[0]  # (7, 6)
    assert torch.equal(response_logprobs(reference, *rows)[0], expected)
    assert not torch.equal(response_logprobs(policy, *rows)[0], expected)  # the adapters are on


def test_training_the_adapters_and_switching_the_policys_mode_leave_the_reference_alone():
    loaded = tiny("llama").eval().requires_grad_(False)
    policy = with_lora(copy.deepcopy(loaded)).train()
    reference = frozen_base(policy).eval()
    rows = batch()
    expected = response_logprobs(loaded, *rows)[0]
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        response_logprobs(policy, *rows)[0].sum().backward()
        optimizer.step()
    assert not reference.training and policy.training
    assert torch.equal(response_logprobs(reference, *rows)[0], expected)


def test_no_shared_reference_where_the_policy_is_plain_or_a_base_weight_trains():
    assert frozen_base(tiny("llama")) is None  # not a LoRA model: the reference is loaded
    policy = with_lora(tiny("llama"))
    policy.get_base_model().model.embed_tokens.weight.requires_grad_(True)  # would drift from SFT
    assert frozen_base(policy) is None


def test_target_modules_the_policy_lacks_are_one_line_naming_its_linear_modules():
    """Sixth hunt of 2026-12-04: `lora.target_modules=[nope]` was peft's 66-line NoMatchingPeftModuleError,
    after the stages were built."""
    from align_lab.models.lora import LoRA
    from align_lab.value_checks import ConfigError

    with pytest.raises(ConfigError) as e:
        LoRA(enabled=True, target_modules=["q_proj", "nope"]).apply(tiny("llama"))
    assert str(e.value) == (
        "lora.target_modules=['q_proj', 'nope']: the policy has no module named nope; its linear modules: "
        "down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"
    )
    assert LoRA(enabled=True, target_modules=["self_attn.q_proj"]).apply(tiny("llama")) is not None  # a tail
