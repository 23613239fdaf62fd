"""`python -m align_lab` starts itself again, once, with tcmalloc preloaded where it is installed
(align_lab/malloc.py; docs/memory.md, "The allocator"): which library, when not, and what a run records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from align_lab import malloc
from tests.conftest import ROOT, SMALL

ARGV = ["/usr/bin/python3", "-u", "-m", "align_lab", "algo=rloo"]


def fake_library(folder: Path, name: str = malloc.LIBRARY) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"\x7fELF")
    return str(folder / name)


def test_the_first_folder_holding_the_library_gives_it(tmp_path) -> None:
    second = fake_library(tmp_path / "b")
    dirs = [str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c")]
    assert malloc.library({}, dirs) == second
    fake_library(tmp_path / "a")
    assert malloc.library({}, dirs) == str(tmp_path / "a" / malloc.LIBRARY)
    assert malloc.library({}, [str(tmp_path / "none")]) is None  # not installed: glibc's malloc


def test_system_or_the_users_own_preload_keeps_the_process_as_it_is(tmp_path) -> None:
    dirs = [str(tmp_path)]
    fake_library(tmp_path)
    assert malloc.library({malloc.SWITCH: "system"}, dirs) is None
    assert malloc.library({"LD_PRELOAD": "/opt/libmine.so"}, dirs) is None
    assert malloc.library({"LD_PRELOAD": ""}, dirs) == str(tmp_path / malloc.LIBRARY)


def test_a_library_named_in_the_switch_is_used_and_a_missing_one_refused_in_one_line(tmp_path) -> None:
    mine = fake_library(tmp_path, "libjemalloc.so.2")
    assert malloc.library({malloc.SWITCH: mine}, []) == mine
    with pytest.raises(ValueError) as e:
        malloc.library({malloc.SWITCH: str(tmp_path / "libnone.so")}, [])
    message = str(e.value)
    assert "\n" not in message and malloc.SWITCH in message and "libnone.so" in message
    assert "allowed: system" in message
    (tmp_path / "notes.txt").write_text("not a library")  # ld.so would only warn, and go on with glibc
    with pytest.raises(ValueError, match=r"notes.txt: not a shared library \(allowed: system"):
        malloc.library({malloc.SWITCH: str(tmp_path / "notes.txt")}, [])


def test_a_library_named_while_the_users_preload_is_set_is_not_loaded_and_a_note_says_so(tmp_path, capsys):
    mine = fake_library(tmp_path, "libjemalloc.so.2")
    calls = []
    for preload in ["/opt/libmine.so", f"/opt/libmine.so:{mine}"]:
        environ = {malloc.SWITCH: mine, "LD_PRELOAD": preload}
        malloc.restart(environ, ARGV, "/venv/bin/python", lambda *a: calls.append(a), [])
    assert calls == []
    err = capsys.readouterr().err.splitlines()
    note = f"align_lab: note: LD_PRELOAD=/opt/libmine.so is set, so {malloc.SWITCH}={mine} is not loaded"
    assert err == [note]


def test_restart_runs_the_same_command_line_with_the_library_preloaded(tmp_path) -> None:
    path = fake_library(tmp_path)
    calls, dirs = [], [str(tmp_path)]
    malloc.restart({"HOME": "/h"}, ARGV, "/venv/bin/python", lambda *a: calls.append(a), dirs)
    assert calls == [("/venv/bin/python", ARGV, {"HOME": "/h", "LD_PRELOAD": path})]
    # once: the restarted process has LD_PRELOAD; another module running align_lab's __main__ (a test
    # harness) is never restarted; nor is a process told to keep glibc's
    for environ, argv in [
        ({"LD_PRELOAD": path}, ARGV),
        ({}, ["python", "-m", "tests.forked_cli"]),
        ({}, ["python", "-m", "pdb", "-m", "align_lab"]),  # a debugger's session is not started over
        ({malloc.SWITCH: "system"}, ARGV),
    ]:
        malloc.restart(environ, argv, "/venv/bin/python", lambda *a: calls.append(a), dirs)
    assert len(calls) == 1


def test_a_failed_restart_carries_on_with_glibcs_malloc(tmp_path, capsys) -> None:
    fake_library(tmp_path)

    def refuse(*_):
        raise PermissionError(13, "Permission denied")

    malloc.restart({}, ARGV, "/venv/bin/python", refuse, [str(tmp_path)])  # returns
    assert "could not restart" in capsys.readouterr().err


def test_loaded_names_the_preloaded_allocator_from_the_process_mappings(tmp_path) -> None:
    maps = tmp_path / "maps"
    line = "7f0000000000-7f0000001000 r-xp 00000000 fd:01 123 {}\n"
    tcmalloc = "/usr/lib/x86_64-linux-gnu/" + malloc.LIBRARY
    maps.write_text(line.format("/usr/lib/libc.so.6") + line.format(tcmalloc))
    assert malloc.loaded(str(maps), "") == malloc.LIBRARY
    maps.write_text(line.format("/usr/lib/libc.so.6") + line.format("/opt/libmymalloc.so"))
    assert malloc.loaded(str(maps), "") == "glibc"
    assert malloc.loaded(str(maps), "/opt/libmymalloc.so") == "libmymalloc.so"  # named by ALIGN_LAB_MALLOC
    assert malloc.loaded(str(tmp_path / "absent")) == "glibc"


def run_align_lab(tmp_path: Path, cache: Path, **env: str) -> subprocess.CompletedProcess:
    """A real `python -m align_lab` process (a one-step run; the session's stage cache)."""
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", malloc.SWITCH)}
    # the tests' small world (SMALL), whose stages the suite's other runs share in the session's cache: the
    # default world's larger SFT and reward model prove nothing about the allocator, which is chosen
    # before any stage and recorded in summary.json however big the run (a wrong record still fails)
    small = [o for o in SMALL if not o.startswith("train.steps=")]
    args = [sys.executable, "-m", "align_lab", *small, "train.steps=1"]
    args += [f"hydra.run.dir={tmp_path / 'run'}", f"cache_dir={cache}"]
    return subprocess.run(args, env={**base, **env}, cwd=ROOT, capture_output=True, text=True, timeout=600)


# slow (docs/testing.md, the fast tier): whole `python -m align_lab` runs (about 7 s of CPU each test); the
# fast tier keeps the choice, the restart's command line and the record's reading (the tests above)
@pytest.mark.slow
def test_a_run_records_the_malloc_it_ran_with(tmp_path, cache_dir) -> None:
    installed = malloc.library({})
    out = run_align_lab(tmp_path, cache_dir)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["malloc"] == (Path(installed).resolve().name if installed else "glibc")


@pytest.mark.slow  # two `python -m align_lab` processes, as above
def test_a_run_told_to_keep_glibc_keeps_it_and_a_missing_library_stops_it_before_anything(
    tmp_path, cache_dir
) -> None:
    out = run_align_lab(tmp_path, cache_dir, **{malloc.SWITCH: "system"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["malloc"] == "glibc"
    bad = run_align_lab(tmp_path / "bad", cache_dir, **{malloc.SWITCH: "/nonexistent/libtcmalloc.so"})
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"align_lab: error: {malloc.SWITCH}=/nonexistent/libtcmalloc.so: no such file "
        "(allowed: system, or the path of a malloc library)"
    ]
    assert not (tmp_path / "bad").exists()  # nothing made
