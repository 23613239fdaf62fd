"""The user's own inputs a run reads, by content: each file a key of its config names (task.path's data),
each module of the user's that a `module:function` or `_target_` names (task.verifier, reward.path, an
environment class), the run folder a teacher is (its final checkpoint) and a remote reward's URL. Their
digests go inside each checkpoint with the run's identity (run/summary.py run_identity) and into its
summary.json; a resume whose inputs changed is refused unless `resume_changed_inputs=true`
(run/folder_checks.py), as one whose training code changed is unless `resume_changed_code=true`. A
user's module is digested by its own file and the files of the user's modules it uses (a helper it
imports, or a name it imports from one, transitively); each checkpoint also keeps the user's modules
the process had imported by then and the files the user's code opened to read (user_code.py: a helper
imported by a name computed at run time, a JSON of settings), digested again on resume. align_lab's
own code is the training code's digest (run/code_digest.py), and installed packages are the stage keys'
versions."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from align_lab.config import ConfigError
from align_lab.user_code import changed_since_imported, file_digest, installed_record, user_module_file
from align_lab.user_reads import LABELS, digest_now, where_now
from align_lab.value_checks import UserCodeError

log = logging.getLogger("align_lab")

PATH_KEY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")  # module:function (or Class.method)
NOT_INPUTS = "cache_dir"  # a folder the run writes, not one it reads (the root's, a model's downloads)

IMPORT_CALLS = ("import_module", "__import__")  # importlib.import_module("helper") in a function's body


def imported_names(path: Path, name: str) -> list[str]:
    """The modules a module's source imports (`import a.b`, `from a import b`: a and a.b, anywhere in it:
    a function's body too; `importlib.import_module("a")` with the name written out), relative ones
    resolved against its package `name`'s; [] where the source does not parse."""
    import ast

    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found += [module, *(f"{module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call) and called_name(node.func) in IMPORT_CALLS and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append(first.value)
    return found


def called_name(func) -> str | None:
    """`f` of a call `f(...)` or `m.f(...)`."""
    return getattr(func, "id", None) or getattr(func, "attr", None)


def user_modules_used(name: str) -> list[Path]:
    """The files of module `name` (the user's) and of the user's modules it imports, transitively; its own
    first (issue 73 hunt: a helper module the reward function imported from was edited and the run
    resumed on it in silence). A module the run has not imported is not one it used."""
    files, todo, seen = [], [name], set()
    while todo:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.add(current)
        path = user_module_file(current, as_imported=True)
        if path is not None:
            files.append(path)
            todo += imported_names(path, current)
    return list(dict.fromkeys(files))


def module_digest(files: list[Path]) -> str:
    """sha256 of a module's file alone (as before helpers were digested), else of every file and its path."""
    if len(files) == 1:
        return sha256(files[0].read_bytes())
    return sha256(b"".join(str(f).encode() + b"\0" + f.read_bytes() + b"\0" for f in files))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


MODEL_FILES = ("config.json", "tokenizer_config.json")  # a folder saved by save_pretrained


def path_input(value: str, component: bool = False) -> dict | None:
    """{file, sha256} of a local file a config value names, or of a folder that is a model saved by
    save_pretrained or a run folder (its checkpoints, as a teacher is keyed: models/hf.py
    directory_fingerprint, big files by size and mtime), or, under a key of the user's components
    (`component`: reward., task.), any other (user_folders.py listing_digest: a partitioned parquet
    a scorer reads, rewritten between a kill and the resume: thirty-seventh hunt, case 49)."""
    from align_lab.models.saved import directory_fingerprint
    from align_lab.run.teacher_run import run_checkpoints
    from align_lab.tasks.data_files import file_sha256
    from align_lab.user_folders import listing_digest

    path = Path(value).expanduser()
    if path.is_file():  # a link by its own name: what it points to may be what changed (ninth hunt)
        return {"file": str(path.absolute()), "sha256": file_sha256(path)}
    folder = run_checkpoints(value) if path.is_dir() else None
    if folder is None and path.is_dir() and any((path / name).is_file() for name in MODEL_FILES):
        folder = path
    if folder is None and component and path.is_dir() and (listed := listing_digest(path)) is not None:
        return {"file": str(path.absolute()), "sha256": listed}
    if folder is None:
        return None
    # a link by its own name, as a file's (tenth hunt: a teacher link swapped named the new run)
    return {"file": str(folder.absolute()), "sha256": directory_fingerprint(str(folder))}


def value_input(key: str, value: str) -> dict | None:
    """The input a config string names, or None: a file or folder, a user's `module:function` (installed:
    its RECORD) or `_target_` (its module's file), an http(s) URL (the address, not what answers there)."""
    if value.startswith(("http://", "https://")):
        return {"file": value, "sha256": sha256(value.encode())}
    module = value.partition(":")[0] if PATH_KEY.match(value) else None
    if key.endswith("_target_"):
        module = value.rpartition(".")[0]
    files = user_modules_used(module) if module else []
    if PATH_KEY.match(value) and not files and (record := installed_record(module)):  # your package
        return record
    if files and (stale := changed_since_imported(files)):
        raise UserCodeError(f"{key}={value}: {stale}")
    if files:
        also = f" (and {', '.join(f.name for f in files[1:])})" if len(files) > 1 else ""
        return {"file": f"{files[0]}{also}", "sha256": module_digest(files)}
    component = key.startswith(("reward.", "task."))  # not env.: a sandbox it writes in
    return path_input(value, component) if "\n" not in value and len(value) < 4096 else None


def run_inputs(config, prefix: str = "") -> dict[str, dict]:
    """{dotted key: {file, sha256}} of every input of the user's that a resolved config names, after
    the run's components were built (they import the user's modules); `config` less the keys that may
    change on a resume (run/summary.py resumable_part)."""
    found: dict[str, dict] = {}
    if isinstance(config, dict):
        for k, v in config.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if str(k) != NOT_INPUTS:
                found |= run_inputs(v, key)
    elif isinstance(config, list):
        for i, v in enumerate(config):
            found |= run_inputs(v, f"{prefix}.{i}")
    elif isinstance(config, str) and config:
        named = value_input(prefix, config)
        if named is not None:
            found[prefix] = {"file": named["file"], "sha256": named["sha256"][:16]}
    return found


def changed_inputs(saved: dict | None, mine: dict) -> dict[str, tuple[dict, dict]]:
    """{key: (the checkpoint's, this run's)} of the inputs both name whose digests differ (a key only one
    names is another config, which the config's own check refuses); None: a checkpoint written before
    input digests."""
    if not saved:
        return {}
    return {k: (saved[k], mine[k]) for k in saved if k in mine and saved[k]["sha256"] != mine[k]["sha256"]}


def modules_now(saved: dict) -> dict[str, dict]:
    """What a checkpoint recorded of the user's code's inputs (used_by_user_code: modules, files,
    environment variables), each digested again now (`gone`: deleted, `unset`); a module as this process
    imports it now (seventeenth hunt: one moved, the same bytes, to a folder on PYTHONPATH was "now gone
    ... changed", though the run imported the same code)."""
    return {
        k: _module_now(k, v) or {"file": where_now(v), "sha256": digest_now(k, v)}
        for k, v in (saved or {}).items()
    }


def _module_now(key: str, record: dict) -> dict | None:
    """A `module <name>` record's module where this process imports it from, if that is another file."""
    path = user_module_file(key.removeprefix("module ")) if key.startswith("module ") else None
    if path is None or str(path) == record["file"]:
        return None
    return {"file": str(path), "sha256": file_digest(path) or "gone"}


def said_once(changed: dict[str, tuple[dict, dict]]) -> dict[str, tuple[dict, dict]]:
    """`changed` less what the user's code used (user_code.py: `module <name>`, `file <path>`) whose file
    a config key's input already names (reward.path's module, or a helper in its `(and <helper>.py)`):
    one line each."""
    used = tuple(f"{kind} " for kind in ("module", *LABELS))
    named = set()
    for key, (_, new) in changed.items():
        if not key.startswith(used):
            first, _, helpers = new["file"].partition(" (and ")
            named |= {first, *helpers.rstrip(")").split(", ")}
    return {
        k: v
        for k, v in changed.items()
        if not (k.startswith(used) and {v[1]["file"], Path(v[1]["file"]).name} & named)
    }


def describe_change(key: str, old: dict, new: dict) -> str:
    """`task.path: <file> (sha256 0123abcd, now 4567ef01)` for one changed input; `a file your code
    opened: <file> ...`, `an environment variable your code read: $NAME (unset, now sha256 ...)` for one
    of what user_reads.py noted (its LABELS)."""
    kind, _, name = key.partition(" ")
    label = LABELS.get(kind) if name else None
    words = ("unset", "gone")
    old_d, new_d = old["sha256"][:8], new["sha256"][:8]
    if old.get("file") != new.get("file") and old_d not in words and new_d not in words:
        # a relative name resumed from another folder (eleventh hunt: "put it back" of a file never
        # changed), or a link swapped to another file (thirteenth: "run the command there", where it was)
        return (
            f"{label or key}: names {new['file']} now (sha256 {new_d}), not {old['file']} (sha256 {old_d}) "
            "as when the run started (a name read from another folder or PYTHONPATH, or a link pointing "
            "elsewhere now: run the command as it started, with its folder and PYTHONPATH)"
        )
    if old_d in words or new_d in words:  # (unset, now sha256 ...): each side its own
        old_d, new_d = (d if d in words else f"sha256 {d}" for d in (old_d, new_d))
        return f"{label or key}: {new['file']} ({old_d}, now {new_d})"
    return f"{label or key}: {new['file']} (sha256 {old_d}, now {new_d})"


# inputs that are a stage of their own (run/stages.py), which a resume never changes (run/resume_stages.py)
STAGED = {"algo.teacher": "the teacher stage: a student goes on learning from the teacher it began with"}
TASK_INPUTS = ("task.path", "task.verifier")  # in the task's fingerprint: an input of every stage built


def stages_from_the_task(error: str, ckpt: Path) -> str:
    """The stages the checkpoint in `ckpt` records (`sft, preferences`), where `error` names an input of
    every stage built from the task (`task.verifier=...: raised ...`): its fix cannot resume the run (the
    stage check refuses it); else ""."""
    if not error.startswith(tuple(f"{key}=" for key in TASK_INPUTS)):
        return ""
    import torch

    from align_lab.train.checkpoint_io import checkpoint_file

    try:
        path = checkpoint_file(ckpt)
        state = torch.load(path, mmap=True, weights_only=False) if path is not None and path.is_file() else {}
    except Exception:  # noqa: BLE001 - a damaged checkpoint: its own line says so at the resume
        return ""
    return ", ".join(state.get("stage_keys") or ())


def check_inputs(
    saved: dict | None, mine: dict, ckpt: Path, allow: bool = False, stages: tuple[str, ...] = ()
) -> dict:
    """The user's inputs inside a checkpoint (run/inputs.py) against this run's: a changed one (a data
    file, a verifier, reward or environment module edited, a teacher retrained) refused in one line naming
    it, unless `allow` (resume_changed_inputs=true): then one warning line, and the changes returned for
    summary.json. None: a checkpoint written before input digests (not checked)."""
    changed = said_once(changed_inputs(saved, mine))
    if not changed:
        return {}
    what = "; ".join(describe_change(k, old, new) for k, (old, new) in changed.items())
    moved = all(old.get("file") != new.get("file") for old, new in changed.values())  # a relative name
    since = "" if moved else f" changed since the checkpoint in {ckpt} was written"
    # a checkpoint's stages are built from the task's data and verifier (15th hunt; 26th hunt, case 49)
    reason = {k: f"is one ({why})" for k, why in STAGED.items()}
    reason |= {k: f"is an input of them ({', '.join(stages)})" for k in TASK_INPUTS if stages}
    if staged := [k for k in changed if k in reason]:
        raise ConfigError(
            f"{what}{since}; a resume keeps the stages its checkpoint was trained on, and {staged[0]} "
            f"{reason[staged[0]]}, whatever resume_changed_inputs says: put it back as it was, or choose "
            "another hydra.run.dir"
        )
    judged, tasked = all(k[:6] == "judge." for k in changed), set(changed) & set(TASK_INPUTS)
    would = "score one run's evaluations" if judged else f"train {'and evaluate ' * bool(tasked)}one run"
    if not allow:  # a judge scores evaluations alone (c56: said "train"); held-out rows are data (n08)
        raise ConfigError(
            f"resume_changed_inputs=false: {what}{since}, and a resume would {would} on two versions of it; "
            f"{'' if moved else 'put it back as it was, '}set resume_changed_inputs=true to resume anyway, "
            "or choose another hydra.run.dir"
        )
    log.warning(
        f"align_lab: warning: resuming {ckpt} with changed inputs ({what}): resume_changed_inputs=true"
    )
    return changed


def check_same_inputs(started: dict | None, config: dict) -> None:
    """On a spawned rank, which loads the user's modules again by name: the inputs it finds are those rank
    0 started with (sixteenth hunt: a reward module edited while rank 0 built the stages trained rank 1 on
    the edit, rc 0). One line naming the first that changed."""
    from align_lab.run.resumable import resumable_part

    if not started:  # a rank of a run across nodes (rank 0's record not sent), or before input digests
        return
    try:
        now = run_inputs(resumable_part(config))
    except OSError:  # a folder rank 0 writes as this rank reads it (its checkpoints): not the user's edit
        return
    changed = changed_inputs(started, now)
    if changed:
        key, (old, new) = next(iter(changed.items()))
        raise UserCodeError(
            f"{describe_change(key, old, new)} changed since this run started, before its other processes "
            "loaded it: one run would train on two versions of it; put it back as it was"
        )


def check_same_reads(started: dict | None) -> None:
    """On a spawned rank: each file the user's code read both on rank 0 and here (a reward module's
    settings, read as it is imported) as rank 0 read it (seventeenth hunt: such a file edited while rank
    0 built the stages trained rank 1 on the edit, rc 0). One line naming the first that differs."""
    from align_lab.user_reads import as_opened

    mine = as_opened()
    for path, digest in (started or {}).items():
        if mine.get(path, digest) != digest:
            raise UserCodeError(
                f"{path}: a file your code read changed since this run started, before its other processes "
                "read it: one run would train on two versions of it; put it back as it was"
            )
