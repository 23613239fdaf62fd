"""align_lab/overrides.py: the command line's overrides as Hydra's grammar reads them."""

from __future__ import annotations

import shlex

import pytest

from align_lab.overrides import _value, given_twice, unreadable, written
from tests.conftest import ROOT

VALUES = ["/tmp/a b/c", "/tmp/ü dir/rün $5", "/tmp/x=y", "a,b", "it's", "back\\slash", "end\\", "q\\'s", "#1"]


@pytest.mark.parametrize("value", VALUES)
def test_a_value_is_written_so_that_hydra_reads_it_back_exactly(value):
    override = written("task.path", value)
    assert _value(override) == value, override
    plain = ("/tmp/a b/c", "back\\slash", "end\\")  # plain where it reads back so
    assert (override == f"task.path={value}") == (value in plain)


def test_a_value_hydra_reads_only_quoted_is_one_line_naming_it_and_the_quoting():
    """Fortieth hunt, cases 23 and 31: Hydra's `mismatched input '=' expecting <EOF>` and
    `LexerNoViableAltException: task.path=qü_nospace.jsonl ^`, naming neither the cause nor the fix."""
    assert unreadable("task.path=qü_nospace.jsonl") == (
        "task.path=qü_nospace.jsonl: Hydra reads 'ü' in a value only inside its quotes; quote the value for "
        "Hydra within the shell's: \"task.path='qü_nospace.jsonl'\""
    )
    line = unreadable("hydra.run.dir=/tmp/runs/lr=1e-3 $x")
    assert line.startswith("hydra.run.dir=/tmp/runs/lr=1e-3 $x: Hydra reads '=' in a value only inside its")
    assert shlex.split(line.rsplit(": ", 1)[1]) == ["hydra.run.dir='/tmp/runs/lr=1e-3 $x'"]  # no $ expanded
    assert unreadable("task.path=~/data.jsonl").startswith("task.path=~/data.jsonl: an override's value")
    for fine in ("algo=ppo,rloo", "seed=range(3)", "plan={start: 4}", "+x=1", "-m", "key=", "a=${b}"):
        assert unreadable(fine) is None, fine


def test_a_groups_choice_given_twice_is_said_with_what_hydra_takes():
    """Fortieth hunt, case 24: `algo=ppo algo=rloo` ran rloo, no line; a plain key set again (a script's
    override of its base command) is as argparse has it, the last."""
    groups = ("algo", "model")
    assert given_twice(["train.steps=3", "seed=1", "algo=ppo", "+algo=rloo", "-m"], groups) == (
        "align_lab: warning: given more than once: algo=ppo, rloo: Hydra takes the last of each"
    )
    assert given_twice(["train.steps=3", "train.steps=5", "algo=ppo", "algo=ppo"], groups) is None
    assert given_twice(["-m", "train.steps=3", "train.steps=2,3"], groups) is None  # a base overridden
    assert given_twice(["-m", "seed=0,1", "seed=1,2"], groups) == (  # forty-first hunt, case 39
        "align_lab: warning: given more than once: seed=0,1, 1,2: Hydra takes the last of each"
    )


def test_a_sweeps_list_that_names_a_value_twice_is_one_line():
    """Fortieth hunt, case 41: `seed=0,1,1` trained seed 1 twice (the same numbers), which compare read as
    a third seed: n=3, seed 1's value weighed double."""
    from align_lab.overrides import repeated

    assert repeated("seed=0,1,1") == (
        "seed=0,1,1: 1 given twice, whose runs would be one config trained twice (the same numbers, read as "
        "two runs); give each once: seed=0,1"
    )
    for fine in ("seed=0,1,2", "seed=range(3)", "algo=ppo", "seed=1", "-m", "a=b,c"):
        assert repeated(fine) is None, fine
    # forty-first hunt, cases 20 and 22: one value in other spellings; a range in a list (Hydra's "tags:
    # Unexpected type annotation: Set[str]")
    for twice in ("seed=1,01", "seed=1,1.0", "seed=1,'1'"):
        assert repeated(twice).startswith(f"{twice}: 1 given twice, "), twice
    assert repeated("seed=range(0,3),1") == (
        "seed=range(0,3),1: a range cannot stand in a list of values; write every value out (seed=0,1,2,...)"
    )


def test_a_sweep_folder_typed_for_one_run_is_said_to_be_unread():
    """Fortieth hunt, case 58: `hydra.sweep.dir=X` without -m: the run went to ./outputs/..., X never made."""
    from align_lab.overrides import sweep_dir_without_a_sweep

    assert sweep_dir_without_a_sweep(["train.steps=3", "hydra.sweep.dir=/tmp/s"]) == (
        "align_lab: note: hydra.sweep.dir=/tmp/s is a sweep's folder and this command (no -m) runs one run, "
        "which goes in hydra.run.dir (for this folder: hydra.run.dir=/tmp/s)"
    )
    assert sweep_dir_without_a_sweep(["-m", "seed=0,1", "hydra.sweep.dir=/tmp/s"]) is None
    assert sweep_dir_without_a_sweep(["train.steps=3"]) is None


def test_a_config_file_that_makes_the_command_a_sweep_gets_no_one_run_notes(tmp_path):
    """Fifth hunt of 2026-12-04: `--config-dir sweeps --config-name X hydra.sweep.dir=S`, where
    X sets hydra.mode: MULTIRUN (every sweeps/*.yaml: "no -m needed"), was told it runs one run, in
    hydra.run.dir; the sweep ran in S. So was hardware=slurm_* told it runs here."""
    from align_lab.__main__ import slurm_without_a_sweep
    from align_lab.overrides import multirun_asked, sweep_dir_without_a_sweep

    (tmp_path / "tuned.yaml").write_text("defaults:\n  - config\nhydra:\n  mode: MULTIRUN\n")
    (tmp_path / "single.yaml").write_text("defaults:\n  - config\n")
    for args in (
        ["--config-dir", str(tmp_path), "--config-name", "tuned"],
        [f"--config-dir={tmp_path}", "--config-name=tuned.yaml"],
        ["-cd", str(tmp_path), "-cn", "tuned"],
        ["--config-dir", str(ROOT / "sweeps"), "--config-name", "zoo_2025"],  # the docs' own
        ["hydra.mode=MULTIRUN"],
    ):
        assert multirun_asked(args), args
        assert sweep_dir_without_a_sweep([*args, "hydra.sweep.dir=/tmp/s"]) is None
        assert slurm_without_a_sweep([*args, "hardware=slurm_cpu"]) is None
    single = ["--config-dir", str(tmp_path), "--config-name", "single", "hydra.sweep.dir=/tmp/s"]
    assert not multirun_asked(single) and sweep_dir_without_a_sweep(single) is not None
    assert not multirun_asked(["--config-name", "nope"])  # Hydra says that one


def test_an_empty_folder_or_a_comma_in_one_is_one_line():
    """Forty-first hunt, cases 34 and 44: `hydra.run.dir=$OUT` with OUT unset wrote the run into the working
    folder; a comma in a folder got Hydra's "Ambiguous value", whose advice (a list, or --multirun) led to
    "Sweeping over Hydra's configuration is not supported". A comma list of task.path files is a sweep's."""
    said = "hydra.run.dir=: an empty folder (a shell variable not set?); name the folder (. for this one)"
    assert unreadable("hydra.run.dir=") == said
    assert unreadable("hydra.sweep.dir=/tmp/a,b") == (
        "hydra.sweep.dir=/tmp/a,b: Hydra reads ',' in a value only inside its quotes; quote the value for "
        "Hydra within the shell's: \"hydra.sweep.dir='/tmp/a,b'\""
    )
    assert unreadable("task.path=a.jsonl,b.jsonl") is None


def test_a_number_written_with_a_leading_zero_is_one_line_before_hydra_records_it_as_text():
    """Forty-first hunt, cases 46-47: `seed=01` (Hydra's text '01', the typed key's 1) completed a run whose
    config recorded '01'; asked again as `seed=1`, the same run was refused as "another config", and
    `train.steps=03` then `3` as "completed at train.steps=03"."""
    from align_lab.overrides import leading_zero

    assert leading_zero("seed=01") == (
        "seed=01: Hydra reads 01 (a leading zero) as the text '01', which the run's config would record "
        "(another config than seed=1); write seed=1, or quote it for Hydra where a text is meant"
    )
    assert leading_zero("train.steps=03").endswith(
        "write train.steps=3, or quote it for Hydra where a text is meant"
    )
    assert "write seed=1,2," in leading_zero("seed=01,2")
    for fine in ("seed=1", "seed='01'", "seed=0", "hydra.run.dir=01", "task.path=07.jsonl", "algo.lr=0.5"):
        assert leading_zero(fine) is None, fine


def test_a_quoted_value_whose_closing_quote_a_backslash_escapes_is_one_line_that_drops_the_quotes():
    """Forty-first hunt, case 35: `task.path='/tmp/plain.jsonl\'` was said to need Hydra's quotes (it had
    them), and the suggested form, run as printed, read the quotes as part of the file's name."""
    from align_lab.overrides import _value, unreadable

    line = unreadable("task.path='/tmp/plain.jsonl\\'")
    assert line == (
        "task.path='/tmp/plain.jsonl\\': the backslash before its closing quote escapes that quote (in "
        "Hydra's quotes a backslash that ends the value is written twice); write "
        "'task.path=/tmp/plain.jsonl\\'"
    )
    assert _value(line.rsplit("write ", 1)[1].strip("'")) == "/tmp/plain.jsonl\\"
    assert unreadable("task.path='/tmp/plain.jsonl\\\\'") is None  # written twice: read as meant


def test_an_internal_group_is_no_choice_and_help_lists_none():
    """Forty-second hunt, case 30: --help listed `algo_on_model` and `algo_shared` as groups, and
    `algo=ppo algo_on_model=sdpo_tiny_llama` was refused naming algo.distillation_weight, never typed."""
    from align_lab.overrides import internal_group, without_internal_groups

    assert internal_group("algo_on_model=sdpo_tiny_llama") == (
        "algo_on_model=sdpo_tiny_llama: not a choice of yours: chosen by algo and model "
        "(conf/algo_on_model/<algo>_<model>.yaml); set algo=, model= or their keys instead"
    )
    assert internal_group("+algo_shared=rollout_correction").startswith(
        "+algo_shared=rollout_correction: not a"
    )
    assert internal_group("algo=ppo") is None and internal_group("algo.correction.mode=tis") is None
    text = "algo: ppo, rloo\nalgo_on_model: sdpo_tiny_llama\nalgo_shared: rollout_correction\nenv: x\n"
    assert without_internal_groups(text) == "algo: ppo, rloo\nenv: x\n"


def test_a_key_swept_twice_by_a_glob_or_choice_is_said():
    """Forty-second hunt, case 32: `-m 'seed=glob(*)' seed=1,2` took the last with no line."""
    from align_lab.overrides import given_twice

    said = "align_lab: warning: given more than once: seed=glob(*), 1,2: Hydra takes the last of each"
    assert given_twice(["-m", "seed=glob(*)", "seed=1,2"], ("algo",)) == said
    assert given_twice(["-m", "seed=choice(0,1)", "seed=range(2,4)"], ("algo",)) is not None
    assert given_twice(["train.steps=3", "train.steps=2,3"], ("algo",)) is None  # a script's override
