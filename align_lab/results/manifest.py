"""A study's manifest, `<sweep folder>/study.json`: its one name and its one writer. Written by the
launcher at submission (hydra_plugins/align_lab_launcher/launcher.py) and by `python -m align_lab.study
resume`; read by `study status|resume`, the plan loop (waves.py) and compare (results/runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

from align_lab.file_kinds import special

MANIFEST = "study.json"


def write_manifest(sweep_dir: Path, manifest: dict) -> None:
    """study.json holds either its old content or `manifest`, never a part (a kill, a full disk)."""
    tmp = Path(sweep_dir) / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(Path(sweep_dir) / MANIFEST)


RUN_KEYS = ("num", "overrides", "run_dir")  # what every reader of an entry reads


def load_manifest(study_dir: Path) -> dict:
    """The folder's study.json; FileNotFoundError (one line) when it has none, ValueError (one line
    naming it) when it is not one as written (torn, or another JSON): its readers' KeyError or
    TypeError tracebacks otherwise."""
    path = Path(study_dir) / MANIFEST
    if not Path(study_dir).is_dir():  # a typo: not "no manifest here" (thirty-seventh hunt, case 35)
        kind = "a file, not a folder" if Path(study_dir).exists() else "no such folder"
        raise FileNotFoundError(f"{study_dir}: {kind}; give the sweep's folder (hydra.sweep.dir)")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no study manifest here (expected a sweep folder)")
    if kind := "a folder" if path.is_dir() else special(path):  # was "cannot write", or a hang (hunt 76)
        raise ValueError(f"{path}: {kind}, where the study's manifest (a file) is; move it away")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: cannot be read as a study manifest ({e})") from None
    runs = manifest.get("runs") if isinstance(manifest, dict) else None
    if not isinstance(runs, list) or not isinstance(manifest.get("cluster"), str):
        raise ValueError(f"{path}: not a study manifest (a JSON object with cluster and runs, as written)")
    for i, run in enumerate(runs):
        missing = [k for k in RUN_KEYS if k not in run] if isinstance(run, dict) else list(RUN_KEYS)
        if missing:
            raise ValueError(f"{path}: not a study manifest (runs[{i}] lacks {', '.join(missing)})")
        if said := mistyped(run):  # a traceback in `study status` (fourth hunt of 2026-12-04, st_B7)
            raise ValueError(f"{path}: not a study manifest as written (runs[{i}].{said})")
    return rebased(manifest, Path(study_dir))


def mistyped(run: dict) -> str | None:
    """`key=value: what it must be` for the first of an entry's RUN_KEYS of another type; None: none is."""
    number = isinstance(run["num"], int) and not isinstance(run["num"], bool)
    overrides = isinstance(run["overrides"], list) and all(isinstance(o, str) for o in run["overrides"])
    for key, fine, what in (("num", number, "a whole number"), ("overrides", overrides, "a list of strings")):
        if not fine:
            return f"{key}={run[key]!r}: not {what}"
    return None if isinstance(run["run_dir"], str) else f"run_dir={run['run_dir']!r}: not a path"


def rebased(manifest: dict, study_dir: Path) -> dict:
    """A study whose folder was moved or copied (`mv sweep elsewhere`): its paths read under the folder
    given, `moved_from` the one it was made in (twenty-third hunt, case 35: `study status` read the old,
    missing run folders, "failed ... job ended (FINISHED)", where each run said itself interrupted)."""
    old, new = manifest.get("sweep_dir"), str(study_dir.absolute())
    if isinstance(old, str) and not Path(old).is_absolute():  # written before sweep_dir was absolute: it
        manifest = made_absolute(manifest, study_dir)  # read from another folder was "moved" (24th hunt)
        old = manifest["sweep_dir"]
    if not isinstance(old, str) or Path(old).resolve() == Path(new).resolve():
        return manifest

    def moved(value):
        inside = isinstance(value, str) and (value == old or value.startswith(old.rstrip("/") + "/"))
        return new + value[len(old.rstrip("/")) :] if inside else value

    for run in manifest["runs"]:
        for key in ("run_dir", "submitit_folder"):
            if key in run:
                run[key] = moved(run[key])
    manifest["folder"] = moved(manifest.get("folder"))
    return manifest | {"sweep_dir": new, "moved_from": old}


def made_absolute(manifest: dict, study_dir: Path) -> dict:
    """A manifest whose sweep_dir and submitit folder were written relative (to the folder the sweep was
    typed in, its multirun.yaml's cwd), with them absolute."""
    from align_lab.rerun import sweep_cwd

    cwd = sweep_cwd(study_dir)
    if cwd is None:
        return manifest
    absolute = {
        k: str(cwd / manifest[k]) for k in ("sweep_dir", "folder") if isinstance(manifest.get(k), str)
    }
    return manifest | absolute
