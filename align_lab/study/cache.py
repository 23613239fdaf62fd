"""Content-addressed stage artifacts: built once per key, shared by concurrent runs through a file lock."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DONE = ".done"


def default_cache_dir() -> Path:
    """$ALIGN_LAB_CACHE, else the user's cache dir (e.g. ~/.cache/align_lab)."""
    env = os.environ.get("ALIGN_LAB_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("align_lab"))


def stage_key(stage: str, version: int, inputs: dict) -> str:
    """sha256 over the stage name, its code version and every input (canonical JSON), 16 hex chars."""
    blob = json.dumps({"stage": stage, "version": version, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StageResult:
    stage: str
    key: str
    path: Path
    hit: bool
    seconds: float


class StageCache:
    """`get` returns the artifact folder of (stage, inputs), building it under a lock if missing."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def get(self, stage: str, version: int, inputs: dict, build: Callable[[Path], None]) -> StageResult:
        from filelock import FileLock

        key = stage_key(stage, version, inputs)
        path = self.root / stage / key
        start = time.perf_counter()
        if (path / DONE).exists():
            return StageResult(stage, key, path, True, 0.0)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if (path / DONE).exists():  # another run built it while we waited
                return StageResult(stage, key, path, True, time.perf_counter() - start)
            tmp = path.with_name(f"{key}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(path, ignore_errors=True)  # a half-built folder from a killed run
            tmp.mkdir()
            try:
                build(tmp)
                (tmp / "inputs.json").write_text(json.dumps(inputs, sort_keys=True, indent=1, default=str))
                (tmp / DONE).touch()
                tmp.rename(path)
            except BaseException:  # a failed build leaves nothing half-written behind
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return StageResult(stage, key, path, False, time.perf_counter() - start)
