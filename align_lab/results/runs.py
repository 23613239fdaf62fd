"""Find and read run folders (and the pending runs of study manifests) below some folders.

A run folder holds `.hydra/config.yaml` or `summary.json`; it may be complete, running, failed,
or never started. Nothing here raises on a half-written folder: what cannot be read is recorded
in `Run.problems` and shown in the report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from align_lab.aliases import nest_config, rename_overrides
from align_lab.config import run_choices
from align_lab.file_kinds import special
from align_lab.folder import LOCK, holder, summary_problem
from align_lab.rerun import resume_command, where_the_sweep_is
from align_lab.results.manifest import MANIFEST
from align_lab.results.run_figures import read_metrics_into, unusable_metrics

# tuning: a tuned study's trials (study/tuning.py), which its claims do not compare
SKIP_DIRS = {"checkpoints", "wandb", ".hydra", ".submitit", "__pycache__", "compare", "tuning"}
COMPLETED = "completed"
PENDING = "pending"
NOT_STARTED = "not started"
DIED = "died"


@dataclass
class Run:
    """One run as found on disk (or only in a study manifest, then `status == "pending"`)."""

    folder: Path
    status: str  # completed | running | died | failed | not started | pending (or what summary.json says)
    error: str = ""
    config: dict = field(default_factory=dict)  # .hydra/config.yaml
    choices: dict = field(default_factory=dict)  # group -> chosen file (hydra.yaml, summary, manifest)
    overrides: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)  # metrics.jsonl records
    problems: list[str] = field(default_factory=list)


def is_run_dir(path: Path) -> bool:
    return (path / ".hydra" / "config.yaml").is_file() or (path / "summary.json").is_file()


def find_run_dirs(roots: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(run folders, study manifests) below the roots, sorted; run folders are not searched inside."""
    runs: set[Path] = set()
    manifests: set[Path] = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            if MANIFEST in filenames:
                manifests.add(here / MANIFEST)
            if is_run_dir(here):
                runs.add(here)
                dirnames[:] = []
                continue
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
    return sorted(runs), sorted(manifests)


def _read_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _overrides_dict(overrides: Iterable[str]) -> dict[str, str]:
    """ "key=value" strings (with Hydra's +, ++, ~ prefixes) as {key: value}."""
    out = {}
    for item in overrides:
        key, sep, value = str(item).lstrip("+~").partition("=")
        if sep:
            out[key] = value
    return out


def _shaped(value: Any, kind: type, name: str) -> Any:
    """`value` when it is of `kind` (or empty); else a ValueError naming the file: valid YAML or JSON of
    another shape (a list for a mapping) read on as the mapping would be a traceback far from it."""
    if value is None or isinstance(value, kind):
        return value
    shape = {dict: "a mapping", list: "a list"}[kind]
    raise ValueError(f"{name}: not {shape} (a {type(value).__name__}), left out")


def load_run(folder: Path) -> Run:
    """Reads a run folder; unreadable parts become `problems`, never exceptions."""
    run = Run(folder=Path(folder), status=NOT_STARTED)
    hydra_dir = run.folder / ".hydra"
    for name, attr, kind in (("config.yaml", "config", dict), ("overrides.yaml", "overrides", list)):
        path = hydra_dir / name
        if path.is_file():
            try:
                setattr(run, attr, _shaped(_read_yaml(path), kind, f".hydra/{name}") or getattr(run, attr))
            except ValueError as e:
                run.problems.append(str(e))
            except Exception as e:  # a torn or hand-edited file
                run.problems.append(f".hydra/{name} unreadable: {e}")
    resolved = run.folder / "config.resolved.yaml"  # what the run used (model presets applied)
    if resolved.is_file():
        try:
            run.config = _shaped(_read_yaml(resolved), dict, "config.resolved.yaml") or run.config
        except ValueError as e:
            run.problems.append(str(e))
        except Exception as e:
            run.problems.append(f"config.resolved.yaml unreadable: {e}")
    run.config = nest_config(run.config)[0]  # an older run's old flat keys, as today's (aliases.py)
    run.overrides = rename_overrides(run.overrides, strict=False)[0]
    if (hydra_dir / "hydra.yaml").is_file():
        try:
            hydra_cfg = _read_yaml(hydra_dir / "hydra.yaml") or {}
            choices = hydra_cfg.get("hydra", {}).get("runtime", {}).get("choices", {}) or {}
            run.choices = run_choices(choices)
        except Exception as e:
            run.problems.append(f".hydra/hydra.yaml unreadable: {e}")
    summary_path = run.folder / "summary.json"
    if summary_path.is_file():
        try:
            run.summary = _shaped(json.loads(summary_path.read_text(encoding="utf-8")), dict, "summary.json")
            problem = summary_problem(run.summary or {})  # JSON whose fields are of other types: damaged
            run.status = str(run.summary.get("status", "unknown"))
            run.error = str(run.summary.get("error", "") or "")
            if (run.folder.parent / "multirun.yaml").is_file():  # a sweep's run: the sweep may have moved
                run.error = where_the_sweep_is(run.error, run.folder.parent)
            if problem:
                run.summary, run.status, run.error = {}, "unknown", f"summary.json unreadable: {problem}"
            run.problems += unusable_metrics(run.summary)
        except (OSError, json.JSONDecodeError) as e:
            run.status, run.error = "unknown", f"summary.json unreadable: {e}"
        except ValueError as e:  # JSON, not a summary
            run.summary, run.status, run.error = {}, "unknown", str(e)
        run.choices = {**(run.summary.get("names") or {}), **run.choices}
    elif summary_path.exists():  # a folder: read as a run that died, with a resume its admission refuses
        run.status = "unknown"
        kind = special(summary_path) or "a folder"  # a named pipe said "a folder" (2026-12-04, n23)
        run.error = f"summary.json: not a file ({kind}), left out: its status and final metrics are unknown"
    read_metrics_into(run)
    if run.status == NOT_STARTED and run.metrics:
        run.status = "running"  # logging, but summary.json not written (yet)
    if run.status == "running" and (run.folder / LOCK).exists() and holder(run.folder) is None:
        run.status = DIED  # nobody holds the run's lock: its process ended without a word (SIGKILL, OOM)
        resume = resume_command(run.folder)
        run.error = f"its process ended without finishing; to continue from its checkpoint: {resume}"
    return run


def _manifest_dirs(manifest_path: Path, manifest: dict, entry: dict) -> list[Path]:
    """Where a manifest entry's run folder may be: as written (from the launch directory),
    or at the same place relative to the manifest's own folder."""
    run_dir = Path(str(entry.get("run_dir", "")))
    here = manifest_path.parent
    candidates = [run_dir if run_dir.is_absolute() else Path.cwd() / run_dir]
    sweep_dir = Path(str(manifest.get("sweep_dir", "")))
    try:
        candidates.append(here / run_dir.relative_to(sweep_dir))
    except ValueError:
        pass
    candidates.append(here / run_dir.name)
    return candidates


def pending_runs(manifests: Sequence[Path], found: Sequence[Path]) -> tuple[list[Run], list[str]]:
    """Manifest entries whose run folder was not found: (pending runs, problems)."""
    seen = {p.resolve() for p in found}
    pending, problems = [], []
    for path in manifests:
        if kind := special(path):  # its read waited for ever (fourth hunt of 2026-12-04, cmp_B3)
            problems.append(f"{path}: {kind}, not a study manifest: not read")
            continue
        try:
            manifest = _shaped(json.loads(path.read_text(encoding="utf-8")), dict, "study manifest") or {}
        except (OSError, json.JSONDecodeError) as e:
            problems.append(f"{path}: study manifest unreadable: {e}")
            continue
        except ValueError as e:
            problems.append(f"{path}: {e}")
            continue
        for entry in manifest.get("runs", []):
            candidates = _manifest_dirs(path, manifest, entry)
            if any(c.resolve() in seen for c in candidates):
                continue
            folder = next((c for c in candidates if c.exists()), candidates[-1])
            overrides = [str(o) for o in entry.get("overrides", [])]
            pending.append(
                Run(
                    folder=folder, status=PENDING, choices=dict(entry.get("names") or {}), overrides=overrides
                )
            )
    return pending, problems


def folders_problem(folders: Sequence[Path]) -> str | None:
    """Why compare cannot read the folders given (a file, one missing), in one line; None: it can."""
    files = [str(f) for f in folders if f.exists() and not f.is_dir()]
    if files:  # ninth hunt: a data file given was said "no such folder"
        return f"{', '.join(files)}: a file, not a folder; give run or study folders"
    missing = [str(f) for f in folders if not f.is_dir()]
    return f"no such folder: {', '.join(missing)}" if missing else None


def load_runs(roots: Sequence[Path]) -> tuple[list[Run], list[str]]:
    """Every run below the roots (incl. pending manifest entries), and the problems met on the way."""
    missing = [f"{r}: no such folder" for r in roots if not Path(r).is_dir()]
    dirs, manifests = find_run_dirs([Path(r) for r in roots if Path(r).is_dir()])
    runs, twins = once_each([load_run(d) for d in dirs])
    pending, problems = pending_runs(manifests, dirs)
    return runs + pending, missing + twins + problems


def once_each(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """Each run once: a folder that is a link to another (the same folder resolved) or a copy of one (the
    same summary.json `config_digest`, `seed` and `started`) is left out, with a line naming both; counted
    twice, one seed read as two."""
    kept, seen, lines = [], {}, []
    for run in runs:
        keys = [run.folder.resolve()]
        if isinstance(run.summary, dict) and run.summary.get("started") is not None:
            keys.append(tuple(str(run.summary.get(k)) for k in ("config_digest", "seed", "started")))
        first = next((seen[k] for k in keys if k in seen), None)
        if first is not None:
            lines.append(f"{run.folder}: the same run as {first} (a link to it or a copy), counted once")
            continue
        seen |= dict.fromkeys(keys, run.folder)
        kept.append(run)
    return kept, lines


_MISSING = object()


def has_key(run: Run, key: str) -> bool:
    """The run has `key` (lookup's places), though its value may be null (algo.clip.high: null)."""
    return lookup(run, key, _MISSING) is not _MISSING


def lookup(run: Run, key: str, missing: Any = None) -> Any:
    """A run's value for `key`: a config group's choice (`algo`, `task`), a dotted config key
    (`algo.kl_coef`, `seed`), a summary key, or an override; `missing` (None) when the run has none."""
    if key in run.choices:
        return run.choices[key]
    node: Any = run.config
    for part in key.split("."):
        node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            break
    if node is not _MISSING:
        return node
    if key in run.summary:
        return run.summary[key]
    return _overrides_dict(run.overrides).get(key, missing)


def format_value(value: Any) -> str:
    """A config value as a short label: 0.05, true, ppo, PPO (for a component's `_target_`)."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        target = value.get("_target_")
        return str(target).rsplit(".", 1)[-1] if target else json.dumps(value, sort_keys=True)
    return str(value)


def group_label(run: Run, keys: Sequence[str]) -> str:
    """The run's group: the value of the single key, or "k1=v1, k2=v2" for several keys."""
    if len(keys) == 1:
        return format_value(lookup(run, keys[0]))
    return ", ".join(f"{k}={format_value(lookup(run, k))}" for k in keys)


NEVER_POOLED = ("task", "model")  # runs that differ in these are other experiments, never seeds of one


def settings_to_split(runs: Sequence[Run], by: Sequence[str]) -> list[str]:
    """The NEVER_POOLED keys not in `by` on which the runs differ: grouped by `by` alone, a group's mean
    would pool tasks (or models) as if they were seeds."""
    split = []
    for key in NEVER_POOLED:
        values = {format_value(v) for v in (lookup(r, key) for r in runs) if v is not None}
        if key not in by and len(values) > 1:
            split.append(key)
    return split


def run_seed(run: Run) -> int | None:
    value = lookup(run, "seed")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
