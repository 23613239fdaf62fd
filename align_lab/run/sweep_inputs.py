"""The files of the user's that a sweep's runs read (their summary.json `inputs`: data files, reward and
verifier modules), as `study resume` finds them now, and as a run that starts afresh in a sweep's folder
reads them: a run that never started would read an edited file while the sweep's other runs trained on
the file as it was (twenty-sixth hunt, cases 30 and 45: #1 started and completed on an edited data file,
no line; twenty-seventh, case 16: the same through the sweep's own command typed again). One line naming
the first that changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from align_lab.config import ConfigError


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
                f"{changed_line(key, file, then, now, reader)}: a run resumed or started now would train on "
                "another version than theirs; put it back as it was, or start another sweep (another "
                "hydra.sweep.dir)"
            )
    return None


def named(key: str, file: str) -> str:
    """`task.path: <file>`, or `a file your code opened: <file>` (run/start.py opened_inputs' keys)."""
    return f"a file your code opened: {file}" if key.startswith(OPENED) else f"{key}: {file}"


def changed_line(key: str, file: str, then: str, now: str, reader: str) -> str:
    return (
        f"{named(key, file)} (sha256 {then[:8]} when {reader} read it, now {now[:8]}) changed since "
        "the sweep's runs read it"
    )


OPENED = "file "  # a file the user's code opened to read (run/start.py opened_inputs), named by its path


SWEEP_RECORDS = ("multirun.yaml", "study.json")  # Hydra's record of a -m sweep, align_lab's of a study


def trained_siblings(run_dir: Path) -> list[Path]:
    """The other runs of the sweep whose folder holds `run_dir` that trained on what they read: completed,
    or with a checkpoint to resume (a run that failed before its first checkpoint starts again, on the
    files as they are now); [] for a run outside a sweep."""
    from align_lab.train.checkpoint_io import checkpoint_step

    sweep = run_dir.parent
    if not any((sweep / name).is_file() for name in SWEEP_RECORDS):
        return []
    found = []
    for folder in sorted(p for p in sweep.iterdir() if p.is_dir() and p != run_dir):
        try:
            status = json.loads((folder / "summary.json").read_text()).get("status")
        except (OSError, ValueError, AttributeError):
            continue
        if status == "completed" or checkpoint_step(folder / "checkpoints") > 0:
            found.append(folder)
    return found


def check_afresh(spec, run_dir: Path) -> None:
    """A run without a checkpoint in a sweep's folder: check_beside_its_sweep of its inputs; with
    resume_changed_inputs=true its warning line."""
    import logging

    from align_lab.run.inputs import run_inputs
    from align_lab.run.probe_check import check_sibling_probes
    from align_lab.run.resumable import resumable_part
    from align_lab.train.checkpoint_io import checkpoint_step

    if checkpoint_step(run_dir / "checkpoints") > 0:  # its own checkpoint's check (folder_checks.py)
        return
    allow = bool(spec.config.get("resume_changed_inputs"))
    if line := check_beside_its_sweep(run_inputs(resumable_part(spec.config)), run_dir, allow):
        logging.getLogger("align_lab").warning(f"align_lab: warning: {line}")
    for sibling in trained_siblings(run_dir)[:1]:  # what its scorers read in C, asked of them (31st, 37)
        if line := check_sibling_probes(spec, sibling, allow):
            logging.getLogger("align_lab").warning(f"align_lab: warning: {line}")


def check_beside_its_sweep(mine: dict[str, dict], run_dir: Path, allow: bool) -> str | None:
    """A run starting afresh in a sweep's folder reads each file of the user's as the sweep's runs that
    trained read it (the sweep's command typed again with the reward module edited: twenty-seventh hunt,
    case 16: #1 and #2 trained on the edit, #0 on the file as it was, rc 0, no line). `mine`: this run's
    inputs (run/inputs.py run_inputs). Refused in one line, or with `allow` (resume_changed_inputs=true)
    the warning line returned."""
    found = first_changed(recorded_inputs(trained_siblings(run_dir)), mine)
    if found is not None:
        line = changed_line(*found)
        if allow:
            return f"{line}; this run trains on the file as it is now (resume_changed_inputs=true)"
        raise ConfigError(
            f"{line}: this run would train on another version than theirs; put it back as it was, "
            "start another sweep (another hydra.sweep.dir), or set resume_changed_inputs=true to run "
            "it on the file as it is now"
        )
    return None


def first_changed(records: list[tuple[str, str, str, str]], mine: dict[str, dict]) -> tuple | None:
    """(key, file, then, now, reader) of the first recorded input (recorded_inputs) this run reads in
    another version: its own (`mine`: run/inputs.py run_inputs), or a file the user's code opened (read
    as it is now, as the run will open it); None where none."""
    for file, key, then, reader in records:
        record = mine.get(key) or {}
        ours = str(record.get("file", "")).partition(" (and ")[0]
        now = str(record.get("sha256", ""))[:16]
        if key.startswith(OPENED):  # the run opens it as it goes: the file as it is now
            ours, now = file, digest_now(file) or ""
        if ours == file.partition(" (and ")[0] and now and now != then:
            return key, file, then, now, reader
    return None


def changed_since_completed(spec, run_dir: Path) -> str | None:
    """A completed run asked for again: the warning line naming the first file of the user's it read in
    another version than now (twenty-eighth hunt, case 34: "already completed; nothing to do", rc 0, with
    the reward module, a file it opens or the data edited since), or None."""
    from align_lab.run.inputs import run_inputs
    from align_lab.run.resumable import resumable_part

    found = first_changed(recorded_inputs([run_dir]), run_inputs(resumable_part(spec.config)))
    if found is None:
        return None
    key, file, then, now, _ = found
    return (
        f"{named(key, file)} (sha256 {then[:8]} when this run read it, now {now[:8]}) changed since this run "
        f"({run_dir.name}) completed: its results are of the version it read; choose another "
        f"{folder_key(run_dir)} to run on this one"
    )


def folder_key(run_dir: Path) -> str:
    """The key that places a run's folder: hydra.sweep.dir for a run of a sweep (its folder holds Hydra's
    or align_lab's record of it: thirty-third hunt, case 22), else hydra.run.dir."""
    return (
        "hydra.sweep.dir" if any((run_dir.parent / r).is_file() for r in SWEEP_RECORDS) else "hydra.run.dir"
    )
