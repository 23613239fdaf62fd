"""The rollout-trainer mismatch metrics: k3 of KL(rollout || trainer), the share of ratios outside
[0.5, 2] and the largest ratio, over response tokens only."""

from __future__ import annotations

import math

import pytest
import torch

from align_lab.rl import kl_penalty, masked_mean, rollout_mismatch

# trainer / rollout probability ratios: row 0 has three tokens, row 1 one token then padding whose
# log-probs are garbage (a ratio of e^50, nan) that must not count
RATIOS = [[1.0, 1.5, 0.25], [3.0, math.e**50, float("nan")]]
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


def logprobs_with_ratios(ratios):
    rollout = torch.full((2, 3), -1.7)  # (B, T) any log-probs
    return rollout + torch.tensor(ratios).log(), rollout  # trainer, rollout


def test_mismatch_is_the_k3_of_kl_rollout_to_trainer_over_response_tokens():
    trainer, rollout = logprobs_with_ratios(RATIOS)
    kl, outside, largest = rollout_mismatch(trainer, rollout, MASK)
    # k3 = ratio - 1 - ln(ratio): 1 -> 0; 1.5 -> 0.5 - 0.4054651 = 0.0945349;
    # 0.25 -> -0.75 + 1.3862944 = 0.6362944; 3 -> 2 - 1.0986123 = 0.9013877
    # mean over the 4 response tokens: 1.6322170 / 4 = 0.4080542
    assert kl.item() == pytest.approx(0.4080542, abs=1e-6)
    assert outside.item() == 0.5  # 0.25 and 3 leave [0.5, 2]; 1 and 1.5 do not
    assert largest.item() == pytest.approx(3.0, rel=1e-6)  # the padding's e^50 does not count


def test_mismatch_kl_has_the_rollout_policy_first():
    # one token, ratio trainer/rollout = 3: k3 = 3 - 1 - ln 3 = 0.9013877; the other direction
    # (ratio 1/3) would give 1/3 - 1 + ln 3 = 0.4319456
    trainer, rollout, mask = torch.tensor([[math.log(3.0)]]), torch.zeros(1, 1), torch.ones(1, 1)
    assert rollout_mismatch(trainer, rollout, mask)[0].item() == pytest.approx(0.9013877, abs=1e-6)
    assert rollout_mismatch(rollout, trainer, mask)[0].item() == pytest.approx(0.4319456, abs=1e-6)
    expected = masked_mean(kl_penalty(rollout, trainer, "k3"), mask)  # the same estimator, same direction
    assert rollout_mismatch(trainer, rollout, mask)[0].item() == pytest.approx(expected.item())


def test_equal_log_probs_have_no_mismatch_and_a_max_ratio_of_one():
    logprobs = torch.randn(4, 5).log_softmax(-1)
    kl, outside, largest = rollout_mismatch(logprobs, logprobs.clone(), torch.ones(4, 5))
    assert kl.item() == 0.0 and outside.item() == 0.0 and largest.item() == 1.0


def test_float32_rounding_of_one_distribution_is_resolved_not_lost():
    # two float32 log-probs one ulp apart (r ~ 1.2e-7): k3 ~ r^2 / 2 ~ 7e-15 > 0 in float64
    a = torch.tensor([[-1.0]])
    b = torch.nextafter(a, torch.tensor(0.0))
    r = (b.double() - a.double()).item()
    assert rollout_mismatch(b, a, torch.ones(1, 1))[0].item() == pytest.approx(r * r / 2, rel=1e-3)


def test_an_all_padding_batch_gives_zeros():
    trainer, rollout = logprobs_with_ratios(RATIOS)
    assert [x.item() for x in rollout_mismatch(trainer, rollout, torch.zeros(2, 3))] == [0.0, 0.0, 0.0]
