"""DAPO's dynamic sampling in the online loop (align_lab/train/dynamic_sampling.py): all-equal groups are
dropped, more prompts drawn until the step is full, at most max_resample_rounds more rounds, and the
counts logged. Samples are fakes with ragged widths: refill pads prompts left and responses right."""

from __future__ import annotations

import pytest
import torch

from align_lab.algorithms.dapo import DAPO
from align_lab.rollout.base import Samples
from align_lab.train.dynamic_sampling import check_dynamic_sampling, refill

G = 2


def fake(tag: str, scores: list[float], width: int) -> tuple[Samples, torch.Tensor]:
    """len(scores) rows named tag0.. with prompts of `width` tokens and responses of width + 1."""
    b = len(scores)
    ids = torch.arange(b)[:, None].repeat(1, width) + 1  # (b, width)
    samples = Samples(
        prompts=[f"{tag}{i}" for i in range(b)],
        prompt_ids=ids,
        prompt_attn=torch.ones(b, width, dtype=torch.long),
        response_ids=torch.ones(b, width + 1, dtype=torch.long),
        mask=torch.ones(b, width + 1),
        responses=[f"{tag}{i}" for i in range(b)],
        finished=[True] * b,
        logprobs=-torch.ones(b, width + 1),
    )
    return samples, torch.tensor(scores)


def test_all_equal_groups_are_dropped_and_the_step_refilled_from_more_draws():
    # step: groups a0a1 (1, 1: equal, dropped), a2a3 (0, 1: kept); need 2 groups.
    # round 1: b0b1 (0, 0: dropped), b2b3 (1, 0: kept) -> full after one extra round
    first = fake("a", [1.0, 1.0, 0.0, 1.0], 2)
    draws = {1: fake("b", [0.0, 0.0, 1.0, 0.0], 3)}
    samples, scores, metrics, unused = refill(*first, draws.__getitem__, 2, G, 5, pad_id=0)
    assert samples.prompts == ["a2", "a3", "b2", "b3"] and scores.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert samples.prompt_ids.shape == (4, 3) and samples.prompt_ids[0].tolist() == [0, 3, 3]  # left pad
    assert samples.mask[0].tolist() == [1, 1, 1, 0]  # right pad
    assert metrics == {
        "train/dropped_groups": 2.0,
        "train/resample_rounds": 1.0,
        "train/kept_groups_short": 0.0,
    }
    assert unused == (3 + 3 + 4 + 4, 4)  # the dropped rows a0, a1, b0, b1 (tokens, rows) were not trained


def test_columns_after_the_score_travel_with_their_rows():
    # reward=combined: (b, 1 + K), the total first, then each source's score. Same draws as above: the
    # kept rows a2, a3, b2, b3 keep their sources (10 * row + 1 and + 2, rows 0-7 over both draws)
    def columns(samples_scores, first_row):
        samples, scores = samples_scores
        rows = torch.arange(first_row, first_row + len(scores), dtype=torch.float)[:, None]  # (b, 1)
        return samples, torch.cat([scores[:, None], 10 * rows + 1, 10 * rows + 2], 1)  # (b, 3)

    first = columns(fake("a", [1.0, 1.0, 0.0, 1.0], 2), 0)
    draws = {1: columns(fake("b", [0.0, 0.0, 1.0, 0.0], 3), 4)}
    samples, kept, _, _ = refill(*first, draws.__getitem__, 2, G, 5, pad_id=0)
    assert samples.prompts == ["a2", "a3", "b2", "b3"]
    assert kept.tolist() == [[0.0, 21.0, 22.0], [1.0, 31.0, 32.0], [1.0, 61.0, 62.0], [0.0, 71.0, 72.0]]


def test_after_max_resample_rounds_a_short_step_is_filled_with_dropped_groups():
    first = fake("a", [1.0, 1.0, 0.0, 0.0], 2)  # both groups equal
    samples, scores, metrics, _ = refill(*first, lambda r: fake("b", [2.0, 2.0, 1.0, 0.0], 2), 2, G, 1, 0)
    assert samples.prompts == ["b2", "b3", "a0", "a1"]  # one informative group, then the first dropped one
    assert metrics["train/kept_groups_short"] == 1.0 and metrics["train/resample_rounds"] == 1.0


def test_a_step_whose_groups_never_differ_stops_in_one_line_naming_the_key():
    from align_lab.value_checks import TrainsNothing

    constant = lambda r: fake("b", [1.0, 1.0, 1.0, 1.0], 2)  # noqa: E731 - a reward that is always 1
    with pytest.raises(TrainsNothing) as e:  # before: 11 draws per step, zero gradient, "completed"
        refill(*fake("a", [1.0, 1.0, 1.0, 1.0], 2), constant, 2, G, 10, 0)
    assert str(e.value) == (  # 1 + 10 rounds of 2 groups: 22 groups
        "algo.dynamic_sampling=true: none of the 22 groups drawn in 11 rounds (algo.max_resample_rounds=10) "
        "had rewards that differ (every reward 1), so the step would train nothing; check the reward, or "
        "set algo.dynamic_sampling=false"
    )
    with pytest.raises(TrainsNothing, match=r"\(rewards in \[0, 2\]\)"):  # each group equal, groups apart
        refill(*fake("a", [0.0, 0.0, 2.0, 2.0], 2), lambda r: fake("b", [1.0] * 4, 2), 2, G, 1, 0)


def test_dynamic_sampling_is_refused_off_policy_and_data_parallel():
    algo = DAPO(group_size=2)

    class Train:
        max_staleness = 1

    with pytest.raises(ValueError, match="train.max_staleness=1: must be 0 with dynamic sampling"):
        check_dynamic_sampling(algo, Train, 1)
    Train.max_staleness = 0
    with pytest.raises(ValueError, match="hardware.processes=2"):
        check_dynamic_sampling(algo, Train, 2)
    check_dynamic_sampling(algo, Train, 1)
