"""A study's manifest, `<sweep folder>/study.json`: its one name and its one writer. Written by the
launcher at submission (hydra_plugins/align_lab_launcher/launcher.py) and by `python -m align_lab.study
resume`; read by `study status|resume`, the plan loop (waves.py) and compare (results/runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "study.json"


def write_manifest(sweep_dir: Path, manifest: dict) -> None:
    """study.json holds either its old content or `manifest`, never a part (a kill, a full disk)."""
    tmp = Path(sweep_dir) / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(Path(sweep_dir) / MANIFEST)


def load_manifest(study_dir: Path) -> dict:
    """The folder's study.json; FileNotFoundError (one line) when it has none."""
    path = Path(study_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path}: no study manifest here (expected a sweep folder)")
    return json.loads(path.read_text())
