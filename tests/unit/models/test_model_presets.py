"""A model preset's optimiser scale (model.algo_defaults) reaches every algorithm unless the user sets
the key, and the run records where each value came from; and the verifier-labelled preference pairs."""

from __future__ import annotations

import random

import pytest
from omegaconf import OmegaConf

from align_lab.config import ConfigError
from align_lab.run.admission import spec_from_config
from align_lab.run.defaults import apply_model_defaults, override_keys
from align_lab.tasks.base import verified_pairs
from tests.conftest import compose


def _cfg(algo: dict, preset: dict):
    return OmegaConf.create({"algo": algo, "model": {"algo_defaults": preset}})


def test_override_keys_reads_every_override_form():
    keys = override_keys(["algo.lr=1e-5", "+x.y=1", "++z=2", "~w", "algo=ppo"])
    assert keys == {"algo.lr", "x.y", "z", "algo"}


def test_a_preset_fills_the_keys_an_algorithm_has_and_the_user_did_not_set():
    cfg = _cfg({"lr": 1e-3, "kl_coef": 0.2, "clip": 0.2}, {"lr": 1e-5, "critic_lr": 1e-5, "kl_coef": 0.05})
    applied = apply_model_defaults(cfg, ["algo=grpo", "algo.kl_coef=0.3"], "smollm2_135m")
    assert applied == {"algo.lr": "model=smollm2_135m"}  # no critic_lr on GRPO; kl_coef set by the user
    assert cfg.algo.lr == 1e-5 and cfg.algo.kl_coef == 0.2 and "critic_lr" not in cfg.algo


def test_a_preset_scales_a_term_the_algorithm_has_on_and_leaves_one_it_turns_off():
    # DAPO, CISPO and OPD set kl_coef 0 (their papers: no KL term); 0.05 would add one on SmolLM2
    cfg = _cfg({"lr": 1e-3, "kl_coef": 0.0}, {"lr": 1e-5, "kl_coef": 0.05})
    assert apply_model_defaults(cfg, [], "smollm2_135m") == {"algo.lr": "model=smollm2_135m"}
    assert cfg.algo.lr == 1e-5 and cfg.algo.kl_coef == 0.0
    for algo in ("dapo", "cispo", "opd"):
        cfg, _ = compose([f"algo={algo}", "model=smollm2_135m", "task=arith_word", "reward=verifier"])
        assert cfg.algo.kl_coef == 0.0 and cfg.algo.lr == 1e-5, algo


def test_no_preset_changes_nothing():
    cfg = OmegaConf.create({"algo": {"lr": 1e-3}, "model": {"name": "tiny"}})
    assert apply_model_defaults(cfg, [], "tiny_llama") == {} and cfg.algo.lr == 1e-3


@pytest.mark.parametrize("algo", ["grpo", "rloo", "reinforce_pp", "ppo", "ppo_max", "dpo"])
def test_smollm2_preset_reaches_every_algorithm(algo):
    cfg, names = compose([f"algo={algo}", "model=smollm2_135m", "task=arith_word", "reward=verifier"])
    assert cfg.algo.lr == 1e-5
    if "kl_coef" in cfg.algo:
        assert cfg.algo.kl_coef == 0.05
    if "critic_lr" in cfg.algo:
        assert cfg.algo.critic_lr == 1e-5
    # the user's key wins, and the run record names the preset's
    cfg, names = compose([f"algo={algo}", "model=smollm2_135m", "task=arith_word", "algo.lr=3e-6"])
    assert cfg.algo.lr == 3e-6


def test_the_run_records_where_preset_values_came_from(hf_assets):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from tests.conftest import ROOT

    overrides = ["algo=ppo", "model=smollm2_135m", "task=arith_word", "reward=verifier", "algo.lr=2e-6"]
    overrides.append(f"model.gguf_file={hf_assets.gguf}")  # stands in for the package (setup.sh --smollm2)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
    names = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    with open_dict(cfg):
        del cfg["hydra"]
    spec = spec_from_config(cfg, names, overrides)
    preset = "model=smollm2_135m"
    assert spec.defaults_from == {"algo.critic_lr": preset, "algo.kl_coef": preset}
    assert spec.algo.lr == 2e-6 and spec.algo.critic_lr == 1e-5 and spec.algo.kl_coef == 0.05
    assert spec.config["algo"]["critic_lr"] == 1e-5  # config.resolved.yaml holds what the run used


def test_a_bad_preset_key_is_one_line():
    with pytest.raises(ConfigError, match=r"model.algo_defaults.lrr: unknown key; allowed: lr, critic_lr"):
        cfg, names = compose(["model=smollm2_135m", "task=arith_word", "+model.algo_defaults.lrr=1"])
        spec_from_config(cfg, names)


def test_verified_pairs_put_a_right_answer_over_a_wrong_one():
    rng = random.Random(0)
    pairs = verified_pairs("What is 2 plus 3?", ["5", "6", "5.", "7"], [1.0, 0.0, 1.0, 0.0], rng)
    assert len(pairs) == 1
    (p,) = pairs
    assert p.chosen in ("5", "5.") and p.rejected in ("6", "7") and (p.gold_chosen, p.gold_rejected) == (1, 0)
    assert verified_pairs("q", ["5", "5"], [1.0, 1.0], rng) == []  # no contrast, no pair
    assert verified_pairs("q", ["1", "2"], [0.0, 0.0], rng) == []


def test_toy_tasks_label_two_samples_with_their_annotator():
    from align_lab.tasks.toy_prefs import ToyPrefs

    task = ToyPrefs()
    rng_a, rng_b = random.Random(3), random.Random(3)
    (pair,) = task.label_samples("p", ["a", "b"], [0.9, 0.1], rng_a)
    a_wins = task.annotate(0.9, 0.1, rng_b)  # the same draws as the stage made before label_samples
    assert (pair.chosen, pair.rejected) == (("a", "b") if a_wins else ("b", "a"))


def test_a_gguf_files_digest_is_read_once_per_process_and_again_once_the_file_changes(tmp_path):
    """Admission, the run and each model spec naming SmolLM2's 100 MB file hashed it (0.13 s each)."""
    import hashlib
    import os
    import time

    from align_lab.models import gguf

    path = tmp_path / "m.gguf"
    path.write_bytes(b"a" * 1000)
    first = gguf.sha256(path)
    hits = gguf._sha256.cache_info().hits
    assert gguf.sha256(path) == first == hashlib.sha256(b"a" * 1000).hexdigest()
    assert gguf._sha256.cache_info().hits == hits + 1  # not read again
    stat = path.stat()
    time.sleep(0.05)  # past the file system's clock tick (ctime is coarse: a few ms)
    path.write_bytes(b"b" * 1000)  # the same size, its times set back: its ctime still moves
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert gguf.sha256(path) == hashlib.sha256(b"b" * 1000).hexdigest()
