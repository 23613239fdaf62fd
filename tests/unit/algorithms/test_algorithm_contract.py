"""Every online algo= choice, built from its YAML, keeps the loop's contract on a random rollout."""

from __future__ import annotations

import functools
import math
from dataclasses import fields

import pytest
import torch

from align_lab import registry
from align_lab.algorithms.base import LoopNeeds, OnlineAlgorithm, Rollout
from align_lab.algorithms.online import OnlineBase
from align_lab.algorithms.signals import (
    GREEDY_BASELINE,
    REFERENCE,
    REWARD_SOURCES,
    TEACHER,
    TEACHER_INFORMED,
    VOCABULARY_DIVERGENCE,
    GreedyBaseline,
    RewardSources,
    SelfTeacher,
    SourceScores,
    TeacherLogprobs,
    VocabularyDivergence,
    reads,
)
from align_lab.config import build
from tests.conftest import compose

B, T = 8, 5


@functools.cache
def algo_config(choice: str):
    cfg, _ = compose([f"algo={choice}"])
    return cfg.algo


def built(choice: str):
    """A fresh object each time: some algorithms keep state (running moments, baselines)."""
    return build(algo_config(choice), "algo")


def online_choices() -> list[str]:
    """The algo= choices whose class (the YAML's `_target_`, registry.target) is an online algorithm's, read
    without composing: every test process collects this module, and 38 compositions took ~6 s of CPU each
    time; test_every_algo_choice_is_listed_as_its_composition_says checks the list against the shape."""
    from hydra.utils import get_class

    return [
        c for c in registry.choices("algo") if issubclass(get_class(registry.target("algo", c)), OnlineBase)
    ]


ONLINE = online_choices()


def random_rollout(algo, seed: int = 0) -> Rollout:
    """B = 8 responses of up to T = 5 tokens, padded after EOS (lengths 1..5), garbage on padding."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([5, 1, 3, 4, 2, 5, 3, 1])
    mask = (torch.arange(T) < lengths[:, None]).float()  # (B, T)
    pad = (1 - mask) * 50.0  # padding must never leak into advantages or the loss

    def logprobs():
        return -torch.rand(B, T, generator=gen) * 3 - pad  # (B, T)

    # every signal the algorithm declares (algorithms/signals.py), drawn in a fixed order; the reference
    # for every algorithm, as the loop's log-probs stand in for it where none is read
    prompt_ids = torch.randint(0, 10, (B, 3), generator=gen)
    response_ids = torch.randint(0, 10, (B, T), generator=gen)
    own, signals = logprobs(), {REFERENCE: logprobs()}
    scores = torch.randn(B, generator=gen)
    values = torch.randn(B, T, generator=gen) + pad if algo.uses_critic else None
    if reads(algo, GreedyBaseline):
        signals[GREEDY_BASELINE] = torch.randn(B, generator=gen)
    if reads(algo, RewardSources):  # reward=combined's two sources (GDPO)
        signals[REWARD_SOURCES] = SourceScores(torch.randn(B, 2, generator=gen), ("a", "b"), (1.0, 0.5))
    if reads(algo, TeacherLogprobs) or reads(algo, SelfTeacher):
        signals[TEACHER] = logprobs()
    if reads(algo, SelfTeacher):  # SDPO: the rows whose teacher saw a demonstration (alternate ones)
        signals[TEACHER_INFORMED] = torch.arange(B) % 2 == 0
    return Rollout(
        prompt_ids=prompt_ids,
        prompt_attn=torch.ones(B, 3, dtype=torch.long),
        response_ids=response_ids,
        mask=mask,
        logprobs=own,
        scores=scores,
        values=values,
        signals=signals,
    )


def test_every_online_choice_is_checked():
    assert {"ppo", "ppo_max", "rloo", "grpo", "dr_grpo", "remax", "raft", "vanilla_pg"} <= set(ONLINE)


@pytest.mark.slow  # over 1.5 s of CPU: CI's tier (docs/testing.md, the fast tier)
def test_every_algo_choice_is_listed_as_its_composition_says():
    """The lists the contract tests take, read from the YAML files at collection (ONLINE, the pairwise
    tests' PAIRWISE, test_aliases' choices with a clip node), against every choice composed and built:
    the loops take an algorithm by its shape (OnlineAlgorithm, PairwiseAlgorithm)."""
    from align_lab.algorithms.preference import PairwiseAlgorithm
    from tests.unit.algorithms.test_pairwise_algorithms import PAIRWISE
    from tests.unit.test_aliases import names_clip

    for choice in registry.choices("algo"):
        algo = built(choice)
        assert isinstance(algo, OnlineAlgorithm) == (choice in ONLINE), choice
        assert isinstance(algo, PairwiseAlgorithm) == (choice in PAIRWISE), choice
        assert names_clip(choice) == ("clip" in algo_config(choice)), choice


@pytest.mark.parametrize("choice", ONLINE)
def test_advantages_have_the_mask_shape_and_are_zero_on_padding(choice):
    algo = built(choice)
    assert B % algo.group_size == 0
    rollout = random_rollout(algo)
    advantages, returns = algo.advantages(rollout)
    assert advantages.shape == rollout.mask.shape
    assert torch.isfinite(advantages).all()
    assert (advantages[rollout.mask == 0] == 0).all()
    assert (returns is not None) == algo.uses_critic
    if returns is not None:
        assert returns.shape == rollout.mask.shape and (returns[rollout.mask == 0] == 0).all()


@pytest.mark.parametrize("choice", ONLINE)
def test_loss_is_finite_differentiable_and_ignores_padding(choice):
    algo = built(choice)
    rollout = random_rollout(algo)
    rollout.advantages, rollout.returns = algo.advantages(rollout)
    batch = rollout.rows(torch.arange(B // 2))  # a minibatch, as the loop takes it
    gen = torch.Generator().manual_seed(1)
    logprobs = (batch.logprobs + 0.1 * torch.randn(B // 2, T, generator=gen)).requires_grad_()
    values = (
        (batch.values + 0.1 * torch.randn(B // 2, T, generator=gen)).requires_grad_()
        if algo.uses_critic
        else None
    )
    vocabulary = reads(algo, VocabularyDivergence)
    if vocabulary is not None:  # GKD: the loss reads the learner's per-token divergence, not log-probs
        logits = torch.randn(B // 2, T, 6, generator=gen).requires_grad_()  # (b, T, V=6)
        batch.signals[VOCABULARY_DIVERGENCE] = vocabulary.divergence(
            logits, torch.randn(B // 2, T, 6, generator=gen)
        )
        logprobs = logits  # the tensor the gradient must reach, on kept tokens only
    loss, stats = algo.loss(batch, logprobs, values)
    assert loss.dim() == 0 and math.isfinite(loss.item())
    loss.backward()
    kept = batch.mask.bool()
    assert torch.isfinite(logprobs.grad).all() and logprobs.grad[kept].abs().sum() > 0
    assert (logprobs.grad[~kept] == 0).all()
    if algo.uses_critic:
        assert torch.isfinite(values.grad).all() and values.grad[kept].abs().sum() > 0
        assert (values.grad[~kept] == 0).all()
    assert "train/clip_frac" in stats
    for key, value in stats.items():
        assert type(value) is float, f"{key} is {type(value).__name__}, not a plain float"


@pytest.mark.parametrize("choice", ONLINE)
def test_an_online_algorithm_is_at_most_three_classes_below_object(choice):
    # issue 60 item 2: the class, at most one preset parent (GSPO's GRPO), OnlineBase; then object
    assert len(type(built(choice)).__mro__) - 1 <= 3, type(built(choice)).__mro__


@pytest.mark.parametrize("choice", ONLINE)
def test_the_loop_switches_are_declared_in_needs_alone(choice):
    """Issue 60 item 2: the loop reads every switch from algo.needs (base.LoopNeeds). A class attribute of
    a switch's name that is no key is a second declaration the loop never reads (a ClassVar left over); a
    key of a switch's name (PPO's entropy_coef, DAPO's dynamic_sampling) reaches needs with its value."""
    algo = built(choice)
    keys = {f.name for f in fields(algo)}
    for name in (f.name for f in fields(LoopNeeds)):
        if name in keys:
            assert getattr(algo.needs, name) == getattr(algo, name), name
        else:
            assert not hasattr(type(algo), name), f"{type(algo).__name__}.{name}: declare it in needs"


def test_ppo_passes_its_loop_keys_on_to_needs_and_dapo_its_dynamic_sampling():
    from align_lab.algorithms.dapo import DAPO
    from align_lab.algorithms.ppo import PPO

    algo = PPO(kl_target=6.0, entropy_coef=0.01, ptx_coef=0.1, critic_pretrain_steps=2)
    assert algo.needs == LoopNeeds(kl_target=6.0, entropy_coef=0.01, ptx_coef=0.1, critic_pretrain_steps=2)
    algo.entropy_coef = 0.5  # a key set after building (as a test may) is what the loop reads
    assert algo.needs.entropy_coef == 0.5
    dapo = DAPO(group_size=2)  # conf/algo/dapo.yaml's switches are DAPO's defaults: on, 10 more rounds
    assert (dapo.needs.dynamic_sampling, dapo.needs.max_resample_rounds) == (True, 10)
    assert dapo.needs.compares_samples == "each reward with its group's mean"


def _default(f):
    from dataclasses import MISSING

    return f.default_factory() if f.default_factory is not MISSING else f.default


def test_the_rollout_correction_keys_are_declared_once_and_its_node_has_their_defaults():
    """RolloutCorrection (the part) declares the correction's keys, once: OnlineBase holds the part (its field
    `correction`), and conf/algo_shared/rollout_correction.yaml, the node algo.correction, gives every
    algorithm the part's defaults, so a part built without Hydra (a test, a benchmark) is a run's."""
    import yaml

    from align_lab.algorithms.online import OnlineBase
    from align_lab.algorithms.parts import RolloutCorrection
    from tests.conftest import ROOT

    part = {f.name: _default(f) for f in fields(RolloutCorrection)}
    shared = yaml.safe_load((ROOT / "conf" / "algo_shared" / "rollout_correction.yaml").read_text())
    assert shared == part
    assert not set(part) & {f.name for f in fields(OnlineBase)}  # declared once, not again as flat fields
    assert OnlineBase().correction == RolloutCorrection()
