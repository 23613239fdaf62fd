"""The files of the user's that a sweep's runs read (their summary.json `inputs`: data files, reward and
verifier modules), as `study resume` finds them now: a run that never started would read an edited file
while the sweep's other runs trained on the file as it was (twenty-sixth hunt, cases 30 and 45: #1 started
and completed on an edited data file, no line). One line naming the first that changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def recorded_inputs(run_dirs: list[Path]) -> list[tuple[str, str, str, str]]:
    """(file, key, sha256 16 hex, the run folder that read it) of each file each run recorded (a URL, whose
    answers are asked again by each run's own resume check, left out)."""
    found: list[tuple[str, str, str, str]] = []
    for run_dir in run_dirs:
        try:
            inputs = json.loads((run_dir / "summary.json").read_text()).get("inputs") or {}
        except (OSError, ValueError, AttributeError):
            continue
        for key, record in inputs.items() if isinstance(inputs, dict) else ():
            if (
                isinstance(record, dict)
                and record.get("sha256")
                and not str(record.get("file")).startswith("http")
            ):
                found.append((str(record["file"]), key, str(record["sha256"])[:16], run_dir.name))
    return found


def digest_now(file: str) -> str | None:
    """A recorded input's digest now, as the run digested it (run/inputs.py): a module with the helpers it
    imports (recorded as `<file> (and <its helpers>)`: twenty-seventh hunt, case 9), a model folder, a
    plain file; None where it is gone or unreadable."""
    from align_lab.run.inputs import module_digest, path_input

    main, _, helpers = file.partition(" (and ")
    try:
        if helpers:
            files = [Path(main)] + [Path(main).parent / name for name in helpers.rstrip(")").split(", ")]
            return module_digest(files)[:16]
        found = path_input(main) if Path(main).is_dir() else None
        return found["sha256"][:16] if found else hashlib.sha256(Path(main).read_bytes()).hexdigest()[:16]
    except (OSError, TypeError, KeyError):
        return None


def changed_since_the_sweep(run_dirs: list[Path]) -> str | None:
    """The line for the first file the sweep's runs read that differs now, or None."""
    for file, key, then, reader in recorded_inputs(run_dirs):
        now = digest_now(file)
        if now is not None and now != then:
            return (
                f"{key}: {file} (sha256 {then[:8]} when {reader} read it, now {now[:8]}) changed since the "
                "sweep's runs read it: a run resumed or started now would train on another version than "
                "theirs; put it back as it was, or start another sweep (another hydra.sweep.dir)"
            )
    return None
