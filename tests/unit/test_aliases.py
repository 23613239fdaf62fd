"""The ratio clip is one config node, algo.clip (RatioClip's arguments), and the old flat keys (algo.clip=0.3,
clip_high, dual_clip, log_ratio_clamp) are aliases for one release: mapped, said once, refused beside the new
name, read back from an older run's record, and digested as before (align_lab/aliases.py)."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from align_lab import aliases
from align_lab.algorithms.parts import RatioClip
from align_lab.app import format_error, renamed_keys
from align_lab.config import ConfigError, build
from align_lab.registry import CONF, choices
from align_lab.run.summary import check_resume_config, config_digest
from tests.conftest import compose

FLAT = {"clip": 0.2, "clip_high": 0.28, "dual_clip": None, "log_ratio_clamp": 20.0}
FLAT |= {"rollout_correction": "tis", "correction_high": 3.0, "reject": [], "ppo_anchor": "old"}
NESTED = {"clip": {"low": 0.2, "high": 0.28, "dual": None, "log_ratio_clamp": 20.0}}
NESTED |= {"correction": {"mode": "tis", "high": 3.0, "reject": [], "ppo_anchor": "old"}}


@pytest.mark.parametrize(
    "old,new",
    [
        ("algo.clip=0.3", "algo.clip.low=0.3"),
        ("algo.clip_high=0.28", "algo.clip.high=0.28"),
        ("algo.dual_clip=3", "algo.clip.dual=3"),
        ("algo.log_ratio_clamp=null", "algo.clip.log_ratio_clamp=null"),
        ("algo.clip=0.1,0.2", "algo.clip.low=0.1,0.2"),  # a sweep (-m)
        ("++algo.clip_high=0.28", "++algo.clip.high=0.28"),
        ("algo.clip={low: 0.1}", "algo.clip={low: 0.1}"),  # the node itself
        ("algo.clip.high=0.28", "algo.clip.high=0.28"),
        ("model.clip_high=1", "model.clip_high=1"),  # another group's key of that name
        ("algo.rollout_correction=tis", "algo.correction.mode=tis"),
        ("algo.correction_high=3", "algo.correction.high=3"),
        ("algo.correction_ratio=current", "algo.correction.ratio=current"),
        ("algo.reject=[token_k3]", "algo.correction.reject=[token_k3]"),
        ("algo.max_rejected_steps=0", "algo.correction.max_rejected_steps=0"),
    ],
)
def test_an_old_flat_key_maps_to_its_nested_key(old, new):
    assert aliases.rename_override(old)[0] == new


def test_an_old_key_is_said_once_per_run(capsys, monkeypatch):
    monkeypatch.setattr(aliases, "_said", set())  # what the suite's other tests said before
    args = ["algo=dapo", "algo.clip_high=0.3", "seed=1"]
    assert renamed_keys(args) == ["algo=dapo", "algo.clip.high=0.3", "seed=1"]
    renamed_keys(args)  # a second look (a sweep's jobs) says nothing more
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [
        "align_lab: algo.clip_high=0.3 is now algo.clip.high (the old name works for one release)"
    ]


def test_the_old_and_the_new_name_of_one_key_are_refused_in_one_line():
    with pytest.raises(ConfigError) as e:
        renamed_keys(["algo.clip_high=0.28", "algo.clip.high=0.3"])
    assert str(e.value) == (
        "algo.clip_high=0.28 and algo.clip.high=0.3: both set algo.clip.high (the old name and the new); "
        "keep one, algo.clip.high=..."
    )


@pytest.mark.parametrize("algo", ["grpo", "dapo", "ppo", "reinforce_pp", "rloo", "gspo", "cispo", "opd"])
def test_the_nested_key_and_its_alias_build_the_same_ratio_clip(algo):
    nested = build(compose([f"algo={algo}", "algo.clip.high=0.3", "algo.clip.low=0.1"])[0].algo, "algo")
    flat = build(compose([f"algo={algo}", "algo.clip_high=0.3", "algo.clip=0.1"])[0].algo, "algo")
    assert nested.clip == flat.clip == RatioClip(0.1, 0.3, nested.clip.dual, nested.clip.log_ratio_clamp)


def test_the_nested_correction_and_its_alias_build_the_same_part():
    nested = [
        "algo=grpo",
        "algo.correction.mode=mis",
        "algo.correction.level=sequence",
        "algo.correction.high=3",
    ]
    flat = [
        "algo=grpo",
        "algo.rollout_correction=mis",
        "algo.correction_level=sequence",
        "algo.correction_high=3",
    ]
    built = build(compose(nested)[0].algo, "algo").correction
    assert built == build(compose(flat)[0].algo, "algo").correction
    assert (built.mode, built.level, built.high, built.low) == ("mis", "sequence", 3.0, None)


def names_clip(choice: str) -> bool:
    """The algo YAML, or a base it extends (`defaults: [grpo, _self_]`), has a clip node: read from the
    files, not composed (every test process collects this module; 38 compositions are seconds);
    test_algorithm_contract's test_every_algo_choice_is_listed_as_its_composition_says checks it."""
    data = yaml.safe_load((CONF / "algo" / f"{choice}.yaml").read_text()) or {}
    bases = [d for d in data.get("defaults", []) if isinstance(d, str) and d != "_self_" and d[0] != "/"]
    return "clip" in data or any(names_clip(base) for base in bases)


@pytest.mark.parametrize("algo", [a for a in choices("algo") if names_clip(a)])
def test_each_yaml_clip_node_is_its_class_default(algo):
    """A sweep file's algo.clip=0.3 replaces the node with a number, which admission nests as {low: 0.3}:
    the other fields then come from the class, so they must be the YAML's."""
    cfg = compose([f"algo={algo}"])[0]
    built = build(cfg.algo, "algo")
    assert type(built)().clip == built.clip == RatioClip(**cfg.algo.clip), algo


@pytest.mark.parametrize(
    "override,message",
    [
        ("algo.clip.dual=1", "algo.clip.dual=1.0: must be > 1 or null"),
        ("algo.clip.low=1.5", "algo.clip.low=1.5: must be in (0, 1)"),
        ("algo.clip.high=abc", "algo.clip.high=abc: must be a number"),
        ("algo.dual_clip=1", "algo.clip.dual=1.0: must be > 1 or null"),  # the alias names the new key
        (
            "algo.correction.mode=token_mask algo.correction.high=0.5",
            "algo.correction.high=0.5: must be > 1 or null with algo.correction.mode=token_mask (the bounds "
            "must hold a ratio of 1 with room for float noise, or on-policy tokens are rejected)",
        ),
        (
            "algo.correction.level=tokens",
            "algo.correction.level=tokens: must be one of ('token', 'sequence')",
        ),
    ],
)
def test_a_bad_nested_value_is_one_line_naming_the_nested_key(override, message):
    with pytest.raises(ConfigError) as e:
        build(compose(["algo=grpo", *override.split()])[0].algo, "algo")
    assert str(e.value) == message


def test_an_unknown_nested_key_names_the_node_and_its_fields():
    with pytest.raises(Exception) as e:
        compose(["algo=grpo", "algo.clip.hgh=0.3"])
    assert format_error(e.value) == "algo.clip.hgh: unknown key; did you mean algo.clip.high?"
    node = compose(["algo=grpo"])[0].algo
    node.clip = {"hgh": 0.3}
    with pytest.raises(
        ConfigError, match=r"^algo.clip.hgh: unknown key; allowed: low, high, dual, log_ratio_clamp$"
    ):
        build(node, "algo")


def test_an_old_key_a_sweeper_cannot_map_names_the_new_one():
    from align_lab.unknown_keys import unknown_key

    assert (
        unknown_key("algo.clip_high", ["clip"])
        == "algo.clip_high: is now algo.clip.high; write the new name here"
    )


def test_a_nested_config_digests_as_its_flat_record_did():
    """The digest a run recorded before the rename (summary.json, each checkpoint's identity): sha256 of the
    canonical JSON of its flat config, as run/summary.py computed it then."""
    flat = {"seed": 0, "algo": {"lr": 0.001, **FLAT}}
    before = hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert config_digest({"seed": 0, "algo": {"lr": 0.001, **NESTED}}) == before == config_digest(flat)
    other = {"seed": 0, "algo": {"lr": 0.001, **NESTED, "clip": {**NESTED["clip"], "high": 0.3}}}
    assert config_digest(other) != before


def test_an_older_run_folder_with_flat_keys_resumes_and_a_changed_value_names_the_nested_key(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.resolved.yaml").write_text(yaml.safe_dump({"seed": 0, "algo": {"lr": 0.001, **FLAT}}))
    check_resume_config(tmp_path, {"seed": 0, "algo": {"lr": 0.001, **NESTED}})  # the same run: resumes
    changed = {"seed": 0, "algo": {"lr": 0.001, **NESTED, "clip": {**NESTED["clip"], "high": 0.3}}}
    with pytest.raises(
        ConfigError, match=r"^algo.clip.high=0.3: the run in .* to resume has algo.clip.high=0.28;"
    ):
        check_resume_config(tmp_path, changed)


def test_an_older_checkpoints_flat_hyperparameters_match_the_nested_ones(tmp_path):
    from align_lab.algorithms.dapo import DAPO
    from align_lab.train.resume import hyperparameters, refuse_changed_hyperparameters

    algo = DAPO()
    saved = aliases.flat(hyperparameters(algo))  # as a checkpoint before the rename holds them
    refuse_changed_hyperparameters(algo, {"algo_state": {}, "algo_hyperparameters": saved}, tmp_path)
    with pytest.raises(
        ConfigError, match=r"^algo.clip.high=0.28: the checkpoint in .* with algo.clip.high=0.3;"
    ):
        state = {"algo_state": {}, "algo_hyperparameters": saved | {"clip_high": 0.3}}
        refuse_changed_hyperparameters(algo, state, tmp_path)


def test_a_read_back_record_nests_its_old_keys_and_renames_its_overrides(tmp_path):
    from align_lab.results.runs import load_run

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"algo": {"lr": 0.001, **FLAT}}))
    (tmp_path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["algo=dapo", "algo.clip_high=0.28"]))
    run = load_run(tmp_path)
    assert run.config["algo"] == {"lr": 0.001, **NESTED}
    assert run.overrides == ["algo=dapo", "algo.clip.high=0.28"]


def test_a_sweep_files_flat_algo_keys_are_nested_at_admission(capsys, monkeypatch):
    monkeypatch.setattr(aliases, "_said", set())
    from align_lab.run.admission import nested_algo

    cfg = compose(["algo=dapo"])[0]
    cfg.algo.clip = 0.3  # what a sweep file's `algo: {clip: 0.3}` (or hydra.sweeper.params algo.clip) leaves
    built = build(nested_algo(cfg).algo, "algo")
    assert built.clip == RatioClip(0.3, 0.28)
    assert "algo.clip=0.3 is now algo.clip.low" in capsys.readouterr().err


def test_a_tuned_search_space_takes_the_old_name():
    from align_lab.study.tune_spec import check_tune

    tune = check_tune(
        {"trials": 2, "space": {"grpo": {"algo.clip_high": "interval(0.2, 0.3)"}}}, ["grpo"], [0], "algo"
    )
    assert tune.space == {"grpo": {"algo.clip.high": "interval(0.2, 0.3)"}}


@pytest.mark.slow  # fresh interpreters or a whole W&B run: CI's tier (docs/testing.md)
def test_the_command_line_says_the_alias_once_then_checks_the_nested_key(tmp_path, forked_cli):
    from tests.conftest import ROOT

    args = ["-m", "algo=grpo", "algo.dual_clip=1", "seed=0,1"]  # a sweep: its jobs share the one line
    result = forked_cli([*args, f"cache_dir={tmp_path / 'c'}", f"hydra.sweep.dir={tmp_path / 's'}"], cwd=ROOT)
    lines = [line for line in result.stderr.splitlines() if line.startswith("align_lab")]
    assert (
        lines[0] == "align_lab: algo.dual_clip=1 is now algo.clip.dual (the old name works for one release)"
    )
    assert sum("is now algo.clip.dual" in line for line in result.stderr.splitlines()) == 1, result.stderr
    assert "algo.clip.dual=1.0: must be > 1 or null" in result.stderr, result.stderr
