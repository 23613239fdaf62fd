"""The commands align_lab prints for the user to type (shell_command: from any folder, the venv active or
not), and the one that resumes a stopped run, read back from the `.hydra/hydra.yaml` Hydra wrote into its
folder: the same arguments, with the run's own folder named (a plain rerun makes a new timestamped one)."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import yaml

from align_lab.overrides import written

PYTHONPATH = "pythonpath"  # summary.json: the PYTHONPATH a run started with (its resume command sets it)
DROPPED = ("hydra.mode=", "hydra.run.dir=", "hydra.sweep.dir=")  # Hydra adds the first; we name the folder


def absolute_paths(value: str) -> str:
    """A PYTHONPATH with each folder absolute: the run's resume and compare commands print it, and compare's
    runs from any folder (fifteenth hunt: a relative one imported another checkout's align_lab there)."""
    return os.pathsep.join(os.path.abspath(part) for part in value.split(os.pathsep))


def shell_command(module: str, *args: str | Path, cwd: Path | None = None, env: dict | None = None) -> str:
    """`python -m <module> <args>` as the shell must read it from any folder, the venv active or not: this
    interpreter's absolute path (a bare `python` is another one once the venv is left; a relative path,
    nothing from another folder; not symlink-resolved, which would leave the venv), each Path argument
    absolute, all quoted; with `cwd` (a command replaying arguments typed there, whose relative paths,
    `task.path=data.jsonl` or `reward.path=mymod:fn`, are that folder's) `cd <cwd> && ` first; `env`, the
    variables the command needs set (a run's PYTHONPATH, where its reward module lies), before it (set_as)."""
    words = [str(Path(sys.executable).absolute()), "-m", module]
    line = " ".join(map(quote, [*words, *(str(a.absolute()) if isinstance(a, Path) else a for a in args)]))
    line = " ".join([*(set_as(k, v) for k, v in (env or {}).items()), line])
    return f"cd {quote(str(Path(cwd).absolute()))} && {line}" if cwd is not None else line


def quote(word: str) -> str:
    """shlex.quote; a word the terminal's streams cannot write (PYTHONIOENCODING=ascii: a folder named
    `ünï`) as bash's $'...' of its bytes, which reads back: the streams' escapes (`\\xfcn\\xef`) named a
    folder that does not exist (hunt of 2026-12-04, c26)."""
    return shlex.quote(word) if writable(word) else bash_bytes(word)


def as_printed(word: str) -> str:
    """A path on a line of its own (`run folder: ...`) as it is, or as quote() says it where the streams
    cannot write it (the same hunt: the streams' escapes there too)."""
    return word if writable(word) else bash_bytes(word)


def writable(word: str) -> bool:
    try:
        for stream in (sys.stdout, sys.stderr):
            word.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def bash_bytes(word: str) -> str:
    said = (chr(b) if 32 <= b < 127 and b not in b"'\\" else f"\\x{b:02x}" for b in os.fsencode(word))
    return f"$'{''.join(said)}'"


def set_as(name: str, value: str | None) -> str:
    """`NAME=value` before a command; None: the variable as the shell has it, which must be set: a variable
    the user's code read, whose value a resume checks but the run never prints (it may be a secret): one
    set inline as the run started (`RSCALE=2 python -m align_lab ...`) was missing from the command its
    stop printed, refused in a new shell (thirty-third hunt, case 50); bash now says which to set."""
    if value is None:
        return f'{name}="${{{name}?set it as when the run started: your code reads it}}"'
    return f"{name}={quote(value)}"


PROJECT = Path(__file__).resolve().parents[1]  # the checkout: scripts/, docs/, conf/


def project_script(path: str, *args: str) -> str:
    """`bash <checkout>/<path> <args>` as a hint prints it: from any folder (a bare relative
    `bash scripts/...` works only in the checkout); the relative form where the package is not run from
    its checkout (a wheel install), said to be the checkout's."""
    if not (PROJECT / path).is_file():
        return shlex.join(["bash", path, *args]) + " (in the align_lab checkout)"
    return shlex.join(["bash", str(PROJECT / path), *args])


def hydra_record(run_dir: Path) -> dict | None:
    try:
        return yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def resume_command(run_dir: Path, read: tuple[str, ...] = ()) -> str:
    """The exact command that resumes the run in `run_dir`; a sweep's job: its sweep's command with the
    same sweep folder (sweep_resume_command); a run started without Hydra (no `.hydra/hydra.yaml`): the
    rule. `read`: the variables the user's code read, which must be set as they were (set_as)."""
    hydra = hydra_record(run_dir)
    if hydra is None:
        return f"rerun the same command with {quote(f'hydra.run.dir={Path(run_dir).absolute()}')}"
    cwd = Path(hydra["runtime"]["cwd"])
    env = {name: None for name in read} | run_env(run_dir)
    if hydra["mode"] == "MULTIRUN":
        sweep_dir = str(hydra["sweep"]["dir"])
        return sweep_resume_command(run_dir.parent if "${" in sweep_dir else cwd / sweep_dir, env)
    return command_of(hydra, [], written("hydra.run.dir", str(Path(run_dir).absolute())), env)


def run_env(run_dir: Path) -> dict:
    """The variables the run's command was started with that its resume needs too: PYTHONPATH (where the
    user's reward or verifier module lies: seventh hunt), as summary.json records it."""
    import json

    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(summary, dict):
        return {}
    path, read = summary.get(PYTHONPATH), summary.get("env_read")  # run/run_folder.py ENV_READ
    env = {name: None for name in read if isinstance(name, str)} if isinstance(read, list) else {}
    return env | ({"PYTHONPATH": path} if isinstance(path, str) and path else {})


def sweep_resume_command(sweep_dir: Path, env: dict | None = None) -> str:
    """The exact command that resumes the sweep (or sequential study) in `sweep_dir`: its own, read back
    from the multirun.yaml Hydra wrote there, with the folder named; without one, the rule. `env`: the
    variables it needs set (a run's run_env); None: this process's PYTHONPATH (the sweep's own, printing
    it: ninth hunt, the line dropped it)."""
    if env is None:  # its runs' variables (thirty-eighth hunt, case 18), and this process's PYTHONPATH
        path = os.environ.get("PYTHONPATH")
        env = {"PYTHONPATH": path} if path else {}
        for summary in sorted(Path(sweep_dir).glob("*/summary.json")):
            env = run_env(summary.parent) | env
    try:  # a record without the keys read: the rule
        hydra = yaml.safe_load((Path(sweep_dir) / "multirun.yaml").read_text())["hydra"]
        return command_of(hydra, ["-m"], written("hydra.sweep.dir", str(Path(sweep_dir).absolute())), env)
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        where = Path(sweep_dir).absolute()
        return f"rerun the sweep's command with {quote(f'hydra.sweep.dir={where}')}"


def where_the_sweep_is(text: str, sweep_dir: Path) -> str:
    """A run's line (its resume command) as it reads once its sweep folder was moved: the command's
    `hydra.sweep.dir=<where it was made>` names `sweep_dir`, where the sweep is now (twenty-fourth hunt,
    case 12: `study status` and compare gave the old one, which starts a new sweep from step 0 there)."""
    now = Path(sweep_dir).absolute()

    def here(match: re.Match) -> str:
        was = match.group(1) or match.group(2)  # shell-quoted (a path with a space), or plain
        same = was == str(now) or Path(was).exists() and Path(was).resolve() == now.resolve()
        return match.group(0) if same else shlex.quote(f"hydra.sweep.dir={now}")

    return re.sub(r"'hydra\.sweep\.dir=([^']+)'|hydra\.sweep\.dir=(\S+)", here, text)


def sweep_cwd(sweep_dir: Path) -> Path | None:
    """The folder the sweep in `sweep_dir` was typed in (its multirun.yaml), None without that record."""
    try:
        return Path(
            yaml.safe_load((Path(sweep_dir) / "multirun.yaml").read_text())["hydra"]["runtime"]["cwd"]
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def command_of(hydra: dict, flags: list[str], folder: str, env: dict | None = None) -> str:
    """`python -m align_lab` with the arguments Hydra recorded (`hydra`: a .hydra/hydra.yaml's or a
    multirun.yaml's `hydra` node), `flags` and the folder override last, run in the folder they were typed
    in (shell_command)."""
    cwd = Path(hydra["runtime"]["cwd"])
    args = [*flags]
    for source in hydra["runtime"]["config_sources"]:
        if source["provider"] == "command-line":
            args += ["--config-dir", cwd / source["path"]]
    if hydra["job"]["config_name"] != "config":
        args += ["--config-name", hydra["job"]["config_name"]]
    overrides = hydra["overrides"]
    args += [o for o in overrides["hydra"] if not o.startswith(DROPPED)]
    return shell_command("align_lab", *args, *overrides["task"], folder, cwd=cwd, env=env)
