"""Pair ordering, route sampling and SAIL's extra terms (spec.md 15, 16, 18.7, 18.8).

All expected numbers are derived by hand from the 18.7 pair: log pi(y_w) = -10, log pi(y_l) = -12,
log ref(y_w) = -10.5, log ref(y_l) = -11, beta = 0.1, so h = (-10 + 10.5) - (-12 + 11) = 1.5,
beta h = 0.15, sigmoid(0.15) = 0.537430, f = log sigmoid(0.15) = -0.620957.
"""

import math

import pytest
import torch

from align_lab.rl import (
    first_is_chosen,
    policy_swap_probability,
    sail_label_term,
    sail_response_term,
    sample_routes,
)

F64 = torch.float64
BETA = 0.1
SIG = 1 / (1 + math.exp(-0.15))  # sigmoid(beta h) = 0.537430
F = math.log(SIG)  # f = -0.620957


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), atol=1e-6, rtol=0)


def pair(requires_grad=True):
    chosen = torch.tensor([-10.0], dtype=F64, requires_grad=requires_grad)
    rejected = torch.tensor([-12.0], dtype=F64, requires_grad=requires_grad)
    return chosen, rejected


def log_p_of(chosen, rejected):
    margin = (chosen + 10.5) - (rejected + 11.0)  # h = 1.5, with gradient
    return torch.nn.functional.logsigmoid(BETA * margin)


def test_first_is_chosen_prefers_the_higher_score_and_breaks_ties_to_the_first():
    scores = torch.tensor([[1.0, 0.5], [0.2, 0.9], [0.3, 0.3], [-1.0, -1.0]])
    assert first_is_chosen(scores).tolist() == [True, False, True, True]


def test_policy_swap_probability_matches_18_8():
    # 1 - sigmoid(0.15) = 1 - 0.537430 = 0.462570
    close(policy_swap_probability(torch.tensor([1.5], dtype=F64), BETA), [0.462570])
    # h = 0: the policy has no preference, a fair coin
    close(policy_swap_probability(torch.tensor([0.0], dtype=F64), BETA), [0.5])


def test_sail_label_term_loss_and_gradient_factor_match_18_8():
    chosen, rejected = pair()
    f = log_p_of(chosen, rejected)
    loss = (-f + sail_label_term(f, 0.2)).sum()
    # -f - 1/2 c f^2 = 0.620957 - 0.1 * 0.385587 = 0.582398
    close(loss.detach(), 0.582398)
    loss.backward()
    # d/dlp_w of -f alone is -beta sigmoid(-beta h) = -0.1 * 0.462570 = -0.046257; the label term
    # multiplies it by 1 + c f = 1 - 0.2 * 0.620957 = 0.875809, giving -0.040512
    close(chosen.grad, [-0.046257 * 0.875809])
    close(chosen.grad / -0.0462570, [0.875809])
    close(rejected.grad, [0.046257 * 0.875809])


def test_sail_response_term_reference_code_matches_18_8():
    # official hook: extra dL/dlp = -c f / lp, c = gamma = 0.3.
    # Sign convention: gradient of the loss (descent direction is minus it). Both are negative, so
    # descent RAISES the likelihood of both sampled responses (opposite to the score function).
    # y_w: -0.3 * (-0.620957) / (-10) = -0.018629; y_l: -0.3 * (-0.620957) / (-12) = -0.015524
    chosen, rejected = pair()
    f = log_p_of(chosen, rejected).detach()
    term = sail_response_term(f, chosen, rejected, 0.3, "reference_code")
    close(term.detach(), 0.0)  # a zero-valued surrogate: the logged loss is SAIL's loss
    term.backward()
    close(chosen.grad, [-0.018629])
    close(rejected.grad, [-0.015524])


def test_sail_response_term_score_function_matches_18_8():
    # score function of L = -E_{y~pi}[f]: extra dL/dlp = -c f = -0.3 * (-0.620957) = +0.186287 for
    # each sampled response. Sign convention: gradient of the loss; positive, so descent LOWERS the
    # likelihood of both responses, more for badly ordered pairs (|f| large).
    chosen, rejected = pair()
    f = log_p_of(chosen, rejected).detach()
    term = sail_response_term(f, chosen, rejected, 0.3, "score_function")
    close(term.detach(), 0.0)
    term.backward()
    close(chosen.grad, [0.186287])
    close(rejected.grad, [0.186287])


def test_reference_code_is_summed_over_pairs_and_score_function_averaged():
    # two copies of the pair: the hook adds its gradient per pair (not / N, as the official code);
    # the score function is part of the batch-mean loss, so each pair gets 0.186287 / 2 = 0.093144
    chosen = torch.tensor([-10.0, -10.0], dtype=F64, requires_grad=True)
    rejected = torch.tensor([-12.0, -12.0], dtype=F64, requires_grad=True)
    f = torch.full((2,), F, dtype=F64)
    sail_response_term(f, chosen, rejected, 0.3, "reference_code").backward()
    close(chosen.grad, [-0.018629, -0.018629])
    chosen.grad = None
    sail_response_term(f, chosen, rejected, 0.3, "score_function").backward()
    close(chosen.grad, [0.093144, 0.093144])


def test_score_function_batch_mean_baseline_subtracts_the_mean_f_of_pairs_with_the_term():
    # f = [-0.620957, -0.2, -5.0]; the third pair has c = 0 and is left out of the baseline:
    # b = (-0.620957 - 0.2) / 2 = -0.410479; grad_i = -c (f_i - b) / N with N = 3:
    # pair 0: -0.3 * (-0.620957 + 0.410479) / 3 = +0.021048; pair 1: -0.3 * (-0.2 + 0.410479) / 3
    # = -0.021048; pair 2: 0
    chosen = torch.tensor([-10.0, -3.0, -7.0], dtype=F64, requires_grad=True)
    rejected = torch.tensor([-12.0, -4.0, -9.0], dtype=F64, requires_grad=True)
    f = torch.tensor([F, -0.2, -5.0], dtype=F64)
    coef = torch.tensor([0.3, 0.3, 0.0], dtype=F64)
    sail_response_term(f, chosen, rejected, coef, "score_function", "batch_mean").backward()
    close(chosen.grad, [0.021048, -0.021048, 0.0])
    close(rejected.grad, [0.021048, -0.021048, 0.0])


def test_sail_response_term_rejects_unknown_modes():
    chosen, rejected = pair()
    with pytest.raises(ValueError, match="reference_code, score_function"):
        sail_response_term(torch.tensor([F]), chosen, rejected, 0.3, "hook")
    with pytest.raises(ValueError, match="none, batch_mean"):
        sail_response_term(torch.tensor([F]), chosen, rejected, 0.3, "score_function", "ema")


def test_sample_routes_follows_the_mixing_probabilities():
    # SAIL MIX r = 0.4, p = 0.3, g = 0.2, remainder 0.1; n = 40000 draws, each share within
    # 5 standard errors sqrt(q (1 - q) / n) <= 0.0025 of its probability
    n = 40_000
    routes = sample_routes([0.4, 0.3, 0.2], n, torch.Generator().manual_seed(0))
    assert routes.shape == (n,) and routes.dtype == torch.long
    for code, q in enumerate([0.4, 0.3, 0.2, 0.1]):
        share = (routes == code).double().mean().item()
        assert abs(share - q) < 5 * math.sqrt(q * (1 - q) / n), (code, share, q)


def test_sample_routes_with_zero_probabilities_only_draws_the_remainder():
    routes = sample_routes([0.0, 0.0, 0.0], 100, torch.Generator().manual_seed(0))
    assert (routes == 3).all()


def test_sample_routes_rejects_probabilities_over_one():
    with pytest.raises(ValueError, match="sum to <= 1"):
        sample_routes([0.5, 0.4, 0.2], 10)
