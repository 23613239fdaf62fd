"""Content-addressed stage artifacts: built once per key, shared by concurrent runs through a file lock."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from align_lab.config import ConfigError
from align_lab.file_kinds import special

DONE = ".done"  # written last; holds each file's size and sha256, checked before the entry is served
DISK_FULL_BYTES = 64 * 2**20  # free space under which a failed write is taken for a full disk


def disk_full_error(e: BaseException, path: Path) -> OSError | None:
    """The OSError(ENOSPC) naming `path` for a write that failed on a full disk, whatever the writer
    raised for it (safetensors: SafetensorError "StorageFull", torch.save: RuntimeError "unexpected
    pos"; both are told apart from other errors by the free space left), or the OSError(EFBIG) for one
    that met the process's file size limit (`ulimit -f`, as on some login nodes: hunt of 2026-12-04, an
    84-line traceback at the final checkpoint); None otherwise."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return e if e.filename else OSError(e.errno, e.strerror, str(path))
    if not isinstance(e, Exception) or isinstance(e, OSError):
        return None
    if past_size_limit(e, path):
        return OSError(errno.EFBIG, "File too large", str(path))
    try:
        full = shutil.disk_usage(path if path.exists() else path.parent).free < DISK_FULL_BYTES
    except OSError:
        return None
    return OSError(errno.ENOSPC, "No space left on device", str(path)) if full else None


def past_size_limit(e: Exception, path: Path) -> bool:
    """A write that failed at the process's file size limit (RLIMIT_FSIZE): said so by the error
    (safetensors: "os error 27"), or the file it wrote reached the limit (torch.save's "unexpected pos")."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return False
    try:
        # within a MiB of it, or half of a limit under 2 MiB (any file was "at" a limit under 1 MiB)
        return f"os error {errno.EFBIG})" in str(e) or path.stat().st_size >= limit - min(2**20, limit // 2)
    except OSError:
        return False


def size_limit() -> str:
    """This process's file size limit in words: "the file size limit of this process (200 KiB)"."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    said = "none" if limit == resource.RLIM_INFINITY else f"{limit // 1024:,} KiB"
    return f"the file size limit of this process ({said})"


_DIGESTS: dict[tuple, str] = {}  # a file's (device, inode, size, mtime, ctime) -> sha256, in this process


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MB blocks; read once per process while the file keeps its
    inode, size, mtime and ctime (any write moves its ctime), so an entry built or served before in the
    same process (a sweep's admissions: a 517 MB converted SmolLM2 each) is not hashed again."""
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)  # a rename keeps them
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def manifest(folder: Path) -> dict[str, list]:
    """{relative path: [size, sha256]} of every file below `folder` (DONE itself excluded)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DONE)
    return {str(p.relative_to(folder)): [p.stat().st_size, file_digest(p)] for p in files}


def damage(folder: Path) -> str | None:
    """None when every file of a built entry has the size and sha256 recorded at build time; else what
    differs, in a few words."""
    try:
        expected = json.loads((folder / DONE).read_text())
    except (ValueError, OSError):
        return f"its {DONE} manifest is unreadable"
    for name, (size, digest) in expected.items():
        f = folder / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size:,} bytes, not {size:,}"
        if file_digest(f) != digest:
            return f"{name} does not match its sha256"
    return None


def default_cache_dir() -> Path:
    """$ALIGN_LAB_CACHE, else the user's cache dir (e.g. ~/.cache/align_lab)."""
    env = os.environ.get("ALIGN_LAB_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("align_lab"))


CACHE_FORMAT = 2  # 2: DONE holds a manifest of sizes and hashes (entries of format 1 had none)


def stage_key(stage: str, version: int, inputs: dict) -> str:
    """sha256 over the stage name, its code version, the cache format and every input (canonical
    JSON), 16 hex chars."""
    blob = {"stage": stage, "version": version, "inputs": inputs, "cache_format": CACHE_FORMAT}
    blob = json.dumps(blob, sort_keys=True, default=str)
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
        if (path / DONE).exists() and damage(path) is None:
            return StageResult(stage, key, path, True, time.perf_counter() - start)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tagged(self.root)
        except (FileExistsError, NotADirectoryError) as e:
            raise self._blocked(e) from None
        with FileLock(str(path) + ".lock"):
            if (path / DONE).exists() and self._sound(path):  # another run built it while we waited
                return StageResult(stage, key, path, True, time.perf_counter() - start)
            remove_orphans(path.parent, key)  # half-built folders of builders that died (SIGKILL, OOM)
            tmp = path.with_name(f"{key}.tmp-{os.getpid()}")
            shutil.rmtree(path, ignore_errors=True)  # a half-built folder from a killed run
            if path.is_symlink() or path.exists():  # a file (a pipe, a link) at the entry's own name: the
                path.unlink()  # cache's to replace (its rename blamed hydra.run.dir: sixth hunt, 2026-12-04)
            tmp.mkdir()
            try:
                build(tmp)
                (tmp / "inputs.json").write_text(json.dumps(inputs, sort_keys=True, indent=1, default=str))
                (tmp / DONE).write_text(json.dumps(manifest(tmp), indent=1))
                tmp.rename(path)
            except BaseException as e:  # a failed build leaves nothing half-written behind
                shutil.rmtree(tmp, ignore_errors=True)
                full = disk_full_error(e, tmp)  # the entry is cleaned, the others kept
                if full is not None and full is not e:
                    raise full from e
                raise
        return StageResult(stage, key, path, False, time.perf_counter() - start)

    def _blocked(self, e: OSError) -> ConfigError:
        """A file where the cache keeps a stage's folder: the cache's fault, named as such (Hydra's own
        mkdir errors are the run folder's, and app.format_error blames hydra.run.dir for those)."""
        where = e.filename or self.root
        return ConfigError(
            f"cache_dir={self.root}: {where} is a file where the stage cache keeps a folder; move it away, "
            "or choose another cache_dir"
        )

    @staticmethod
    def _sound(path: Path) -> bool:
        """Checks a built entry before serving it; a damaged one is reported in one line and rebuilt."""
        problem = damage(path)
        if problem is not None:
            import sys

            print(f"align_lab: stage cache: {path} is damaged ({problem}); rebuilding it", file=sys.stderr)
        return problem is None


def remove_orphans(stage_dir: Path, held: str) -> list[Path]:
    """Removes `<key>.tmp-<pid>` folders whose builder is gone, under the lock of key `held` (the
    caller's): every tmp folder of that key is an orphan; of another key, one whose `<key>.lock` can be
    taken at once (a live builder holds it, on whatever machine shares the cache). Returns them."""
    from filelock import FileLock, Timeout

    removed = []
    for tmp in sorted(stage_dir.glob("*.tmp-*")):
        key = tmp.name.split(".tmp-")[0]
        if key == held:
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
            continue
        try:
            with FileLock(str(stage_dir / key) + ".lock").acquire(timeout=0):
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
        except Timeout:  # another process is building that key right now
            continue
    return removed


CACHEDIR_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# a stage cache of align_lab's: https://bford.info/cachedir/\n"


def tagged(root: Path) -> None:
    """root/CACHEDIR.TAG, as the cache-directory standard marks a cache (backup tools pass over it): a
    cache in the folder of the user's code is none of its inputs (user_folders.py passes over it too)."""
    tag = root / "CACHEDIR.TAG"
    if not tag.exists():  # whole or not at all: two runs may write it at once
        tmp = root / f".CACHEDIR.TAG.{os.getpid()}"
        tmp.write_text(CACHEDIR_TAG)
        os.replace(tmp, tag)


def usable_cache_dir(value) -> Path:
    """The stage cache folder, checked writable (it is made when a stage is built); one line if it cannot
    be (a file, /proc, no rights)."""
    path = Path(value).expanduser() if value else default_cache_dir()
    typed = value or not os.environ.get("ALIGN_LAB_CACHE")  # else its variable, not a cache_dir never typed
    key = f"cache_dir={path}" if typed else f"ALIGN_LAB_CACHE={path} (cache_dir=null)"  # (sixth hunt)
    if path.exists() and not path.is_dir():
        fix = "(or null: the user cache dir)" if typed else "(unset it, or set cache_dir=<a folder>)"
        raise ConfigError(f"{key}: is {special(path) or 'a file'}; must be a folder {fix}")
    created = next((p for p in reversed([path, *path.parents]) if not p.exists()), None)
    try:  # tried by making it, then undone: a refused run leaves nothing behind
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
    except OSError as e:
        raise ConfigError(f"{key}: cannot write there ({e.strerror}); choose a writable folder") from None
    return path
