"""Packed responses (models/packing.py): where each token goes, the mask each packed row attends, and
response_logprobs over packed rows equal to the joint forward's, values and gradients."""

from __future__ import annotations

import pytest
import torch

from align_lab.models import packing as costs
from align_lab.models.packing import bins, forward_cost, pack, pack_sequences, pair_cost
from align_lab.models.sequences import response_logprobs, response_packing
from align_lab.rl import selective_entropy, selective_logprobs
from tests.unit.models.test_sequences import batch, joint, tiny, tiny_or_lora, trained

OVERHEAD = costs.PACKING_OVERHEAD  # as shipped, before the fixture below


@pytest.fixture(autouse=True)
def packs_tiny_models(monkeypatch):
    """These tests check the packed path on tiny models, whose few rows run as they lie at the default
    PACKING_OVERHEAD (SmolLM2's pack): without the fixed extra, the path is chosen by positions alone."""
    monkeypatch.setattr(costs, "PACKING_OVERHEAD", 0)


def test_a_tiny_policys_few_rows_run_as_they_lie_unless_the_saving_pays_the_fixed_extra(monkeypatch):
    monkeypatch.setattr(costs, "PACKING_OVERHEAD", OVERHEAD)
    rows, model = batch(), tiny("llama")
    # 2 layers x (q 64x64 + k, v 64x32 + o 64x64 + gate, up, down 64x96) = 61,440 weights;
    # 7 rows x 5 positions as they lie against 6 packed rows x 5 (both on 5 cached prompt positions):
    # 5 positions saved, x (1 + 10 pairs x 2 x 4 heads x 16 / 30,848) = 5.2 x 61,440 = 3.2e5 < 1e7
    assert costs.layer_weights(model) == 61_440
    assert response_packing(model, *rows) is None
    monkeypatch.setattr(costs, "layer_weights", lambda m: 10**8)  # a position of SmolLM2-135M
    assert response_packing(model, *rows).where.shape == (6, 5)


def test_bins_fill_each_prompts_rows_first_fit_longest_first():
    # prompt 0: 63 alone; 40 then 9 (40 + 9 <= 63); 38 (no room beside 40 + 9 or 63); prompt 1: 5 + 5
    packed = bins([0, 0, 0, 0, 1, 1], [38, 40, 9, 63, 5, 5], 63)
    assert packed == [(0, [(3, 0)]), (0, [(1, 0), (2, 40)]), (0, [(0, 0)]), (1, [(4, 0), (5, 5)])]


def test_pack_puts_each_responses_first_n_minus_1_tokens_end_to_end():
    # rows 0, 1 share prompt 0 (3 and 2 response tokens), row 2 has prompt 1 (4 tokens); width T = 4
    packing = pack(torch.tensor([0, 0, 1]), torch.tensor([3, 2, 4]), 4)
    # row 0 puts tokens 0, 1 (flat 0, 1), row 1 token 0 (flat 4): one packed row of 3; row 2 tokens 0-2
    assert packing.prompt.tolist() == [0, 1]
    assert packing.where.tolist() == [[0, 1, 4], [8, 9, 10]]
    assert packing.positions == 6  # against 3 rows x 3 in the batch's layout
    response_ids = torch.tensor([[11, 12, 13, 0], [21, 22, 0, 0], [31, 32, 33, 34]])
    assert packing.ids(response_ids).tolist() == [[11, 12, 21], [31, 32, 33]]
    assert packing.labels(response_ids).tolist() == [[12, 13, 22], [32, 33, 34]]
    prompt_attn = torch.tensor([[0, 1, 1], [0, 1, 1], [1, 1, 1]])  # 2, 2 and 3 prompt tokens
    assert packing.position_ids(prompt_attn).tolist() == [[2, 3, 2], [3, 4, 5]]


def test_the_mask_lets_each_response_see_its_prompt_and_its_own_earlier_tokens():
    # inputs 2, 1, 1 into rows of 2: row 0's two tokens, then row 1's and row 2's first side by side
    packing = pack(torch.tensor([0, 0, 0]), torch.tensor([3, 2, 2]), 3)
    assert packing.where.tolist() == [[0, 1], [3, 6]]
    mask = packing.attention_mask(torch.tensor([[0, 1]]))  # one distinct prompt: pad, token
    assert mask.shape == (2, 1, 2, 2 + 2)
    assert mask[0, 0].int().tolist() == [[0, 1, 1, 0], [0, 1, 1, 1]]
    assert mask[1, 0].int().tolist() == [[0, 1, 1, 0], [0, 1, 0, 1]]  # row 2's token does not see row 1's
    # inputs 2, 2, 2, 2, 2, 1: rows of 2 (6 x 2 positions; of 4: 3 x 4, of 6: 2 x 6, ties; of 8: 2 x 8)
    padded = pack(torch.zeros(6, dtype=torch.long), torch.tensor([3, 3, 3, 3, 3, 2]), 3)
    assert padded.where.tolist() == [[0, 1], [3, 4], [6, 7], [9, 10], [12, 13], [15, -1]]
    assert padded.attention_mask(torch.tensor([[1]]))[5, 0].int().tolist() == [[1, 1, 0], [0, 0, 1]]


def test_unpack_puts_values_back_at_the_token_they_predict():
    packing = pack(torch.tensor([0, 0]), torch.tensor([3, 2]), 3)  # where [[0, 1], [3, -1]]
    out = packing.unpack(torch.tensor([10.0, 11.0, 20.0]), torch.tensor([[1.0], [2.0]]))
    assert out.tolist() == [[1.0, 10.0, 11.0], [2.0, 20.0, 0.0]]  # 0 past row 1's end


def test_sequences_pack_each_prompt_with_its_response():
    # prompts of 2 and 3 tokens (left-padded to 3), responses of 2 and 1 tokens (T = 2): 3 and 3 inputs
    prompt_attn = torch.tensor([[0, 1, 1], [1, 1, 1]])
    packing = pack_sequences(prompt_attn, torch.tensor([2, 1]), 2)
    assert packing.prompt is None and packing.width == 5 and packing.lag == 3
    # the (B, P + T) table, flat: row 0's columns 1, 2, 3; row 1's 0, 1, 2 (its response's one token
    # is predicted by its last prompt token and predicts nothing)
    assert packing.where.tolist() == [[1, 2, 3], [5, 6, 7]]
    assert packing.position_ids(prompt_attn).tolist() == [[0, 1, 2], [0, 1, 2]]
    assert packing.predicting.tolist() == [[False, True, True], [False, False, True]]
    assert packing.attention_mask(None).shape == (2, 1, 3, 3)
    out = packing.unpack(torch.tensor([10.0, 11.0, 20.0]))
    assert out.tolist() == [[10.0, 11.0], [20.0, 0.0]]
    # inputs 5, 2, 2: rows of 5 take 2 x 5 positions, one row of up to 10 takes 9
    together = pack_sequences(torch.ones(3, 2, dtype=torch.long), torch.tensor([4, 1, 1]), 4)
    assert together.where.tolist() == [[0, 1, 2, 3, 4, 6, 7, 12, 13]]


def test_longer_packed_rows_are_taken_only_where_their_attention_costs_less():
    # 8 one-token prompts with responses of 10 and 7 x 3 tokens: 10 and 7 x 3 inputs. Rows of 10: 4 x 10
    # (10; 3+3+3 twice; 3); of 20: 2 x 19; of 30: 2 x 28; of 40: 1 x 31, the fewest positions
    attn, lengths = torch.ones(8, 1, dtype=torch.long), torch.tensor([10, 3, 3, 3, 3, 3, 3, 3])
    assert pack_sequences(attn, lengths, 10).where.shape == (1, 31)
    # where each key a query attends costs a tenth of a position: 40 x (1 + 1) = 80 against 38 x 2.9 =
    # 110.2 and 31 x 4.1 = 127.1: the shortest rows
    assert forward_cost(4, 10, 0, 0.1) == 80.0 and forward_cost(1, 31, 0, 0.1) == pytest.approx(127.1)
    assert pack_sequences(attn, lengths, 10, 0.1).where.shape == (4, 10)
    assert forward_cost(2, 3, 5, 0.5) == 6 * (1 + 0.5 * 8)  # 5 cached keys + 3 of its row's


def test_a_key_costs_attentions_flops_over_a_layers_weights():
    # tiny Llama: 4 heads x 16 -> 2 x 64 = 128 against q, o 64 x 64, k, v 64 x 32, the MLP's 3 x 64 x
    # 96 and two norms of 64: 30,848 weights
    assert pair_cost(tiny("llama")) == 128 / 30848


def ragged():
    """test_sequences' batch with row 2 ended after 3 tokens too: prompt 0's rows 1 and 2 (2 input
    tokens each) share a packed row of 5."""
    prompts, attn, ids, mask = batch()
    mask[2, 3:] = 0
    return prompts, attn, ids, mask


def joint_outputs(model, *rows):
    """Log-probs and entropy of test_sequences' joint forward over prompt and response, (B, T) each."""
    logits = joint(model, *rows)
    return selective_logprobs(logits, rows[2]), selective_entropy(logits)


def model_of(kind: str):
    """test_sequences' tiny Llama or Qwen2 (or the Llama with LoRA), or a Qwen3 of the same sizes (its
    q/k norms)."""
    if kind != "qwen3":
        return tiny_or_lora(kind)
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    sizes = dict(vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, head_dim=16)
    config = Qwen3Config(**sizes, num_key_value_heads=2, intermediate_size=96, pad_token_id=0)
    return Qwen3ForCausalLM(config)


@pytest.mark.parametrize("kind", ["llama", "qwen2", "qwen3", "lora"])
def test_packed_log_probs_entropy_and_gradients_are_the_joint_forwards(kind):
    model = model_of(kind)
    rows = ragged()  # 3 prompts x (3, 3, 1) samples, three responses ended early
    mask = rows[3]
    packing = response_packing(model, *rows)
    assert packing is not None and packing.positions < 7 * 5
    logprobs, entropy = response_logprobs(model, *rows, entropy=True)  # (7, 6) each
    expected, expected_entropy = joint_outputs(model, *rows)
    keep = mask.bool()
    assert torch.allclose(logprobs[keep], expected[keep], atol=1e-5)
    assert torch.allclose(entropy[keep], expected_entropy[keep], atol=1e-5)
    assert not logprobs[~keep].any()  # packed: 0 past each response

    def grads(lp):
        model.zero_grad()
        (lp * mask).sum().backward()
        return [p.grad.clone() for p in trained(model)]

    for a, b in zip(
        grads(response_logprobs(model, *rows)[0]), grads(joint_outputs(model, *rows)[0]), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_the_packed_forward_runs_each_prompt_once_then_the_packed_rows():
    model = tiny("llama")
    seen = []
    model.model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    response_logprobs(model, *ragged())
    # 3 prompts; rows of 5 input tokens: prompt 0's (5, 2, 2) in 2, prompt 1's (5, 0, 5) in 2 (the
    # response of one token puts none), prompt 2's one in 1: 5 packed rows against 7
    assert seen == [(3, 5), (5, 5)]


def distinct_prompts():
    """4 distinct prompts (two left-padded), responses of 6, 2, 1 and 3 tokens."""
    torch.manual_seed(3)
    prompts = torch.randint(1, 50, (4, 5))
    attn = torch.ones(4, 5, dtype=torch.long)
    attn[1, :2] = 0
    attn[3, :1] = 0
    ids = torch.randint(1, 50, (4, 6))
    mask = (torch.arange(6) < torch.tensor([6, 2, 1, 3])[:, None]).float()
    return prompts * attn, attn, ids * mask.long(), mask


@pytest.mark.parametrize("kind", ["llama", "qwen2", "qwen3", "lora"])
def test_sequences_packed_give_the_joint_forwards_log_probs_and_gradients(kind):
    model = model_of(kind)
    rows = distinct_prompts()
    packing = response_packing(model, *rows)
    assert packing is not None and packing.prompt is None  # no shared prompt: prompts packed along
    assert packing.positions <= 0.9 * 4 * (5 + 6)
    mask = rows[3]
    keep = mask.bool()
    logprobs, entropy = response_logprobs(model, *rows, entropy=True)
    expected, expected_entropy = joint_outputs(model, *rows)
    assert torch.allclose(logprobs[keep], expected[keep], atol=1e-5)
    assert torch.allclose(entropy[keep], expected_entropy[keep], atol=1e-5)

    def grads(lp):
        model.zero_grad()
        (lp * mask).sum().backward()
        return [p.grad.clone() for p in trained(model)]

    packed, joint = grads(response_logprobs(model, *rows)[0]), grads(joint_outputs(model, *rows)[0])
    for a, b in zip(packed, joint, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_rows_run_as_they_lie_where_packing_cannot_or_need_not():
    rows = batch()
    model = tiny("llama")
    prompts, attn, ids, mask = rows
    distinct = torch.arange(1, 8)[:, None].repeat(1, 5)  # 7 prompts of 5 tokens: packed along
    assert response_packing(model, distinct, torch.ones_like(attn), ids, mask) is None  # 70 of 77 positions
    right = attn.flip(-1)  # right-padded prompts: not a prompt's last tokens
    assert response_packing(model, prompts, right, ids, mask) is None
    full = torch.ones_like(mask)  # every response as long as the batch: nothing to save
    assert response_packing(model, prompts, attn, ids, full) is None
    assert response_packing(model, prompts, attn, ids, torch.zeros_like(mask)) is None  # no token at all
    holed = mask.clone()
    holed[0, 2] = 0  # not a prefix
    assert response_packing(model, prompts, attn, ids, holed) is None
    model.config._attn_implementation = "eager"  # another attention's masks
    assert response_packing(model, *rows) is None
    sliding = tiny("qwen2")
    sliding.config.use_sliding_window = True  # a window the 4-D mask would not apply
    assert response_packing(sliding, *rows) is None
    checkpointing = tiny("llama")
    checkpointing.gradient_checkpointing_enable()
    checkpointing.train()
    assert response_packing(checkpointing, *rows) is None
