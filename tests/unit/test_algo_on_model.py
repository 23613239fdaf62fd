"""An algorithm's keys on one model (conf/algo_on_model/<algo>_<model>.yaml, Hydra's specialising
configuration): sdpo on the toy world's model is mostly GRPO (TRL's pure self-distillation slid far below
SFT there, docs/algorithms.md), every other model keeps TRL's defaults, and the user's keys still win."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from align_lab import registry
from align_lab.config import SPECIALISED, run_choices
from align_lab.run.defaults import apply_specialised_defaults
from tests.conftest import compose


def algo_keys(overrides):
    cfg, names = compose(overrides)
    return cfg.algo.get("distillation_weight"), cfg.algo.kl_coef, names


def test_sdpo_on_the_toy_model_is_mostly_grpo_and_says_where_that_came_from():
    weight, kl, names = algo_keys(["algo=sdpo"])
    assert (weight, kl) == (0.1, 0.2)
    assert names[SPECIALISED] == "sdpo_tiny_llama"
    cfg, _ = compose(["algo=sdpo"])
    assert apply_specialised_defaults(cfg, ["algo=sdpo"], names) == {
        "algo.distillation_weight": "algo_on_model=sdpo_tiny_llama",
        "algo.kl_coef": "algo_on_model=sdpo_tiny_llama",
    }


def test_other_models_keep_trls_defaults_and_the_command_line_wins():
    weight, kl, names = algo_keys(["algo=sdpo", "model=smollm2_135m"])
    assert (weight, kl) == (1.0, 0.0)
    assert SPECIALISED not in names  # no file for sdpo_smollm2_135m: not recorded
    overrides = ["algo=sdpo", "algo.distillation_weight=1.0", "algo.kl_coef=0"]
    weight, kl, names = algo_keys(overrides)
    assert (weight, kl) == (1.0, 0.0)
    cfg, _ = compose(overrides)
    assert apply_specialised_defaults(cfg, overrides, names) == {}  # the user set both


def test_an_algorithm_without_a_specialisation_composes_as_before():
    cfg, names = compose(["algo=grpo"])
    assert SPECIALISED not in names
    assert cfg.algo.kl_coef == 0.2 and "distillation_weight" not in cfg.algo
    assert run_choices({"algo": "grpo", "algo_on_model": "grpo_tiny_llama", "hydra/launcher": "x"}) == {
        "algo": "grpo"
    }


@pytest.mark.parametrize("path", sorted((registry.CONF / SPECIALISED).glob("*.yaml")), ids=lambda p: p.stem)
def test_every_specialisation_names_an_algorithm_and_a_model_and_only_algo_keys(path):
    """A file whose name is not `<algo choice>_<model choice>` would never be read: a silent no-op."""
    pairs = [
        (a, m) for a in registry.choices("algo") for m in registry.choices("model") if f"{a}_{m}" == path.stem
    ]
    assert len(pairs) == 1, f"{path.name}: not <algo>_<model> of conf/algo and conf/model"
    assert path.read_text().startswith("# @package algo\n")
    algo, model = pairs[0]
    base, _ = compose(
        [f"algo={algo}", "model=smollm2_135m" if model != "smollm2_135m" else "model=tiny_llama"]
    )
    keys = OmegaConf.to_container(OmegaConf.load(path))
    assert set(keys) <= set(base.algo), f"{path.name}: keys the algorithm lacks"
