"""Token log-probs, sequence log-probs and entropy (spec.md 0.2)."""

import math

import torch

from align_lab.rl import entropy_from_logits, logprobs_from_logits, sequence_logprobs

F64 = torch.float64
LN4 = math.log(4.0)  # 1.386294


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), atol=1e-6, rtol=0)


# two positions over a vocabulary of 2: p = [0.25, 0.75] and p = [0.5, 0.5]
LOGITS = torch.tensor([[[math.log(0.25), math.log(0.75)], [0.0, 0.0]]], dtype=F64)  # (1, 2, 2)


def test_logprobs_from_logits_gathers_label_log_probs():
    labels = torch.tensor([[1, 0]])
    # log 0.75 = -0.287682, log 0.5 = -0.693147
    close(logprobs_from_logits(LOGITS, labels), [[-0.287682, -0.693147]])
    # softmax is shift-invariant; a shift of 1000 must not overflow
    close(logprobs_from_logits(LOGITS + 1000.0, labels), [[-0.287682, -0.693147]])


def test_sequence_logprobs_sum_and_average_over_kept_tokens():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -9.0]], dtype=F64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=F64)
    close(sequence_logprobs(logprobs, mask), [-6.0, -1.0])  # -1 - 2 - 3; -0.5 - 0.5
    close(sequence_logprobs(logprobs, mask, average=True), [-2.0, -0.5])  # -6 / 3; -1 / 2


def test_entropy_from_logits_matches_hand_values():
    # -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.346574 + 0.215762 = 0.562335; uniform over 2 = ln 2
    close(entropy_from_logits(LOGITS), [[0.562335, math.log(2.0)]])
    close(entropy_from_logits(torch.zeros(3, 4, dtype=F64)), [LN4] * 3)  # uniform over 4
    close(entropy_from_logits(LOGITS + 1000.0), [[0.562335, math.log(2.0)]])


def test_entropy_from_logits_handles_masked_vocabulary():
    inf = float("inf")
    logits = torch.tensor([[0.0, -inf, -inf], [0.0, 0.0, -inf]], dtype=F64)
    close(entropy_from_logits(logits), [0.0, math.log(2.0)])  # one-hot: 0; two equal: ln 2
