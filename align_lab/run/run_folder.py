"""One run's folder, and the only writer of its summary.json: every write of the summary (as the run starts,
once its memory is planned, as it ends) and a refused resume's putting back of what it found go through
RunFolder, so the file's name, its atomic write and its format live in one place (tests/unit/run/
test_run_folder.py checks that no other module writes it). The lock and the ownership of a folder are
align_lab/folder.py's (standard library only, read by the aggregator and `study status` too); RunFolder
takes the lock through it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from align_lab.folder import SUMMARY, RunLock, claim, read_summary
from align_lab.value_checks import naming

ENV_READ = "env_read"  # summary.json's list of the variables the user's code read (rerun.py reads it)

RESOLVED_CONFIG = "config.resolved.yaml"
SEGMENTS = "segments_s"  # summary.json: the wall time of each process that worked on the run, in order
KEPT = (SUMMARY, RESOLVED_CONFIG)  # what a run's start rewrites, and a refused resume puts back


def write_atomic(path: Path, text: str | bytes) -> None:
    """`path` holds either its old content or `text`, never a part (a kill, a full disk)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with naming(path):  # a write's error names no file (twentieth hunt, case 30)
            tmp.write_bytes(text) if isinstance(text, bytes) else tmp.write_text(text)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class RunFolder:
    """The folder of one run (`path`): its summary.json read and written, its resolved config written,
    and what a run's start rewrites kept and put back."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY

    def claim(self, wait_s: float = 1.0) -> RunLock:
        """The folder's lock for the run's life (align_lab/folder.py claim: one line naming a holder)."""
        return claim(self.path, wait_s)

    def read_summary(self) -> dict:
        """The folder's summary.json, or {} when there is none (or it is unreadable or damaged: torn, not
        JSON, or a field of another type than align_lab writes)."""
        try:
            return read_summary(self.summary_path)
        except (OSError, ValueError):
            return {}

    def previous_segments(self) -> list[float]:
        """Wall seconds of the earlier segments of a resumed run (each start of its command), from the last
        summary.json. A segment whose process died without a word (SIGKILL, out of memory, a lost node)
        left its summary `running` with its start time: it counts until the last file it wrote (read as
        admission begins, before the resume writes a line: run/admission.py)."""
        previous, run_dir = self.read_summary(), self.path
        segments = [float(s) for s in previous.get(SEGMENTS, []) if isinstance(s, int | float)]
        started = previous.get("started")
        if previous.get("status") == "running" and isinstance(started, int | float):
            paths = [run_dir / n for n in ("metrics.jsonl", SUMMARY, "app.log", "checkpoints")]
            paths += list((run_dir / "checkpoints").glob("*"))
            last = max((p.stat().st_mtime for p in paths if p.exists()), default=started)
            segments.append(max(0.0, last - started))
        return segments

    def write_summary(self, summary: dict) -> None:
        """summary.json: the new one whole, or the old one unchanged (write_atomic); with the environment
        variables the user's code read by now (`env_read`), which a command resuming it must set as they
        were (rerun.py run_env: `study resume`'s left them out, thirty-eighth hunt, case 18)."""
        from align_lab.user_reads import set_env_read

        read = {ENV_READ: sorted(set(summary.get(ENV_READ, [])) | set(set_env_read()))}
        summary = summary | (read if read[ENV_READ] else {})
        write_atomic(self.summary_path, json.dumps(summary, indent=1, sort_keys=True, default=str))

    def write_resolved_config(self, config: dict) -> None:
        """The run's config with every interpolation resolved (`.hydra/config.yaml` keeps them as typed,
        e.g. dr_grpo's max_len: ${...}), as the run used it."""
        write_atomic(self.path / RESOLVED_CONFIG, yaml.safe_dump(config, sort_keys=False))

    def kept(self) -> dict[str, tuple[bytes, int] | None]:
        """The files a run's start rewrites (KEPT), as they are before it: their bytes and times (None:
        absent)."""
        return {n: _as_it_is(self.path / n) for n in KEPT}

    def restore(self, kept: dict[str, tuple[bytes, int] | None]) -> None:
        """The files of kept() back as they were, their times too (a killed segment lasts until the
        last file it wrote: previous_segments): a refused resume leaves its folder as it
        found it."""
        for name, found in kept.items():
            if found is None:
                (self.path / name).unlink(missing_ok=True)
            else:
                write_atomic(self.path / name, found[0])
                os.utime(self.path / name, ns=(found[1], found[1]))


def _as_it_is(path: Path) -> tuple[bytes, int] | None:
    """A file's bytes and modification time (ns), or None where there is no file."""
    return (path.read_bytes(), path.stat().st_mtime_ns) if path.is_file() else None


def run_above(folder: Path, key: str) -> str | None:
    """The line for a folder (`key`: hydra.run.dir or hydra.sweep.dir) that lies inside one run's folder
    (its summary.json or .hydra/hydra.yaml), a sweep's (hydra.sweep.dir) that is one too: what goes there
    lands among that run's files, and compare and `study status` of it read that run alone (fortieth
    hunt, case 48; a run's, forty-first, 28); a run's that is a sweep's folder (its multirun.yaml: said as
    "files align_lab did not write", case 29). None otherwise."""
    sweep = key == "hydra.sweep.dir"
    mine = ", not a sweep's: its runs would go" if sweep else ": this run would go"
    if key == "hydra.run.dir" and (folder / "multirun.yaml").is_file():
        return f"{key}={folder}: is a sweep's folder (its multirun.yaml), not one run's; choose another {key}"
    for where in [folder, *folder.parents][not sweep :]:  # a run's own folder: its resume
        if (where / "summary.json").is_file() or (where / ".hydra" / "hydra.yaml").is_file():
            inside = "is" if where == folder else f"lies inside {where}, which is"
            return (
                f"{key}={folder}: {inside} one run's folder (its summary.json and .hydra/){mine} among that "
                f"run's files, and compare would read that run alone; choose another {key}"
            )
    return None


def sweep_around(folder: Path) -> Path | None:
    """The sweep's folder (its multirun.yaml) that `folder` lies inside, the nearest; None where none does."""
    return next((where for where in folder.parents if (where / "multirun.yaml").is_file()), None)


def joins_a_sweep(folder: Path) -> str | None:
    """The note for a new run (not a sweep's job) made inside a sweep's folder: compare and `study status`
    of the sweep read it as one of its runs (forty-first hunt, case 30: counted as a further seed, with no
    line). A run added so may be meant (a seed run by hand later), so it is said, not refused."""
    sweep = sweep_around(folder)
    if sweep is None:
        return None
    return (
        f"align_lab: note: hydra.run.dir={folder} lies inside the sweep {sweep} (its multirun.yaml): compare "
        "and `study status` of it will read this run as one of its runs"
    )
