"""The C allocator an align_lab run's process uses (docs/memory.md, "The allocator").

glibc's malloc hands every freed block of a MiB or more (align_lab.MMAP_THRESHOLD) back to the kernel,
which zeroes fresh pages at the next allocation: one SmolLM2 GRPO update (2 x 4 completions of 64 tokens)
took ~700,000 page faults and 2.0-3.6 s of kernel time on the 2-core Xeon. gperftools' tcmalloc keeps freed
blocks for the next tensor of their size: the step 26% faster there (6.4 s against 8.6-8.8) for ~80 MiB
more peak (benchmarks/RESULTS.md). An allocator is chosen when a process starts (LD_PRELOAD), so
`python -m align_lab` starts itself again, once, with the library preloaded (`restart`); the jobs it
launches (submitit, Slurm) inherit its environment. Debian's libtcmalloc-minimal4 (scripts/setup.sh
installs it where it may); none installed: glibc's malloc, as before. The numbers a run computes do not
depend on it; summary.json records which one ran ("malloc").

ALIGN_LAB_MALLOC=system keeps glibc's malloc; ALIGN_LAB_MALLOC=<path> preloads that library instead; an
LD_PRELOAD the user set is left as it is (no restart; a note when it overrides ALIGN_LAB_MALLOC's path).
The restart's LD_PRELOAD reaches the programs a run starts (git, sbatch, the jobs), which is how the
jobs get the allocator; ALIGN_LAB_MALLOC=system in a job does not take away an LD_PRELOAD it inherited.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence

# gperftools' tcmalloc without its profiler (Debian's libtcmalloc-minimal4)
LIBRARY = "libtcmalloc_minimal.so.4"
DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
SWITCH = "ALIGN_LAB_MALLOC"  # "system": glibc's malloc; a path: that library
KNOWN = ("tcmalloc", "jemalloc", "mimalloc")  # what `loaded` recognises in the process's mappings


def library(environ: Mapping[str, str], dirs: Sequence[str] = DIRS, name: str = LIBRARY) -> str | None:
    """The allocator library this process should start with: ALIGN_LAB_MALLOC's path, else `name` in the
    first of `dirs` that holds it. None: ALIGN_LAB_MALLOC=system, an LD_PRELOAD already set (the user's,
    or this process's own after `restart`), or no library installed. A path that is not a file, or not a
    shared library (an ELF file), is refused in one line (ValueError)."""
    choice = environ.get(SWITCH, "")
    if choice == "system" or environ.get("LD_PRELOAD"):
        return None
    if choice:
        return checked(choice)
    return next((p for d in dirs if os.path.isfile(p := os.path.join(d, name))), None)


def checked(path: str) -> str:
    """`path`, if it is an ELF file (what ld.so can preload); else a one-line ValueError naming it."""
    allowed = "system, or the path of a malloc library"
    if not os.path.isfile(path):
        raise ValueError(f"{SWITCH}={path}: no such file (allowed: {allowed})")
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            raise ValueError(f"{SWITCH}={path}: not a shared library (allowed: {allowed})")
    return path


def ignored(environ: Mapping[str, str]) -> str | None:
    """The note for a library named in ALIGN_LAB_MALLOC while an LD_PRELOAD without it is set (the
    user's, which wins); None otherwise."""
    choice, preload = environ.get(SWITCH, ""), environ.get("LD_PRELOAD", "")
    if choice in ("", "system") or not preload or choice in preload.replace(":", " ").split():
        return None
    return f"align_lab: note: LD_PRELOAD={preload} is set, so {SWITCH}={choice} is not loaded"


def restart(
    environ: Mapping[str, str],
    argv: Sequence[str],
    executable: str = sys.executable,
    execve: Callable = os.execve,
    dirs: Sequence[str] = DIRS,
    module: str = "align_lab",
) -> None:
    """Starts this process again (same pid, same command line `argv`: sys.orig_argv) with `library`
    preloaded; returns (glibc's malloc stays) when there is none to load, the command line is not
    `python -m <module>` (a harness running align_lab's __main__ in its own process) or the restart
    fails."""
    on_linux = sys.platform.startswith("linux")  # elsewhere LD_PRELOAD is not how a malloc is chosen
    if not (on_linux and started_as(argv, module)):
        return
    path = library(environ, dirs)
    if path is None:
        if (note := ignored(environ)) is not None:
            print(note, file=sys.stderr)
        return
    try:
        execve(executable, list(argv), {**environ, "LD_PRELOAD": path})
    except OSError as e:  # the interpreter could not be started again: carry on as we are
        note = f"align_lab: note: {SWITCH}: could not restart with {path} ({e}); glibc's malloc"
        print(note, file=sys.stderr)


def start_with_it(module: str) -> None:
    """What a command's __main__ calls first (`python -m <module>`): `restart` with the user's environment
    (what the import of align_lab set, align_lab.SET_ENV, it sets again once restarted); a bad
    ALIGN_LAB_MALLOC ends the command in one line, exit code 2."""
    from align_lab import SET_ENV

    try:
        restart({k: v for k, v in os.environ.items() if k not in SET_ENV}, sys.orig_argv, module=module)
    except ValueError as e:
        print(f"{module}: error: {e}", file=sys.stderr)
        sys.exit(2)


def started_as(argv: Sequence[str], module: str = "align_lab") -> bool:
    """Whether `argv` (sys.orig_argv) is `python [options] -m <module> [args]`: the interpreter's own -m,
    not a tool's that runs align_lab in turn (`python -m pdb -m align_lab`: never restarted)."""
    after = list(argv[argv.index("-m") + 1 :]) if "-m" in argv else []
    return after[:1] == [module]


def loaded(maps: str = "/proc/self/maps", chosen: str | None = None) -> str:
    """The malloc this process runs with: the file name of an allocator library it has mapped (one of
    KNOWN, or `chosen`, by default the one ALIGN_LAB_MALLOC names; a link's target:
    libtcmalloc_minimal.so.4.5.10), else "glibc" (also where /proc is not there to say)."""
    chosen = os.environ.get(SWITCH, "") if chosen is None else chosen
    paths = [p for p in chosen.replace(":", " ").split() if p != "system"]  # mapped: links resolved
    named = {os.path.basename(os.path.realpath(p)) for p in paths} | {os.path.basename(p) for p in paths}
    try:
        with open(maps) as f:
            names = {os.path.basename(line.split()[-1]) for line in f if "/" in line}
    except OSError:
        return "glibc"
    found = sorted(n for n in names if n in named or any(k in n for k in KNOWN))
    return found[0] if found else "glibc"
