"""KTO on unpaired labelled samples (issue 36 item 2, algo.desirable_threshold): the labeller, TRL's weight
balance advice, the loss on rows labelled one by one (by hand, and the pairwise loop's rows against TRL's
KTOTrainer on tiny Llamas), and a whole run on the toy world whose preferences stage samples them.

Peer: huggingface/trl@f2cd57710ae345ea6428ae95363267fcf38a3dc8 trl/trainer/kto_trainer.py (unpaired
(prompt, completion, label) rows; chosen = logps[label], rejected = logps[~label], desirable first,
nanmean; the weight advice of KTOTrainer.__init__ from the paper's eq. 8).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math

import pytest
import torch

from align_lab.algorithms.kto import KTO, weight_ranges
from align_lab.algorithms.preference import Pairs
from align_lab.run.pairs import check_labels, threshold_labels
from align_lab.tasks.base import Labelled, labelled_from_json
from align_lab.train.backend import Backend
from align_lab.train.distributed import Group
from align_lab.train.learner import token_logprobs
from align_lab.train.micro import Rows
from align_lab.train.pairwise import pair_loss, reference_forward
from tests.conftest import run_in_process
from tests.unit.algorithms.test_kto_reference_point import loop_learner, models, trl_logps

SIG_HALF, SIG_3_HALVES = 1 / (1 + math.exp(-0.5)), 1 / (1 + math.exp(-1.5))


def test_threshold_labels_each_response_desirable_strictly_above_the_threshold():
    rows = threshold_labels(0.5)("p", ["a", "b", "c"], [0.2, 0.7, 0.5], None)
    assert [(r.response, r.desirable, r.gold) for r in rows] == [
        ("a", False, 0.2),
        ("b", True, 0.7),
        ("c", False, 0.5),
    ]
    assert all(r.score == r.gold for r in rows)  # no scores given: labelled by the gold reward
    # the run's reward scores them (reward=learned_rm, hf_rm, function...): labels from the scores 0.9,
    # -0.3, 0.5 against 0.5 (True, False, False), whatever the gold rewards say (0.2, 0.7, 0.5)
    scored = threshold_labels(0.5)("p", ["a", "b", "c"], [0.2, 0.7, 0.5], None, scores=[0.9, -0.3, 0.5])
    assert [(r.desirable, r.gold, r.score) for r in scored] == [
        (True, 0.2, 0.9),
        (False, 0.7, -0.3),
        (False, 0.5, 0.5),
    ]
    conversation = Labelled("p", [("policy", "x"), ("env", "y")], True, 1.0, 2.5)
    assert labelled_from_json(json.loads(json.dumps(conversation.__dict__))) == conversation
    old = {"prompt": "p", "response": "x", "desirable": True, "gold": 1.0}  # a cached row before `score`
    assert labelled_from_json(old).score == 1.0  # it was labelled by its gold reward


def test_samples_all_on_one_side_of_the_threshold_are_refused_in_one_line():
    from align_lab.value_checks import TrainsNothing

    with pytest.raises(TrainsNothing) as e:  # a one-line stop of the run (run/execute.py failure)
        check_labels(threshold_labels(1.0)("p", ["a", "b"], [0.0, 1.0], None), 1.0)
    assert str(e.value) == (  # scores 0 and 1: the range [0, 1], none above 1
        "algo.desirable_threshold=1.0: all 2 sampled responses' rewards, in [0, 1], are at or below it, "
        "so KTO has nothing to contrast; choose a threshold in [0, 1)"
    )
    check_labels(threshold_labels(0.5)("p", ["a", "b"], [0.0, 1.0], None), 0.5)  # one of each: fine


def test_weight_ranges_are_trls_advice():
    # 1 desirable, 3 undesirable, weights 1: desirable_weight in [3 * 1 / 1, 3 * 1.33] = [3.0, 3.99], or
    # undesirable_weight in [1 / 3 / 1.33, 1 / 3] = [0.2506.., 0.333..] -> [0.25, 0.33]
    assert weight_ranges(1, 3, 1.0, 1.0) == ((3.0, 3.99), (0.25, 0.33))
    # 6 desirable, 2 undesirable, undesirable_weight 2: [2 * 2 / 6, x 1.33] = [0.67, 0.89]; [6 / 2 / 1.33, 3]
    assert weight_ranges(6, 2, 1.0, 2.0) == ((0.67, 0.89), (2.26, 3.0))
    assert weight_ranges(0, 4, 1.0, 1.0) == ((4.0, 5.32), (0.19, 0.25))  # no desirable sample counts as 1


def test_check_data_warns_as_trl_does_when_neither_weight_balances(caplog):
    rows = [Labelled("p", "a", True)] + [Labelled("p", "b", False)] * 3
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        KTO(desirable_threshold=0.5).check_data(rows)
        KTO(desirable_threshold=0.5, desirable_weight=3.5).check_data(rows)  # in [3.0, 3.99]: silent
        KTO().check_data(rows)  # pairs: nothing to balance
    [record] = caplog.records
    assert record.getMessage().startswith(
        "KTO: 1 desirable and 3 undesirable samples; set EITHER algo.desirable_weight in [3.0, 3.99] OR "
        "algo.undesirable_weight in [0.25, 0.33]"
    )


@pytest.mark.parametrize("weights", [(1.0, 1.0), (2.0, 1.0)])
def test_unpaired_loss_by_hand(weights):
    # beta 1, batch reference point; rows' log-ratios (first rows, then second rows) [1, 0 | -1, 2],
    # labels [D, U | U, D]; z_0 = mean = 0.5. Desirable r = 1, 2: 1 - sigmoid(0.5), 1 - sigmoid(1.5);
    # undesirable r = 0, -1: 1 - sigmoid(0.5 - 0), 1 - sigmoid(0.5 + 1). Mean over 4 rows:
    # (lambda_D + lambda_U) (2 - sigmoid(0.5) - sigmoid(1.5)) / 4
    algo = KTO(beta=1.0, kl_reference_point="batch", desirable_threshold=0.0)
    algo.desirable_weight, algo.undesirable_weight = weights
    desirable = torch.tensor([True, False, False, True])
    zero = torch.zeros(2)
    pairs = Pairs(torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 2.0]), zero, zero, algo.routes(2))
    loss, stats = algo.loss(dataclasses.replace(pairs, desirable=desirable))
    expected = sum(weights) * (2 - SIG_HALF - SIG_3_HALVES) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats == pytest.approx(
        {
            "train/kto_kl": 0.5,
            "train/kto_desirable_share": 0.5,
            "train/chosen_reward": 1.5,
            "train/rejected_reward": -0.5,
        }
    )


def test_pairs_are_unpaired_rows_with_the_chosen_rows_desirable():
    algo = KTO(kl_reference_point="batch")
    gen = torch.Generator().manual_seed(0)
    chosen, rejected, ref_c, ref_r = torch.randn(4, 3, generator=gen)
    pairs = Pairs(chosen, rejected, ref_c, ref_r, algo.routes(3))
    paired, _ = algo.loss(pairs)
    labels = torch.tensor([True] * 3 + [False] * 3)
    unpaired, _ = algo.loss(dataclasses.replace(pairs, desirable=labels))
    assert paired.item() == unpaired.item()
    loss, stats = algo.loss(dataclasses.replace(pairs, desirable=torch.zeros(6, dtype=torch.bool)))
    assert "train/chosen_reward" not in stats and stats["train/kto_desirable_share"] == 0.0  # one label only


def test_desirable_threshold_must_be_null_or_finite():
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match=r"^desirable_threshold=(nan|inf): must be null \(the pairs"):
            KTO(desirable_threshold=bad)


PROMPTS = [[5, 6, 7], [9, 8], [4, 4, 4, 3], [7, 7]]  # 4 unpaired rows, each its own prompt
RESPONSES = [[11, 12, 13], [14], [15, 16], [21, 22, 23, 24]]
LABELS = [True, False, False, True]


def trl_unpaired_loss(policy, reference, beta=0.1):
    """KTOTrainer on unpaired rows: the KL batch is the completions rotated by one, chosen = logps[label]."""
    kl_completions = [RESPONSES[-1], *RESPONSES[:-1]]
    logps = torch.stack([trl_logps(policy, p, c) for p, c in zip(PROMPTS, RESPONSES, strict=True)])
    with torch.no_grad():
        ref = torch.stack([trl_logps(reference, p, c) for p, c in zip(PROMPTS, RESPONSES, strict=True)])
        kl_logps = torch.stack(
            [trl_logps(policy, p, c) for p, c in zip(PROMPTS, kl_completions, strict=True)]
        )
        ref_kl = torch.stack(
            [trl_logps(reference, p, c) for p, c in zip(PROMPTS, kl_completions, strict=True)]
        )
    kl = (kl_logps - ref_kl).mean().detach().clamp(min=0)
    label = torch.tensor(LABELS)
    chosen, rejected = (logps - ref)[label], (logps - ref)[~label]
    losses = torch.cat((1 - torch.sigmoid(beta * (chosen - kl)), 1 - torch.sigmoid(beta * (kl - rejected))))
    return losses.nanmean()


def test_the_loops_unpaired_rows_are_trls_kto_on_unpaired_data():
    policy, reference = models()
    theirs = copy.deepcopy(policy)
    P, T = max(map(len, PROMPTS)), max(map(len, RESPONSES))
    prompt_ids = torch.tensor([[0] * (P - len(p)) + p for p in PROMPTS])  # (4, P)
    ids = torch.tensor([r + [0] * (T - len(r)) for r in RESPONSES])  # (4, T)
    mask = torch.tensor([[1.0] * len(r) + [0.0] * (T - len(r)) for r in RESPONSES], dtype=torch.float64)
    rows = Rows(prompt_ids, (prompt_ids != 0).long(), ids, mask, mask)
    algo = KTO(desirable_threshold=0.5)
    ref_logprobs, kl_logratios = reference_forward(loop_learner(algo, policy, reference), rows)
    logprobs = token_logprobs(Backend(), policy, *rows.tensors())
    desirable = torch.tensor(LABELS)
    loss, _ = pair_loss(algo, Group(), rows, ref_logprobs, algo.routes(2), kl_logratios, desirable, logprobs)
    peer = trl_unpaired_loss(theirs, reference)
    loss.backward()
    peer.backward()
    torch.testing.assert_close(loss, peer, rtol=1e-6, atol=1e-7, check_dtype=False)
    for (name, ours), mine in zip(policy.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(ours.grad, mine.grad, rtol=1e-6, atol=1e-7, msg=name)


def test_a_run_on_unpaired_samples_builds_them_beside_the_pairs(tmp_path, cache_dir):
    # reward=learned_rm: its pairs and its model are built first, then the samples it labels
    overrides = ["algo=kto", "algo.desirable_threshold=0.0"]
    summary = run_in_process(overrides, tmp_path, cache_dir)
    assert summary["status"] == "completed"
    keys = {stage: used["key"] for stage, used in summary["stages"].items()}
    assert {"preferences", "unpaired_samples"} <= set(keys) and keys["preferences"] != keys[
        "unpaired_samples"
    ]
    folder = cache_dir / "preferences" / keys["unpaired_samples"]
    rows = [labelled_from_json(json.loads(line)) for line in (folder / "samples.jsonl").open()]
    assert len(rows) == 256 * 2 and 0 < sum(r.desirable for r in rows) < len(rows)  # n_pairs x pair_samples
    # labelled by the run's reward, the learned reward model, not by the toy world's gold reward
    assert all(r.desirable == (r.score > 0.0) for r in rows)
    assert any(r.desirable != (r.gold > 0.0) for r in rows) and all(r.score != r.gold for r in rows)
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    assert all(0 <= s["train/kto_desirable_share"] <= 1 for s in steps if "train/loss" in s)


@pytest.mark.parametrize("reward", ["function", "gold"])
def test_the_runs_reward_labels_the_unpaired_samples(tmp_path, reward):
    # reward=function word_count: a response is desirable when it has more than 3 words (its score is
    # len(response.split()), by hand), whatever its gold reward; reward=gold: when its gold reward is
    # above 0, with the stage's key and rows as when no reward is given (the key before this change)
    from align_lab.cache import StageCache
    from align_lab.run.admission import spec_from_config
    from align_lab.run.stages import build_stages
    from tests.conftest import Quiet, compose

    threshold = 3.0 if reward == "function" else 0.0
    small = ["task.n_demonstrations=96", "task.n_pairs=16", "sft.epochs=1", "algo=kto"]
    extra = ["reward.path=align_lab.rewards.function:word_count"] if reward == "function" else []
    spec = spec_from_config(*compose([*small, f"reward={reward}", *extra]))
    built = []
    for source in (spec.reward,) if reward == "function" else (spec.reward, None):
        cache, limits = StageCache(tmp_path / "cache"), dict(desirable_threshold=threshold, reward=source)
        stages = build_stages(spec.task, spec.model, spec.sft, cache, Quiet, None, **limits)
        built.append((stages.samples, stages.results["unpaired_samples"].key))
    rows = built[0][0]
    assert len(rows) == 16 * 2 and 0 < sum(r.desirable for r in rows) < len(rows)  # n_pairs x pair_samples
    if reward == "function":
        assert all(r.score == len(r.response.split()) and r.desirable == (r.score > 3) for r in rows)
        assert all(r.score != r.gold for r in rows)  # the gold reward is recorded, not used
    else:
        assert all(r.score == r.gold and r.desirable == (r.gold > 0.0) for r in rows)
        assert built[0] == built[1]  # reward=gold: the rows and the stage's key of no reward given
