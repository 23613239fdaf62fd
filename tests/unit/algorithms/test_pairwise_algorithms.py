"""Every pairwise algo= choice honours the PairwiseAlgorithm contract (by shape, not inheritance); presets
give 18.7/18.8 numbers; wrong combinations fail at build with one line."""

from __future__ import annotations

import math

import pytest
import torch

from align_lab import registry
from align_lab.algorithms.preference import Pairs, PairwiseAlgorithm, PairwiseBase, Route, is_sampled
from align_lab.algorithms.sail import SAIL
from align_lab.config import ConfigError, build
from tests.conftest import compose

F64 = torch.float64


def algo_from_yaml(choice: str, *overrides: str):
    cfg, _ = compose([f"algo={choice}", *overrides])
    return build(cfg.algo, "algo")


def pairwise_choices() -> list[str]:
    """The algo= choices whose class (the YAML's `_target_`) is a pairwise algorithm's, read without
    composing (every test process collects this module); test_algorithm_contract's
    test_every_algo_choice_is_listed_as_its_composition_says checks the list against the contract's shape."""
    from hydra.utils import get_class

    return [
        c for c in registry.choices("algo") if issubclass(get_class(registry.target("algo", c)), PairwiseBase)
    ]


PAIRWISE = pairwise_choices()


def pair_18_7(n: int = 1):
    """The 18.7 pair repeated n times: (chosen, rejected, ref_chosen, ref_rejected), h = 1.5."""
    chosen = torch.full((n,), -10.0, dtype=F64, requires_grad=True)
    rejected = torch.full((n,), -12.0, dtype=F64, requires_grad=True)
    return chosen, rejected, torch.full((n,), -10.5, dtype=F64), torch.full((n,), -11.0, dtype=F64)


def test_the_pairwise_family_is_registered():
    assert set(PAIRWISE) >= {"dpo", "cdpo", "ipo", "slic", "online_dpo", "sail_pr", "sail_pp", "sail_dp"}


@pytest.mark.parametrize("choice", PAIRWISE)
def test_pairwise_loss_is_finite_differentiable_with_float_stats(choice):
    algo = algo_from_yaml(choice)
    torch.manual_seed(0)
    n = 64
    routes = algo.routes(n)
    assert routes.shape == (n,) and set(routes.tolist()) <= {int(r) for r in Route}
    if not algo.uses_dataset_pairs:  # pairs are built from prompts: every route must be sampled
        assert is_sampled(routes).all()
    chosen = (-10 + torch.randn(n, dtype=F64)).requires_grad_()
    rejected = (-12 + torch.randn(n, dtype=F64)).requires_grad_()
    ref_chosen, ref_rejected = -10 + torch.randn(n, dtype=F64), -12 + torch.randn(n, dtype=F64)
    # the loop passes the mismatched rows' log-ratios to an algorithm that asks for them (KTO)
    kl_logratios = 0.5 + torch.randn(2 * n, dtype=F64) if algo.mismatched_kl else None
    loss, stats = algo.loss(Pairs(chosen, rejected, ref_chosen, ref_rejected, routes, kl_logratios))
    assert loss.dim() == 0 and math.isfinite(loss.item())
    loss.backward()
    assert torch.isfinite(chosen.grad).all() and chosen.grad.abs().sum() > 0
    assert torch.isfinite(rejected.grad).all() and rejected.grad.abs().sum() > 0
    assert stats and all(type(v) is float for v in stats.values()), stats
    assert all(k.startswith("train/") for k in stats)
    assert algo.lr > 0 and algo.sync_every >= 1


@pytest.mark.parametrize("choice", PAIRWISE)
def test_a_pairwise_algorithm_meets_its_protocol_by_shape_at_most_three_classes_below_object(choice):
    # issue 60: the class, at most one preset parent (online DPO's DPO), PairwiseBase; then object
    mro = type(algo_from_yaml(choice)).__mro__
    assert len(mro) - 1 <= 3 and PairwiseAlgorithm not in mro and mro[-1] is object, mro


@pytest.mark.parametrize(
    "choice,expected",
    [
        ("dpo", 0.620957),  # -log sigmoid(0.15)
        ("cdpo", 0.635957),  # 0.9 * 0.620957 + 0.1 * (-log sigmoid(-0.15) = 0.770957)
        ("slic", 0.85),  # max(0, 1 - 0.15)
        ("online_dpo", 0.620957),  # the DPO loss on reward-ordered samples
    ],
)
def test_presets_give_the_18_7_losses(choice, expected):
    algo = algo_from_yaml(choice)
    loss, stats = algo.loss(Pairs(*pair_18_7(), algo.routes(1)))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # implicit rewards 0.1 * 0.5 = 0.05 and 0.1 * -1 = -0.1
    assert stats["train/reward_margin"] == pytest.approx(0.15, abs=1e-6)
    assert stats["train/pair_accuracy"] == 1.0


def test_ipo_preset_uses_per_token_averages_and_matches_18_7():
    algo = algo_from_yaml("ipo")
    assert algo.length_normalize  # the loop passes per-token averages
    # chosen 5 tokens, rejected 4: averages -2, -3, ref -2.1, -2.75; h = 0.1 - (-0.25) = 0.35;
    # (0.35 - 1 / (2 * 0.1))^2 = (0.35 - 5)^2 = 21.6225
    averaged = [torch.tensor([v], dtype=F64) for v in (-10.0 / 5, -12.0 / 4, -10.5 / 5, -11.0 / 4)]
    loss, _ = algo.loss(Pairs(*averaged, algo.routes(1)))
    assert loss.item() == pytest.approx(21.6225, abs=1e-6)
    # summed log-probs (OpenRLHF): (1.5 - 5)^2 = 12.25
    summed, _ = algo_from_yaml("ipo", "algo.length_normalize=false").loss(Pairs(*pair_18_7(), algo.routes(1)))
    assert summed.item() == pytest.approx(12.25, abs=1e-6)


def sail(**kwargs) -> SAIL:
    return SAIL(**{"lr": 1e-3, "beta": 0.1, **kwargs})


@pytest.mark.parametrize(
    "mode,grad_chosen,grad_rejected",
    [
        # DPO gradient -/+ beta sigmoid(-beta h) = -/+0.046257, plus the 18.8 extra terms
        ("reference_code", -0.046257 - 0.018629, 0.046257 - 0.015524),
        ("score_function", -0.046257 + 0.186287, 0.046257 + 0.186287),
    ],
)
def test_sail_pr_pair_has_the_dpo_gradient_plus_the_18_8_response_term(mode, grad_chosen, grad_rejected):
    algo = sail(g=1.0, gamma=0.3, extra_grad_mode=mode)
    chosen, rejected, ref_chosen, ref_rejected = pair_18_7()
    loss, _ = algo.loss(Pairs(chosen, rejected, ref_chosen, ref_rejected, torch.tensor([int(Route.DPR)])))
    assert loss.item() == pytest.approx(0.620957, abs=1e-6)  # the response term adds no value
    loss.backward()
    assert chosen.grad.item() == pytest.approx(grad_chosen, abs=1e-6)
    assert rejected.grad.item() == pytest.approx(grad_rejected, abs=1e-6)


@pytest.mark.parametrize(
    "route,kwargs", [(Route.DDP, {"r": 1.0, "rho": 0.2}), (Route.DPP, {"p": 1.0, "pi": 0.2})]
)
def test_sail_policy_labelled_pair_loss_matches_18_8_for_the_drawn_label(route, kwargs):
    # kept label: f = -0.620957, loss -f - 0.1 f^2 = 0.582398;
    # swapped (probability 0.462570): f = log sigmoid(-0.15) = -0.770957, loss 0.770957 - 0.1 *
    # 0.594375 = 0.711520. The DPP response term adds a gradient but no value.
    algo = sail(**kwargs)
    outcomes = set()
    for seed in range(20):
        torch.manual_seed(seed)
        loss, stats = algo.loss(Pairs(*pair_18_7(), torch.tensor([int(route)])))
        expected = 0.711520 if stats["train/relabel_rate"] == 1.0 else 0.582398
        assert loss.item() == pytest.approx(expected, abs=1e-6)
        outcomes.add(stats["train/relabel_rate"])
    assert outcomes == {0.0, 1.0}


@pytest.mark.parametrize("route,kwargs", [(Route.DDP, {"r": 1.0}), (Route.DPP, {"p": 1.0})])
def test_sail_relabels_policy_labelled_pairs_with_probability_1_minus_sigmoid(route, kwargs):
    # 1 - sigmoid(0.15) = 0.462570; n = 40000 pairs, within 5 standard errors (0.0125)
    algo, n = sail(**kwargs), 40_000
    torch.manual_seed(0)
    _, stats = algo.loss(Pairs(*pair_18_7(n), torch.full((n,), int(route))))
    assert abs(stats["train/relabel_rate"] - 0.462570) < 5 * math.sqrt(0.46257 * 0.53743 / n)


def test_sail_never_relabels_dataset_or_reward_labelled_pairs():
    algo = sail(g=0.5, r=0.0)
    routes = torch.tensor([int(Route.DPO), int(Route.DPR)] * 50)
    torch.manual_seed(0)
    loss, stats = algo.loss(Pairs(*pair_18_7(100), routes))
    assert "train/relabel_rate" not in stats
    assert loss.item() == pytest.approx(0.620957, abs=1e-6)


@pytest.mark.parametrize(
    "choice,override,expected",
    [
        ("sail_pr", "algo.p=0.8", "algo.r+p+g=1.1: must be <= 1 (route probabilities)"),
        ("sail_dp", "algo.r=1.5", "algo.r=1.5: must be in [0, 1]"),
        ("sail_pp", "algo.pi=-0.1", "algo.pi=-0.1: must be >= 0"),
        ("sail_pr", "algo.extra_grad_mode=hook", "algo.extra_grad_mode=hook: must be one of"),
        (
            "sail_pr",
            "algo.extra_grad_mode=reference_code,algo.sf_baseline=batch_mean",
            "algo.sf_baseline=batch_mean: must be none unless algo.extra_grad_mode=score_function",
        ),
        ("online_dpo", "algo.sync_every=0", "algo.sync_every=0: must be >= 1"),
        ("ipo", "algo.label_smoothing=0.1", "algo.label_smoothing=0.1: must be 0 with algo.loss_type=ipo"),
        ("slic", "algo.label_smoothing=0.1", "algo.label_smoothing=0.1: must be 0 with algo.loss_type=hinge"),
        ("dpo", "algo.loss_type=kto", "algo.loss_type=kto: must be one of sigmoid, ipo, hinge"),
    ],
)
def test_wrong_combinations_fail_at_build_with_one_line(choice, override, expected):
    with pytest.raises(ConfigError) as e:
        algo_from_yaml(choice, *override.split(","))
    assert str(e.value).startswith(expected) and "\n" not in str(e.value)


def test_sail_score_function_with_batch_mean_baseline_builds():
    algo = algo_from_yaml("sail_pp", "algo.sf_baseline=batch_mean")
    assert (algo.extra_grad_mode, algo.sf_baseline) == ("score_function", "batch_mean")
    assert (
        algo_from_yaml("sail_pr", "algo.extra_grad_mode=reference_code").extra_grad_mode == "reference_code"
    )
