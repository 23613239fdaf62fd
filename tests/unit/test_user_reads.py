"""user_reads.py: what the user's code reads as it runs (issue 73's seventh to ninth hunts), noted from the
process's start: files opened, folders listed, files handed to a command, environment variables read by
name; and what is not the user's input (align_lab's own reads, a file the process wrote, a library's read
of a variable, a copy of the whole environment, a launcher's variables)."""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from pathlib import Path

import pytest

from align_lab.user_code import PACKAGE
from align_lab.user_reads import digest_now, used_by_user_code, watch, where_now
from tests.conftest import written_elsewhere


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Writes a module of the user's (outside the checkout) and imports it, watched from before."""
    watch()
    monkeypatch.syspath_prepend(str(tmp_path))
    names = []

    def make(name: str, source: str):
        (tmp_path / f"{name}.py").write_text(source)
        names.append(name)
        return importlib.import_module(name)

    yield make
    for name in names:
        sys.modules.pop(name, None)


def test_a_file_your_code_opened_is_kept_and_a_swapped_link_is_seen(tmp_path, user_module):
    """A JSON of settings read through a link: the link's file now, not the file it pointed to (ninth
    hunt: the link swapped to another file resumed in silence)."""
    (tmp_path / "a.json").write_text('{"W": 1}')
    (tmp_path / "b.json").write_text('{"W": 10}')
    link = tmp_path / "w9.json"
    link.symlink_to(tmp_path / "a.json")
    user_module("reads_settings9", "def read(path):\n    return open(path).read()\n").read(str(link))
    key = f"file {link}"
    record = used_by_user_code()[key]
    assert record == {"file": str(link), "sha256": hashlib.sha256(b'{"W": 1}').hexdigest()[:16]}
    link.unlink()
    link.symlink_to(tmp_path / "b.json")
    assert digest_now(key, record) == hashlib.sha256(b'{"W": 10}').hexdigest()[:16]


def test_align_labs_own_reads_are_not_the_users_even_under_a_users_script(tmp_path, user_module):
    """A user's script that calls align_lab, which opens a file (a checkpoint, a summary): not a file of
    the user's code (the innermost of the two on the stack decides)."""
    data = tmp_path / "summary.json"
    data.write_text('{"status": "completed"}')
    script = user_module(
        "script9",
        "from align_lab.folder import read_summary\n\n\ndef main(path):\n    try:\n"
        "        read_summary(path)\n    except ValueError:\n        pass\n",
    )
    script.main(data)
    assert f"file {data}" not in used_by_user_code()


def test_the_environment_variables_your_code_read_are_kept_as_digests(user_module, monkeypatch):
    """`os.environ[...]`, `.get`, `os.getenv`, `in`, `os.environb`, and at a module's top level as it is
    imported: each variable the user's code reads, set or not, is kept (a digest, never the value); a copy
    of the whole environment (a subprocess's), a scheduler's own and align_lab's reads are not."""
    monkeypatch.setenv("A9", "x")
    monkeypatch.setenv("OTHER9", "y")
    os.environ.get("E9")  # align_lab's (a test's) own read
    reader = user_module(
        "reads_env9",
        "import os\n\nTOP = os.environ.get('T9')\n\n\ndef read():\n"
        "    os.environ['A9']\n    os.environ.get('B9')\n    os.getenv('C9')\n    'D9' in os.environ\n"
        "    os.environb.get(b'F9')\n"
        "    dict(os.environ)\n    os.environ.copy()\n    list(os.environ.items())\n    {**os.environ}\n"
        "    os.environ.get('SLURM_JOB_ID')\n    os.environ.get('RANK')\n"
        "    import getpass, subprocess\n    getpass.getuser()\n    subprocess.run(['true'])\n",
    )
    reader.read()
    noted = {k: v for k, v in used_by_user_code().items() if k.startswith("env ")}
    assert {f"env {n}9" for n in "ABCDFT"} <= set(noted), sorted(noted)
    # the standard library's reads for the user's call (ninth hunt: $PATH for subprocess, $LOGNAME for
    # getpass, refused a resume after a venv was activated) are not the user's settings
    assert not {"env OTHER9", "env E9", "env SLURM_JOB_ID", "env RANK", "env PATH", "env LOGNAME"} & set(
        noted
    )
    assert noted["env A9"] == {"file": "$A9", "sha256": hashlib.sha256(b"x").hexdigest()[:16]}
    assert noted["env B9"]["sha256"] == "unset"


def test_a_variable_that_names_a_copy_of_its_settings_file_reads_as_unchanged(
    tmp_path, user_module, monkeypatch
):
    """Fifteenth hunt: `$REWARD15_CFG` naming a copy of the same settings file (a requeued job's staging
    folder) was refused as a changed variable; a copy with other content is still a change."""
    a, b, c = (tmp_path / d / "c.json" for d in "abc")
    for path, text in ((a, "{}"), (b, "{}"), (c, '{"w": 10}')):
        path.parent.mkdir()
        path.write_text(text)
    monkeypatch.setenv("CFG15", str(a))
    user_module("reads_cfg15", "import os\n\n\ndef read():\n    return os.environ['CFG15']\n").read()
    record = used_by_user_code()["env CFG15"]
    monkeypatch.setenv("CFG15", str(b))
    assert digest_now("env CFG15", record) == record["sha256"]
    monkeypatch.setenv("CFG15", str(c))
    assert digest_now("env CFG15", record) != record["sha256"]


def test_a_file_your_code_wrote_and_what_a_library_reads_for_it_are_no_inputs(
    tmp_path, user_module, monkeypatch
):
    """A temporary file the user's code writes then reads back is its output (a resume would find it
    gone); TMPDIR, which tempfile reads for it (a scheduler may set it for each job), is not its setting."""
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    reader = user_module(
        "temp_reader9",
        "import os, tempfile\n\n\ndef read():\n"
        "    fd, name = tempfile.mkstemp()\n    os.close(fd)\n"
        "    with open(name, 'w') as f:\n        f.write('1')\n"
        "    with open(name) as f:\n        f.read()\n"
        "    return name\n",
    )
    name = reader.read()
    used = used_by_user_code()
    assert f"file {name}" not in used and "env TMPDIR" not in used, sorted(used)


def test_a_folder_your_code_listed_and_a_file_it_handed_to_a_command_are_kept(tmp_path, user_module):
    """A reward summing every JSON of a folder (glob: a file added), and one running `cat w9.txt` or
    a script of theirs in a subprocess (the file edited): ninth hunt, resumed in silence."""
    folder = tmp_path / "w9dir"
    folder.mkdir()
    written_elsewhere(folder / "a.json", "1")  # not by this process, whose own files are its outputs
    written_elsewhere(tmp_path / "w9.txt", "1.0")
    reader = user_module(
        "lists_and_runs9",
        "import glob, os, subprocess, sys\n\n\ndef read(folder, here):\n"
        "    glob.glob(os.path.join(folder, '*.json'))\n"
        "    subprocess.run(['cat', 'w9.txt'], cwd=here, capture_output=True, check=True)\n",
    )
    reader.read(str(folder), str(tmp_path))
    used = used_by_user_code()
    listed, ran = used[f"folder {folder}"], used[f"arg {tmp_path / 'w9.txt'}"]
    written_elsewhere(folder / "b.json", "10")
    written_elsewhere(tmp_path / "w9.txt", "10.0")
    assert digest_now(f"folder {folder}", listed) != listed["sha256"]
    assert digest_now(f"arg {tmp_path / 'w9.txt'}", ran) != ran["sha256"]


def test_a_script_run_through_a_shell_command_line_is_kept(tmp_path, user_module):
    """Thirty-first hunt, case 38: `subprocess.run("sh scale.sh", shell=True)` is [/bin/sh, -c, "sh
    scale.sh"]: the script was inside one word, never kept, and a sweep's run #1 trained on its edit."""
    written_elsewhere(tmp_path / "scale31.sh", "echo 1.0")
    runner = user_module(
        "runs_a_shell31",
        "import subprocess\n\n\ndef read(here):\n"
        "    subprocess.run('sh scale31.sh > /dev/null', shell=True, cwd=here, check=True)\n",
    )
    runner.read(str(tmp_path))
    assert f"arg {tmp_path / 'scale31.sh'}" in used_by_user_code()


def test_a_file_named_by_bytes_relative_or_in_dev_shm_is_kept(tmp_path, user_module, monkeypatch):
    """Ninth hunt: a path given as bytes, a file in /dev/shm (a memory-backed folder, not a device), and a
    name relative to the working folder, which a resume from another folder reads from there."""
    for name in ("wb9.json", "wrel9.json"):
        written_elsewhere(tmp_path / name, "1")
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    if shm is not None:
        shm = shm / f"w9shm_{os.getpid()}.json"
        written_elsewhere(shm, "1")
    monkeypatch.chdir(tmp_path)
    reader = user_module(
        "reads_named9",
        "import os\n\n\ndef read(paths):\n    for p in paths:\n        open(p).read()\n",
    )
    try:
        reader.read([os.fsencode(tmp_path / "wb9.json"), "wrel9.json", *([str(shm)] if shm else [])])
        used = used_by_user_code()
        assert f"file {tmp_path / 'wb9.json'}" in used
        if shm is not None:
            assert f"file {shm}" in used
        key = f"file {tmp_path / 'wrel9.json'}"
        record = used[key]
        assert record["relative"] == "wrel9.json"
        elsewhere = tmp_path / "u2"
        elsewhere.mkdir()
        written_elsewhere(elsewhere / "wrel9.json", "10")
        monkeypatch.chdir(elsewhere)  # the same command from another folder reads its own wrel9.json
        assert digest_now(key, record) == hashlib.sha256(b"10").hexdigest()[:16]
        assert where_now(record) == str(elsewhere / "wrel9.json")
    finally:
        if shm is not None:
            shm.unlink()


def test_a_variable_the_run_sets_as_it_goes_is_read_as_it_was_before(user_module, monkeypatch):
    """Tenth hunt: DS_ACCELERATOR and TORCHINDUCTOR_CACHE_DIR, set in the run's process by the libraries
    align_lab calls, were said changed on every resume of a reward that starts a command (a fresh process
    has them unset); a variable the user's code reads that the run set, likewise. A change by anyone else
    (the user's shell, a test's monkeypatch) is what it is."""
    from align_lab.user_environ import env_digest, environment_digests

    monkeypatch.delenv("SET_BY_RUN10", raising=False)
    monkeypatch.setenv("SET_BY_USER10", "a")
    before = environment_digests()
    from align_lab.rerun import os as run_os  # align_lab's code setting a variable, as a library under it

    exec(
        compile("run_os.environ['SET_BY_RUN10'] = 'x'", str(PACKAGE / "rerun.py"), "exec"), {"run_os": run_os}
    )
    assert os.environ["SET_BY_RUN10"] == "x" and env_digest("SET_BY_RUN10") == "unset"
    assert "SET_BY_RUN10" not in environment_digests()
    monkeypatch.setenv("SET_BY_USER10", "b")
    assert environment_digests()["SET_BY_USER10"] != before["SET_BY_USER10"]
    monkeypatch.setenv("WINDOW_SIZE", "10")  # not the shell's $WINDOW (tenth hunt: a prefix hid it)
    monkeypatch.setenv("TERM", "xterm")
    assert "WINDOW_SIZE" in environment_digests() and "TERM" not in environment_digests()
    monkeypatch.delenv("SET_BY_RUN10")


def test_a_jobs_own_scratch_folder_is_no_variable_a_resume_warns_of(monkeypatch):
    """Eleventh hunt: a Slurm requeue of a run whose reward starts a command warned "$TMPDIR changed" at
    every resume: Slurm sets TMPDIR for each job, as it sets SLURM_* (skipped already)."""
    from align_lab.user_environ import environment_digests

    for name in ("TMPDIR", "TMP", "TEMP"):
        monkeypatch.setenv(name, "/tmp/slurm_4242")
    assert not {"TMPDIR", "TMP", "TEMP"} & set(environment_digests())


def test_a_package_installed_with_pip_target_is_no_users_code(tmp_path, user_module, monkeypatch):
    """A distribution installed into a folder on sys.path (`pip install --target DIR`: the tests'
    openenv-core) is installed code, as in site-packages: the template it reads is none of the user's
    inputs, nor are the files it reads for a caller (beartype's import hook read every module imported
    after it, each then taken for a file the user's code opened: CI, 2026-12-01), nor is it a user's
    module. A file of the user's that it reads beside its own is (the user's code called it)."""
    from align_lab.user_code import imported_modules

    target = tmp_path / "target"
    (target / "vendored9").mkdir(parents=True)
    (target / "vendored9" / "__init__.py").write_text("def read(path):\n    return open(path).read()\n")
    written_elsewhere(target / "vendored9" / "template.txt", "a template")
    (target / "vendored9-1.0.dist-info").mkdir()
    (target / "vendored9-1.0.dist-info" / "RECORD").write_text(
        "vendored9/__init__.py,,\nvendored9/template.txt,,\nvendored9-1.0.dist-info/RECORD,,\n"
    )
    mine = tmp_path / "mine9.json"
    written_elsewhere(mine, "{}")
    monkeypatch.setattr(sys, "path", [*sys.path, str(target)])  # after site-packages, as .pth files do
    script = user_module(
        "calls_vendored9",
        "import vendored9\ndef go(a, b):\n    return vendored9.read(a) + vendored9.read(b)\n",
    )
    try:
        script.go(str(target / "vendored9" / "template.txt"), str(mine))
        used = used_by_user_code()
        assert f"file {mine}" in used
        assert not [k for k in used if str(target) in used[k]["file"]]
        assert "module vendored9" not in imported_modules()
        assert "module calls_vendored9" in imported_modules()
    finally:
        sys.modules.pop("vendored9", None)


def test_a_listing_of_the_processs_own_descriptors_is_no_input(user_module):
    """A reward's leak check (`os.listdir("/proc/self/fd")`) made `/proc/self/fd/12 (changed)` a file beside
    the code that changed at each checkpoint (thirty-ninth hunt, case 41): the system's folders are none."""
    user_module(
        "lists_fds39", "import os\n\n\ndef count():\n    return len(os.listdir('/proc/self/fd'))\n"
    ).count()
    assert not [key for key in used_by_user_code() if key.startswith("folder /proc")]
