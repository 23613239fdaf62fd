"""The files of the user's that a sweep's runs read (their summary.json `inputs`: data files, reward and
verifier modules), as `study resume` finds them now: a run that never started would read an edited file
while the sweep's other runs trained on the file as it was (twenty-sixth hunt, cases 30 and 45: #1 started
and completed on an edited data file, no line). One line naming the first that changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def recorded_inputs(run_dirs: list[Path]) -> list[tuple[str, str, str, str]]:
    """(file, key, sha256 16 hex, the run folder that read it) of each plain file each run recorded (a
    module with helpers, a URL, a model folder: left to each run's own resume check)."""
    found: list[tuple[str, str, str, str]] = []
    for run_dir in run_dirs:
        try:
            inputs = json.loads((run_dir / "summary.json").read_text()).get("inputs") or {}
        except (OSError, ValueError, AttributeError):
            continue
        for key, record in inputs.items() if isinstance(inputs, dict) else ():
            if isinstance(record, dict) and Path(str(record.get("file"))).is_file() and record.get("sha256"):
                found.append((str(record["file"]), key, str(record["sha256"])[:16], run_dir.name))
    return found


def changed_since_the_sweep(run_dirs: list[Path]) -> str | None:
    """The line for the first file the sweep's runs read that differs now, or None."""
    for file, key, then, reader in recorded_inputs(run_dirs):
        try:
            now = hashlib.sha256(Path(file).read_bytes()).hexdigest()[:16]
        except OSError:
            continue
        if now != then:
            return (
                f"{key}: {file} (sha256 {then[:8]} when {reader} read it, now {now[:8]}) changed since the "
                "sweep's runs read it: a run resumed or started now would train on another version than "
                "theirs; put it back as it was, or start another sweep (another hydra.sweep.dir)"
            )
    return None
