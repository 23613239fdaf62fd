"""The prefill's last logits (rollout/decode_matmul.py `last_logits`): a bfloat16 model on a CPU reads a
contiguous copy of the last hidden states, because torch's CPU linear of the strided slice expands the
head's weight to every row (SmolLM2, 47 prompts: 2.5 GiB; rollout.dtype=bfloat16 runs peaked at 7176 MiB
against 3800 with this); the same logits, bit for bit."""

import torch
from torch.profiler import ProfilerActivity, profile

from align_lab.rollout.decode_matmul import last_logits
from align_lab.rollout.sampling import prefill
from tests.unit.models.test_sequences import tiny


def largest_allocation(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(e.cpu_memory_usage for e in prof.events())


def test_a_bf16_prefill_keeps_its_last_logits_by_index_and_the_same_bits():
    model = tiny("llama").eval().requires_grad_(False)
    assert last_logits(model, 5) == {"logits_to_keep": 1}  # float32: the slice, as before
    model = model.to(torch.bfloat16)
    keep = last_logits(model, 5)["logits_to_keep"]
    assert torch.equal(keep, torch.tensor([4]))
    torch.manual_seed(0)
    ids = torch.randint(1, 50, (16, 5))  # 16 prompts of 5 tokens
    with torch.no_grad():
        sliced = model(input_ids=ids, logits_to_keep=1).logits  # (16, 1, 50)
        indexed = model(input_ids=ids, logits_to_keep=keep).logits
        assert torch.equal(sliced, indexed)
        # the head's weight (50 x 64, bf16) for every row: what the slice made (torch 2.13)
        expanded = 16 * 64 * 50 * 2
        attn = torch.ones_like(ids)
        assert largest_allocation(lambda: prefill(model, ids, attn, 4, 2, padded=False)) < expanded
