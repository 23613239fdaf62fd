"""Where compare writes its report (--out, else <first folder>/compare): a folder it can make and write,
not a run folder itself, found before any run is read."""

from __future__ import annotations

import os
from pathlib import Path

from align_lab.file_kinds import special
from align_lab.results.runs import is_run_dir


def out_problem(out: Path, given: bool = True) -> str | None:
    """Why --out (`given`, else its default) cannot hold the report (a file on its path, a folder that
    cannot be made or written: read-only, /proc), found by making it and a probe file, then undone;
    None when it can."""
    import shutil

    where, choose = (f"--out {out}", "choose") if given else (f"{out} (the default --out)", "name with --out")
    existing = next((p for p in [out, *out.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():  # a named pipe was "a file" (sixth hunt of 2026-12-04)
        return f"{where}: {existing} is {special(existing) or 'a file'}; {choose} a folder"
    if is_run_dir(out):  # the report's files were written among the run's own (fifth hunt of 2026-12-04)
        return f"{where}: a run folder, whose own files the report's would lie among; {choose} another folder"
    if own := next((p for p in out.parents if is_run_dir(p) and owned(p, out)), None):  # <run>/checkpoints/x
        return f"{where}: inside {own / out.relative_to(own).parts[0]}, a run's own; {choose} another folder"
    created = next((p for p in reversed([out, *out.parents]) if not p.exists()), None)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        return f"{where}: cannot write there ({e.strerror}); {choose} a writable folder"
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
    return None


RUNS_OWN = ("checkpoints", ".hydra", "wandb")  # the folders a run makes in its own (run/run_folder.py)


def owned(run: Path, out: Path) -> bool:
    """`out` lies in a folder the run made (sixth hunt of 2026-12-04: <run>/checkpoints/rep took the
    report); a folder of the user's below the run (<run>/compare, its default) is not the run's."""
    return out.relative_to(run).parts[0] in RUNS_OWN
