"""train/micro.py: micro-batches equal one batch, and train.micro_batch_size=auto's choice of rows from
the model's widths, the token lengths and a memory budget (hand-derived numbers)."""

from __future__ import annotations

import pytest
import torch

from align_lab.config import ConfigError
from align_lab.study.hardware import Hardware
from align_lab.train.common import TrainConfig
from align_lab.train.micro import (
    Dims,
    GiB,
    Term,
    accumulate,
    budget_bytes,
    choose,
    chunks,
    forward,
    machine_memory,
    row_bytes,
    whole,
)
from tests.conftest import compose

MiB = 2**20


def test_chunks_split_rows_and_a_size_at_or_over_the_rows_is_one_forward():
    assert chunks(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 6)]
    assert chunks(5, None) == chunks(5, 5) == chunks(5, 9) == [slice(0, 5)]
    assert whole(8, 8) and whole(8, None) and not whole(8, 7)


def test_row_bytes_by_hand():
    dims = Dims(hidden=8, layers=2, intermediate=16, heads=2, vocab=10)
    # L = 3 + 2 = 5 tokens; per token and layer 6*8 + 4*16 + 2*5 = 122 floats; 2 layers: 2*5*122 = 1220;
    # logits: 3 copies of (2 + 1) x 10 = 90 floats; 4 bytes each
    assert row_bytes(dims, 3, 2) == 4 * (1220 + 90) == 5240
    assert row_bytes(dims, 3, 2, logits=False) == 4 * 1220


def test_auto_fills_min_of_1_gib_and_an_eighth_of_the_budget():
    # 64 GiB: min(1 GiB, 8 GiB) = 1 GiB holds 10 rows of 100 MiB (1024 // 100)
    assert budget_bytes(64 * GiB) == GiB
    assert choose("auto", 64, 100 * MiB, 64 * GiB) == 10
    assert choose("auto", 10, 100 * MiB, 64 * GiB) is None  # all rows fit: whole batches
    # a batch within 2 x 1 GiB runs whole (a split costs a forward more); 21 x 100 MiB does not
    assert choose("auto", 20, 100 * MiB, 64 * GiB) is None  # 2000 MiB <= 2048 MiB
    assert choose("auto", 21, 100 * MiB, 64 * GiB) == 10  # 2100 MiB > 2048 MiB
    # 4 GiB: an eighth, 512 MiB, holds 5 rows of 100 MiB
    assert choose("auto", 64, 100 * MiB, 4 * GiB) == 5
    assert choose("auto", 64, 2 * GiB, 64 * GiB) == 1  # never 0 rows
    assert choose(4, 64, 100 * MiB, 64 * GiB) == 4  # a number is used as given
    assert choose(None, 64, 100 * MiB, 64 * GiB) is None


def test_on_a_gpu_auto_fills_an_eighth_of_its_memory_with_no_1_gib_cap():
    from align_lab.study.hardware import Hardware

    assert Hardware(device="cuda").micro_batch_cap() is None
    assert Hardware().micro_batch_cap() == GiB
    # 80 GiB GPU: an eighth, 10 GiB, holds 102 rows of 100 MiB; 200 rows (2 x 10 GiB) run whole
    assert budget_bytes(80 * GiB, cap=None) == 10 * GiB
    assert choose("auto", 512, 100 * MiB, 80 * GiB, cap=None) == 102
    assert choose("auto", 200, 100 * MiB, 80 * GiB, cap=None) is None
    assert choose("auto", 512, 100 * MiB, 80 * GiB) == 10  # a CPU's cap on the same budget


def test_smollm2_64_responses_are_micro_batched_and_8_short_ones_are_one_forward():
    # SmolLM2-135M (config.json): 576 wide, 30 layers, MLP 1536, 9 heads, 49,152 tokens; arith_word's
    # longest chat prompt is 58 tokens. With 64 response tokens, L = 122: per token and layer
    # 6*576 + 4*1536 + 9*122 = 10698 floats, x 30 x 122 = 39,154,680; logits 3 x 65 x 49152 = 9,584,640;
    # x 4 bytes = 194,957,280 (186 MiB): 1 GiB holds 5 (1,073,741,824 // 194,957,280)
    smol = Dims(hidden=576, layers=30, intermediate=1536, heads=9, vocab=49152)
    per_row = row_bytes(smol, 58, 64)
    assert per_row == 4 * (39_154_680 + 9_584_640) == 194_957_280
    assert choose("auto", 64, per_row, 23 * GiB) == 5  # REINFORCE++, 64 responses a step
    # GRPO, 8 responses: 8 x 194,957,280 = 1,559,658,240 bytes (1.45 GiB) <= 2 GiB: one forward
    assert choose("auto", 8, per_row, 23 * GiB) is None
    assert choose("auto", 12, per_row, 23 * GiB) == 5  # 2.18 GiB: micro-batches of 5
    # 32 response tokens, L = 90: (6*576 + 4*1536 + 9*90) x 30 x 90 = 28,107,000 and 3 x 33 x 49152 =
    # 4,866,048 floats: 131,892,192 bytes; 8 of them are 1,055,137,536 <= 1 GiB: one forward
    per_row = row_bytes(smol, 58, 32)
    assert per_row == 4 * (28_107_000 + 4_866_048) == 131_892_192
    assert choose("auto", 8, per_row, 23 * GiB) is None


def test_memory_budget_is_the_setting_or_the_machine_total_per_process():
    assert Hardware(memory_gb=2.0).memory_bytes() == 2 * GiB
    assert Hardware(memory_gb=2.0, processes=2).memory_bytes() == GiB
    assert Hardware(memory_gb=2.0, processes=2).memory_bytes(whole_node=True) == 2 * GiB  # the stages'
    assert Hardware().memory_bytes() == machine_memory() == machine_memory()  # totals, not free memory
    with pytest.raises(ValueError, match=r"memory_gb=0: must be > 0 or null"):
        Hardware(memory_gb=0)


@pytest.mark.parametrize("bad", [0, -2, "abc", "4", True, 2.5])
def test_bad_micro_batch_sizes_are_refused_in_one_line(bad):
    with pytest.raises(
        ValueError, match=rf"^micro_batch_size={bad}: must be auto .*, an integer >= 1, or null"
    ):
        TrainConfig(micro_batch_size=bad)


@pytest.mark.parametrize("bad", ["0", "abc"])
def test_bad_micro_batch_sizes_are_refused_before_compute(bad):
    from align_lab.admission import spec_from_config

    cfg, names = compose([f"train.micro_batch_size={bad}"])
    with pytest.raises(ConfigError, match=rf"^train.micro_batch_size={bad}: must be auto"):
        spec_from_config(cfg, names)


def test_auto_is_the_default():
    assert TrainConfig().micro_batch_size == "auto"
    cfg, _ = compose([])
    assert cfg.train.micro_batch_size == "auto"


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("size", [1, 2, 3])
def test_accumulate_equals_one_batch_for_a_loss_of_all_rows_and_a_separable_one(size):
    x = torch.randn(5, 3)  # (B, 3)
    weights = torch.rand(5)  # (B,)

    def whitened(out, rows):  # group statistics: not a sum over rows
        z = (out[:, 0] - out[:, 0].mean()) / (out[:, 0].std() + 1e-3)
        return (z * out[:, 1]).mean(), {"n": len(rows[0])}

    def weighted(out, rows):  # a sum over rows with a fixed normaliser
        return (out.sum(-1) * rows[1]).sum() / 5, {}

    results = []
    for micro in (None, size):
        model = _model()
        terms = [
            Term(model, (x,), whitened),
            Term(lambda x, w, model=model: model(x), (x, weights), weighted, scale=0.5, separable=True),
        ]
        [(a, stats), (b, _)] = accumulate(terms, torch.Tensor.backward, micro)
        results.append((a, b, _grads(model), stats))
    (a1, b1, g1, s1), (a2, b2, g2, s2) = results
    torch.testing.assert_close(a2, a1)
    torch.testing.assert_close(b2, b1)
    for p, q in zip(g1, g2, strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-7)
    assert s1 == s2 == {"n": 5}


def test_forward_keeps_a_graph_only_when_asked_and_one_forward():
    model, x = _model(), torch.randn(4, 3)
    assert forward(model, (x,), None, graph=True).requires_grad
    assert not forward(model, (x,), 2, graph=True).requires_grad  # micro-batched: outputs only
    assert not forward(model, (x,), None).requires_grad
    torch.testing.assert_close(forward(model, (x,), 3), forward(model, (x,), None))


def test_a_reused_graph_is_not_run_again():
    model, x = _model(), torch.randn(4, 3)
    calls = []

    def counted(*rows):
        calls.append(len(rows[0]))
        return model(*rows)

    outputs = forward(counted, (x,), None, graph=True)
    accumulate(
        [Term(counted, (x,), lambda o, r: (o.sum(), {}), outputs=outputs)], torch.Tensor.backward, None
    )
    assert calls == [4]  # one forward per step (TRL: old log-probs = the current ones, detached)


def test_evaluation_forwards_without_a_graph_hold_one_layer_and_the_logits():
    from align_lab.train.micro import forward_row_bytes

    # SmolLM2, 58-token prompt, 16 response tokens, L = 74: one layer 74 x (6*576 + 4*1536 + 9*74) =
    # 74 x 10266 = 759,684 floats; logits 3 x 17 x 49152 = 2,506,752; x 4 bytes = 13,065,744
    smol = Dims(hidden=576, layers=30, intermediate=1536, heads=9, vocab=49152)
    assert forward_row_bytes(smol, 58, 16) == 4 * (759_684 + 2_506_752) == 13_065_744
    # 128 evaluation samples (32 questions x 4) are 1.56 GiB <= 2 GiB: one forward
    assert choose("auto", 128, forward_row_bytes(smol, 58, 16), 23 * GiB) is None


def test_on_a_gpu_the_budget_is_that_gpus_memory_for_the_loop_and_the_stages(monkeypatch):
    # one GPU per process: neither divided by the processes nor multiplied for the stages' process
    from types import SimpleNamespace

    from align_lab.study.hardware import Hardware

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(total_memory=80 * GiB))
    gpu = Hardware(device="cuda", processes=2)
    assert gpu.memory_bytes() == gpu.memory_bytes(whole_node=True) == 80 * GiB
    # hardware.memory_gb is a node's, as on a CPU
    assert Hardware(device="cuda", processes=2, memory_gb=8.0).memory_bytes() == 4 * GiB
