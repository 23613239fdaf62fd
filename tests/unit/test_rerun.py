"""The command a stopped run prints to resume it, read back from the .hydra/hydra.yaml Hydra wrote."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import yaml

from align_lab.rerun import resume_command, sweep_resume_command

PYTHON = str(Path(sys.executable).absolute())


def hydra_yaml(run_dir: Path, cwd: Path, mode="RUN", task=(), hydra=(), config_name="config", extra=()):
    sources = [{"path": "hydra.conf", "schema": "pkg", "provider": "hydra"}, *extra]
    record = {
        "mode": mode,
        "sweep": {"dir": "multirun/${now:%Y-%m-%d}"},
        "overrides": {"hydra": ["hydra.mode=" + mode, *hydra], "task": list(task)},
        "job": {"config_name": config_name},
        "runtime": {"cwd": str(cwd), "config_sources": sources},
    }
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": record}))


def test_a_run_resumes_with_its_own_arguments_and_its_folder(tmp_path):
    run_dir = tmp_path / "outputs" / "2026-11-26" / "01-02-03_grpo_seed0"
    task = ["model=smollm2_135m", "train.steps=3", "study=it's mine"]
    hydra_yaml(run_dir, tmp_path, task=task, hydra=[f"hydra.run.dir={run_dir}", "hydra.job.chdir=false"])
    assert resume_command(run_dir) == (
        f"cd {tmp_path} && {PYTHON} -m align_lab hydra.job.chdir=false model=smollm2_135m train.steps=3 "
        f"'study=it'\"'\"'s mine' hydra.run.dir={run_dir}"
    )
    assert shlex.split(resume_command(run_dir))[-2] == "study=it's mine"  # quoted for the shell


def test_a_run_started_with_a_pythonpath_resumes_with_it(tmp_path):
    """Issue 73 seventh hunt: a run whose reward module lay on PYTHONPATH printed a resume command without
    it, which a fresh shell then refused (`cannot import rlib7`)."""
    import json

    run_dir = tmp_path / "run"
    hydra_yaml(run_dir, tmp_path, task=["reward.path=rlib7:score"])
    (run_dir / "summary.json").write_text(json.dumps({"status": "failed", "pythonpath": "/tmp/my lib"}))
    assert resume_command(run_dir) == (
        f"cd {tmp_path} && PYTHONPATH='/tmp/my lib' {PYTHON} -m align_lab reward.path=rlib7:score "
        f"hydra.run.dir={run_dir}"
    )


def test_a_saved_sweeps_run_names_its_config_dir_and_name(tmp_path):
    run_dir = tmp_path / "run"
    sweeps = {"path": str(tmp_path / "sweeps"), "schema": "file", "provider": "command-line"}
    hydra_yaml(run_dir, tmp_path, task=["algo=grpo"], config_name="real_arith", extra=[sweeps])
    assert resume_command(run_dir).split(" && ", 1)[1].split(" ", 1)[1] == (
        f"-m align_lab --config-dir {tmp_path / 'sweeps'} --config-name real_arith algo=grpo "
        f"hydra.run.dir={run_dir}"
    )


def test_a_sweeps_job_names_the_sweep_folder_and_a_run_outside_hydra_the_rule(tmp_path):
    job = tmp_path / "multirun" / "plan" / "0_grpo_seed0"
    hydra_yaml(job, tmp_path, mode="MULTIRUN", task=["algo=grpo", "seed=0"])
    assert (
        resume_command(job) == f"rerun the sweep's command with hydra.sweep.dir={tmp_path / 'multirun/plan'}"
    )
    bare = tmp_path / "bare"
    assert resume_command(bare) == f"rerun the same command with hydra.run.dir={bare}"


def test_the_interpreter_and_the_folders_are_absolute_whatever_the_shell_calls_python(tmp_path, monkeypatch):
    from align_lab.rerun import shell_command

    # it printed `python` where that was this interpreter (an activated venv) and `.venv/bin/python` below
    # the folder it started in: neither works once the venv is left or from another folder (issue 73)
    monkeypatch.setattr("shutil.which", lambda name: sys.executable)  # an activated venv
    monkeypatch.chdir(tmp_path)
    venv = tmp_path / ".venv" / "bin" / "python"  # a symlink in a real venv: kept, not resolved
    monkeypatch.setattr(sys, "executable", ".venv/bin/python")
    assert shell_command("align_lab.compare", Path("my runs"), "--wandb") == (
        f"{venv} -m align_lab.compare '{tmp_path / 'my runs'}' --wandb"
    )
    assert (
        shell_command("align_lab", "a=1", cwd=Path("x")) == f"cd {tmp_path / 'x'} && {venv} -m align_lab a=1"
    )


def test_a_sweeps_job_resumes_with_the_sweeps_own_command_from_its_multirun_yaml(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the sweep's own process's: none here
    sweep_dir = tmp_path / "multirun" / "plan"
    job = sweep_dir / "0_grpo_seed0"
    hydra_yaml(job, tmp_path, mode="MULTIRUN", task=["algo=grpo", "seed=0"])
    # Hydra's multirun.yaml holds the sweep as typed: its overrides, not one job's
    hydra_yaml(
        sweep_dir, tmp_path, mode="MULTIRUN", task=["algo=grpo,rloo", "seed=0,1"], hydra=["hydra/launcher=x"]
    )
    (sweep_dir / ".hydra" / "hydra.yaml").rename(sweep_dir / "multirun.yaml")
    expected = (
        f"cd {tmp_path} && {PYTHON} -m align_lab -m hydra/launcher=x algo=grpo,rloo seed=0,1 "
        f"hydra.sweep.dir={sweep_dir}"
    )
    assert resume_command(job) == expected
    assert sweep_resume_command(sweep_dir) == expected


def test_a_sweeps_resume_and_a_runs_compare_line_carry_the_pythonpath_they_started_with(
    tmp_path, monkeypatch
):
    """Ninth hunt: the sweep's resume line (a single run's has it) and the compare line dropped the
    PYTHONPATH the command started with: followed in a fresh shell, another align_lab ran."""
    from align_lab.run.summary import compare_command

    monkeypatch.setenv("PYTHONPATH", "/my/checkout")
    sweep_dir = tmp_path / "sweep"
    hydra_yaml(sweep_dir, tmp_path, mode="MULTIRUN", task=["seed=0,1"])
    (sweep_dir / ".hydra" / "hydra.yaml").rename(sweep_dir / "multirun.yaml")
    assert sweep_resume_command(sweep_dir).startswith(f"cd {tmp_path} && PYTHONPATH=/my/checkout {PYTHON} ")
    assert sweep_resume_command(sweep_dir, {}).startswith(f"cd {tmp_path} && {PYTHON} ")  # a run's: none
    assert compare_command(tmp_path, "/my/checkout").startswith("PYTHONPATH=/my/checkout /")
    assert compare_command(tmp_path).startswith("/")


def test_a_relative_pythonpath_is_recorded_absolute_for_the_commands_a_run_prints(tmp_path, monkeypatch):
    """Fifteenth hunt: `PYTHONPATH=code15 python -m align_lab ...` printed a compare line with the relative
    PYTHONPATH and no cd: run from another folder it imported another align_lab, with no word."""
    from align_lab.rerun import absolute_paths

    monkeypatch.chdir(tmp_path)
    assert absolute_paths(f"code15{os.pathsep}/abs/lib") == f"{tmp_path / 'code15'}{os.pathsep}/abs/lib"


def test_study_resumes_command_sets_the_variables_its_runs_code_read(tmp_path, monkeypatch):
    """Thirty-eighth hunt, case 18: `study resume`'s command for a sweep (or a run folder) whose reward read
    WTABLE38 left it out, where the run's own resume lines write it in: followed in a new shell, `importing
    rpqenv raised KeyError: 'WTABLE38'`. summary.json lists the variables read (env_read)."""
    import json

    monkeypatch.delenv("PYTHONPATH", raising=False)
    sweep_dir = tmp_path / "sweep"
    job = sweep_dir / "0"
    hydra_yaml(job, tmp_path, mode="MULTIRUN", task=["seed=0"])
    (job / "summary.json").write_text(json.dumps({"status": "completed", "env_read": ["WTABLE38"]}))
    hydra_yaml(sweep_dir, tmp_path, mode="MULTIRUN", task=["seed=0,1"])
    (sweep_dir / ".hydra" / "hydra.yaml").rename(sweep_dir / "multirun.yaml")
    needed = 'WTABLE38="${WTABLE38?set it as when the run started: your code reads it}"'
    assert (
        sweep_resume_command(sweep_dir)
        == f"cd {tmp_path} && {needed} {PYTHON} -m align_lab -m seed=0,1 hydra.sweep.dir={sweep_dir}"
    )
    assert needed in resume_command(job)


def test_a_runs_summary_records_the_variables_its_code_read(tmp_path, monkeypatch):
    import json

    from align_lab.run.run_folder import RunFolder

    monkeypatch.setattr("align_lab.user_reads.set_env_read", lambda: ["WTABLE38"])
    RunFolder(tmp_path).write_summary({"status": "running"})
    assert json.loads((tmp_path / "summary.json").read_text())["env_read"] == ["WTABLE38"]


def test_a_folder_hydra_reads_only_in_its_quotes_is_quoted_for_it_in_the_resume_command(tmp_path):
    """Fortieth hunt, case 30: a run in `/tmp/ü dir/rün $5` stopped by SIGTERM printed a resume whose
    `hydra.run.dir=...` Hydra's lexer refused (a non-ASCII character), run as printed; a sweep's the same."""
    from align_lab.overrides import _value

    for name in ("ü dir/rün $5", "a=b", "it's", "plain folder"):
        run_dir = tmp_path / name
        hydra_yaml(run_dir, tmp_path, task=["train.steps=3"])
        [folder] = [w for w in shlex.split(resume_command(run_dir)) if w.startswith("hydra.run.dir=")]
        assert _value(folder) == str(run_dir), folder
        assert (folder == f"hydra.run.dir={run_dir}") == (name == "plain folder")  # quoted only where needed
    sweep = tmp_path / "swéep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(
        yaml.safe_dump(
            {
                "hydra": {
                    "overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": ["seed=0,1"]},
                    "job": {"config_name": "config"},
                    "runtime": {"cwd": str(tmp_path), "config_sources": []},
                }
            }
        )
    )
    [folder] = [w for w in shlex.split(sweep_resume_command(sweep, {})) if w.startswith("hydra.sweep.dir=")]
    assert _value(folder) == str(sweep), folder
