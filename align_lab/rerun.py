"""The command that resumes a stopped run, read back from the `.hydra/hydra.yaml` Hydra wrote into its
folder: the same arguments, with the run's own folder named (a plain rerun makes a new timestamped one)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import yaml

DROPPED = ("hydra.mode=", "hydra.run.dir=", "hydra.sweep.dir=")  # Hydra adds the first; we name the folder


def shown_path(path: str | Path, cwd: Path) -> str:
    """`path` as the user would type it in `cwd`: relative below it, absolute elsewhere."""
    path = Path(path).absolute()
    return os.path.relpath(path, cwd) if path.is_relative_to(cwd) else str(path)


def python_command(cwd: Path) -> str:
    """How the user calls this interpreter: `python` where that is it (an activated venv), else its path."""
    found = shutil.which("python")
    if found and Path(found).absolute() == Path(sys.executable).absolute():
        return "python"
    return shown_path(sys.executable, cwd)


def hydra_record(run_dir: Path) -> dict | None:
    try:
        return yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def resume_command(run_dir: Path) -> str:
    """The exact command that resumes the run in `run_dir`; a sweep's job: its sweep's command with the
    same sweep folder (sweep_resume_command); a run started without Hydra (no `.hydra/hydra.yaml`): the
    rule."""
    hydra = hydra_record(run_dir)
    if hydra is None:
        return f"rerun the same command with {shlex.quote(f'hydra.run.dir={run_dir}')}"
    cwd = Path(hydra["runtime"]["cwd"])
    if hydra["mode"] == "MULTIRUN":
        sweep_dir = str(hydra["sweep"]["dir"])
        return sweep_resume_command(run_dir.parent if "${" in sweep_dir else cwd / sweep_dir, cwd)
    return command_of(hydra, [], f"hydra.run.dir={shown_path(run_dir, cwd)}")


def sweep_resume_command(sweep_dir: Path, cwd: Path | None = None) -> str:
    """The exact command that resumes the sweep (or sequential study) in `sweep_dir`: its own, read back
    from the multirun.yaml Hydra wrote there, with the folder named; without one, the rule (the folder
    as seen from `cwd`, the sweep's)."""
    try:
        hydra = yaml.safe_load((Path(sweep_dir) / "multirun.yaml").read_text())["hydra"]
        cwd = Path(hydra["runtime"]["cwd"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        where = shown_path(sweep_dir, cwd or Path.cwd())
        return f"rerun the sweep's command with {shlex.quote(f'hydra.sweep.dir={where}')}"
    return command_of(hydra, ["-m"], f"hydra.sweep.dir={shown_path(sweep_dir, cwd)}")


def command_of(hydra: dict, flags: list[str], folder: str) -> str:
    """`python -m align_lab` with the arguments Hydra recorded (`hydra`: a .hydra/hydra.yaml's or a
    multirun.yaml's `hydra` node), `flags` and the folder override last."""
    cwd = Path(hydra["runtime"]["cwd"])
    args = [python_command(cwd), "-m", "align_lab", *flags]
    for source in hydra["runtime"]["config_sources"]:
        if source["provider"] == "command-line":
            args += ["--config-dir", shown_path(source["path"], cwd)]
    if hydra["job"]["config_name"] != "config":
        args += ["--config-name", hydra["job"]["config_name"]]
    overrides = hydra["overrides"]
    args += [o for o in overrides["hydra"] if not o.startswith(DROPPED)]
    return shlex.join([*args, *overrides["task"], folder])
