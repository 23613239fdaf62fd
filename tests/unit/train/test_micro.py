"""train/micro.py: micro-batches equal one batch; train.micro_batch_size's checks (its `auto` plan:
tests/unit/train/test_memory.py)."""

from __future__ import annotations

import pytest
import torch

from align_lab.config import ConfigError
from align_lab.train.common import TrainConfig
from align_lab.train.micro import Term, accumulate, chunks, forward, whole
from tests.conftest import compose


def test_chunks_split_rows_and_a_size_at_or_over_the_rows_is_one_forward():
    assert chunks(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 6)]
    assert chunks(5, None) == chunks(5, 5) == chunks(5, 9) == [slice(0, 5)]
    assert whole(8, 8) and whole(8, None) and not whole(8, 7)
    with pytest.raises(TypeError, match="micro-batch size 'auto': rows or None"):
        chunks(5, "auto")  # a loop never plans: the Context it is handed has (train/memory/planner.py)


@pytest.mark.parametrize("bad", [0, -2, "abc", "4", True, 2.5])
def test_bad_micro_batch_sizes_are_refused_in_one_line(bad):
    shown = "true" if bad is True else bad  # as the command line writes it
    with pytest.raises(
        ValueError, match=rf"^micro_batch_size={shown}: must be auto .*, an integer >= 1, or null"
    ):
        TrainConfig(micro_batch_size=bad)


@pytest.mark.parametrize("bad", ["0", "abc"])
def test_bad_micro_batch_sizes_are_refused_before_compute(bad):
    from align_lab.run.admission import spec_from_config

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
