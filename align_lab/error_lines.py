"""The one line for an error that ends a command before its run starts (align_lab/__main__.py, the Hydra app
in align_lab/app.py): ours, Hydra's and OmegaConf's composition errors, a config file that is no YAML, and
the OS's on the folder Hydra makes; None for anything else (its traceback is the user's to read)."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

from align_lab.value_checks import ConfigError

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def missing_primary(name: str, text: str) -> str:
    """`--config-name nope`: the folder searched and the configs it has, not Hydra's search path (its
    pkg:// and structured:// entries hold none a user can name)."""
    import re

    dirs = re.findall(r"provider=command-line, path=file://([^\n\t]+)", text) or [CONF]
    folder = Path(dirs[-1])
    have = sorted(p.stem for p in folder.glob("*.yaml"))
    return f"--config-name {name}: no {name}.yaml in {folder}; its configs: {', '.join(have) or 'none'}"


def file_in_the_way(path) -> str:
    """`path`, or its first part that exists and is no folder (a file `outputs` beside you, where the run
    folder outputs/<date>/<time> was to be made), said as what it is: a file, or a link to nothing (its
    target removed or not mounted: said "a file", hunt of 2026-12-04, c58)."""
    for part in [*reversed(Path(str(path)).parents), Path(str(path))]:
        if part.is_symlink() and not part.exists():
            return f"{part}: a link to {os.readlink(part)}, which does not exist (removed, or not mounted)"
        if part.exists() and not part.is_dir():
            return f"{part}: is a file, not a folder"
    return f"{path}: is a file, not a folder"


def folder_key() -> str:
    """The key that names the folder Hydra makes: hydra.sweep.dir with -m, else hydra.run.dir."""
    return "hydra.sweep.dir" if {"-m", "--multirun"} & set(sys.argv) else "hydra.run.dir"


def file_being_written(e: BaseException) -> str | None:
    """The path of the file open for writing in the innermost frame that holds one, where the error (a
    write's or a flush's) names none: Hydra's multirun.yaml on a full disk read "cannot write the run
    folder" (twenty-third hunt, case 24)."""
    frames = []
    tb = e.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            name, mode = getattr(value, "name", None), getattr(value, "mode", "")
            if isinstance(name, str) and isinstance(mode, str) and set(mode) & set("wax+"):
                return name
    return None


def failed_in_mkdir(e: BaseException) -> bool:
    """The error was raised inside pathlib's or os's mkdir (its last frame): a folder being made."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_name in ("mkdir", "makedirs")


def format_error(e: BaseException) -> str | None:
    """One line for configuration errors (ours and Hydra's); None for anything else."""
    import yaml
    from hydra import errors
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(e, ConfigError):
        return str(e)
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:  # a config of yours (--config-dir)
        mark = (
            e.problem_mark
        )  # that is no YAML: a 123-line traceback (fresh hunt of 2026-12-04, s3_cfgdir_yaml)
        where = f"{mark.name} line {mark.line + 1} column {mark.column + 1}"
        return f"{where}: not valid YAML ({e.problem}); fix the file"
    if isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC):
        # Hydra's own writes (the run folder's .hydra/ and app.log) fail before align_lab's code runs
        what = e.filename or file_being_written(e) or "the run folder"
        if e.errno == errno.ENOSPC:  # the folder is right; the device is full (twentieth hunt, case 11)
            fix = f"free space there and rerun, or choose another {folder_key()}"
            return f"cannot write {what} ({e.strerror}); {fix}"
        return f"cannot write {what} ({e.strerror}); choose a writable {folder_key()}"
    if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG:  # Hydra's mkdir (2026-12-04: a traceback)
        long = f"a name in it past 255 bytes or its path past 4096 ({e.strerror})"
        return f"{folder_key()}={e.filename}: {long}; choose a shorter path"
    if isinstance(e, FileNotFoundError) and failed_in_mkdir(e):  # /proc/x: a folder that cannot be made
        return f"cannot make {e.filename} ({e.strerror}); choose a writable {folder_key()}"
    if isinstance(e, FileExistsError | NotADirectoryError):  # Hydra's mkdir of a run or sweep folder: the
        in_way = file_in_the_way(e.filename)  # file in the way, not the folder to be made (2026-12-04 hunt)
        return f"{in_way}; choose another {folder_key()}"
    if isinstance(e, OmegaConfBaseException) and getattr(e, "full_key", None):
        return f"{e.full_key}: {str(e).splitlines()[0]}"
    if isinstance(e, errors.MissingConfigException) and e.options is not None:  # hydra/launcher/nope: nested
        group, _, bad = (e.missing_cfg_file or "").rpartition("/")
        group = group or "group"
        return f"{group}={bad}: unknown choice; allowed: {', '.join(sorted(e.options))}"
    if isinstance(e, errors.SearchPathException) and "config directory" in str(e):  # --config-dir nope
        folder = str(e).split("'")[1] if str(e).count("'") >= 2 else "--config-dir"
        return f"--config-dir {folder}: no such folder; name the folder of your config (e.g. sweeps)"
    if isinstance(e, errors.MissingConfigException) and "primary config" in str(e):
        return missing_primary(e.missing_cfg_file or "", str(e))
    if isinstance(
        e, (errors.ConfigCompositionException, errors.OverrideParseException, errors.MissingConfigException)
    ):
        text = " ".join(str(e).split())
        cause = e.__cause__
        if cause is not None and "not in struct" in str(cause):  # the closest key, not a `+` that fails later
            from align_lab.unknown_keys import unknown_key

            parent = getattr(cause, "parent_node", None)
            return unknown_key(getattr(cause, "full_key", ""), parent if parent is not None else {})
        if isinstance(cause, OmegaConfBaseException) and "Cannot merge DictConfig" in str(cause):
            from align_lab.unknown_keys import not_a_mapping  # plan=[1,2]

            return not_a_mapping(text.removeprefix("Error merging override "), cause)
        return text
    cause = e.__cause__ or e.__context__
    return format_error(cause) if cause is not None and cause is not e else None
