"""run/inputs.py: which of a config's values are the user's inputs a resume checks (issue 73 item 1): an
environment class of the user's by its module's file, a remote reward by its URL, a file by its bytes;
never align_lab's own code, an installed package, or the cache folder a run writes."""

from __future__ import annotations

import hashlib
import importlib
import os
import sys

import pytest

from align_lab.run.inputs import changed_inputs, run_inputs


def test_an_env_class_of_yours_and_a_remote_url_are_inputs_and_align_labs_code_is_not(tmp_path, monkeypatch):
    (tmp_path / "maze_env_of_yours.py").write_text("class Maze:\n    pass\n")
    (tmp_path / "notes.txt").write_text("a file\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("maze_env_of_yours")  # the run's build imported it
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "config.json").write_text("{}")  # a model saved by save_pretrained
    (tmp_path / "plain").mkdir()  # any other folder is not read whole
    config = {
        "env": {"_target_": "maze_env_of_yours.Maze"},
        "reward": {"_target_": "align_lab.rewards.remote.RemoteReward", "url": "http://scorer:8000/score"},
        "task": {"_target_": "align_lab.tasks.toy_arith.ToyArith", "path": str(tmp_path / "notes.txt")},
        "algo": {"_target_": "torch.nn.Linear"},  # installed: its version is the stage keys'
        "cache_dir": str(tmp_path),  # written, not read
        "model": {"cache_dir": str(tmp_path), "name_or_path": str(tmp_path / "saved")},
        "sft": {"folder": str(tmp_path / "plain")},
    }
    found = run_inputs(config)
    assert sorted(found) == ["env._target_", "model.name_or_path", "reward.url", "task.path"]
    source = (tmp_path / "maze_env_of_yours.py").read_bytes()
    assert found["env._target_"] == {
        "file": str(tmp_path / "maze_env_of_yours.py"),
        "sha256": hashlib.sha256(source).hexdigest()[:16],
    }
    url = b"http://scorer:8000/score"
    assert found["reward.url"] == {"file": url.decode(), "sha256": hashlib.sha256(url).hexdigest()[:16]}
    assert found["task.path"]["sha256"] == hashlib.sha256(b"a file\n").hexdigest()[:16]


def test_only_inputs_both_name_with_other_digests_are_changed():
    a, b = {"file": "f", "sha256": "aaaa"}, {"file": "f", "sha256": "bbbb"}
    assert changed_inputs(None, {"task.path": a}) == {}  # a checkpoint written before input digests
    assert changed_inputs({"task.path": a}, {"task.path": a, "reward.url": b}) == {}
    assert changed_inputs({"task.path": a, "x": a}, {"task.path": b}) == {"task.path": (a, b)}


def test_a_helper_your_module_imports_is_digested_with_it(tmp_path, monkeypatch):
    """Issue 73 hunt: reward.path=hunt_reward_of_yours:score whose module does `from hunt_helper_of_yours
    import SCALE`; the helper edited (SCALE 10 -> 1), the same command resumed in silence (only the
    module's own file was digested). Its helpers are digested with it, and a change of either is one."""
    import sys

    (tmp_path / "hunt_helper_of_yours.py").write_text("SCALE = 10\n")
    (tmp_path / "hunt_reward_of_yours.py").write_text(
        "import json\n\nfrom hunt_helper_of_yours import SCALE\n\n"
        "def score(prompts, responses):\n    return [len(r) / SCALE for r in responses]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("hunt_reward_of_yours", "hunt_helper_of_yours"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.import_module("hunt_reward_of_yours")
    config = {"reward": {"path": "hunt_reward_of_yours:score"}}
    before = run_inputs(config)["reward.path"]
    assert before["file"] == f"{tmp_path / 'hunt_reward_of_yours.py'} (and hunt_helper_of_yours.py)"
    (tmp_path / "hunt_helper_of_yours.py").write_text("SCALE = 1\n")
    after = run_inputs(config)["reward.path"]
    assert changed_inputs({"reward.path": before}, {"reward.path": after}) == {"reward.path": (before, after)}
    # a module using no module of yours keeps the digest of its own file (checkpoints written before)
    (tmp_path / "hunt_alone_of_yours.py").write_text("import json\n\ndef score(p, r):\n    return r\n")
    importlib.import_module("hunt_alone_of_yours")
    alone = run_inputs({"reward": {"path": "hunt_alone_of_yours:score"}})["reward.path"]
    source = (tmp_path / "hunt_alone_of_yours.py").read_bytes()
    assert alone["sha256"] == hashlib.sha256(source).hexdigest()[:16]


@pytest.mark.parametrize(
    "body",
    [
        "    import hunt_lazy_helper\n    return [len(r) / hunt_lazy_helper.SCALE for r in responses]\n",
        "    import importlib\n    h = importlib.import_module('hunt_lazy_helper')\n"
        "    return [len(r) / h.SCALE for r in responses]\n",
    ],
)
def test_a_helper_imported_in_the_functions_body_is_digested_before_its_first_call(
    tmp_path, monkeypatch, body
):
    """Issue 73 fourth hunt: a reward function that imports its helper inside its body (`import helper`,
    or importlib.import_module('helper')); the helper edited between a kill and the same command, the run
    resumed in silence (0.29 -> 3.38 reward): the helper, not imported when the inputs are digested, was
    not one the run used. It is found where it would be imported from, without running it."""
    import sys

    (tmp_path / "hunt_lazy_helper.py").write_text("SCALE = 10\n")
    (tmp_path / "hunt_lazy_reward.py").write_text(f"def score(prompts, responses):\n{body}")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("hunt_lazy_reward", "hunt_lazy_helper"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.import_module("hunt_lazy_reward")
    config = {"reward": {"path": "hunt_lazy_reward:score"}}
    before = run_inputs(config)["reward.path"]
    assert before["file"] == f"{tmp_path / 'hunt_lazy_reward.py'} (and hunt_lazy_helper.py)"
    assert "hunt_lazy_helper" not in sys.modules  # found, not run
    (tmp_path / "hunt_lazy_helper.py").write_text("SCALE = 1\n")
    assert run_inputs(config)["reward.path"]["sha256"] != before["sha256"]


def test_a_module_imported_from_a_zip_is_digested_by_its_archive(tmp_path, monkeypatch):
    """Issue 73 eighth hunt: a reward module in a zip on PYTHONPATH: its path (<lib>.zip/mod.py) read as a
    file said `<lib>.zip/rz8.py: is a file, not a folder; choose another hydra.run.dir`."""
    import zipfile

    from align_lab.user_code import user_module_file

    archive = tmp_path / "lib8.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped_reward8.py", "W = 1.0\n")
    monkeypatch.syspath_prepend(str(archive))
    importlib.import_module("zipped_reward8")
    try:
        assert user_module_file("zipped_reward8") == archive.resolve()
    finally:
        sys.modules.pop("zipped_reward8", None)


def test_the_files_your_code_opened_are_a_runs_own(tmp_path, monkeypatch):
    """A file the user's code opens to read is kept (a JSON of settings); a file a run before it in the
    same process opened (a sweep's earlier run) is forgotten as the next run begins (watch_opened)."""
    from align_lab.user_code import used_by_user_code, watch_opened

    settings = tmp_path / "w9.json"
    settings.write_text('{"W": 1}\n')
    (tmp_path / "reads_settings9.py").write_text("def read(path):\n    return open(path).read()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reader = importlib.import_module("reads_settings9")
    try:
        watch_opened()
        reader.read(settings)
        assert f"file {settings.resolve()}" in used_by_user_code()
        watch_opened()  # the next run in this process
        assert f"file {settings.resolve()}" not in used_by_user_code()
    finally:
        sys.modules.pop("reads_settings9", None)


def test_align_labs_own_reads_are_not_the_users_even_under_a_users_script(tmp_path, monkeypatch):
    """A user's script that calls align_lab, which opens a file (a checkpoint, a model): not a file of
    the user's code (the innermost of the two on the stack decides)."""
    from align_lab.user_code import file_digest, used_by_user_code, watch_opened

    data = tmp_path / "summary.json"
    data.write_text('{"status": "completed"}')
    (tmp_path / "script9.py").write_text(
        "from align_lab.folder import read_summary\n\n\ndef main(path):\n    try:\n"
        "        read_summary(path)\n    except ValueError:\n        pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    script = importlib.import_module("script9")
    try:
        watch_opened()
        script.main(data)
        assert f"file {data.resolve()}" not in used_by_user_code()
        assert file_digest(data) is not None
    finally:
        sys.modules.pop("script9", None)


def test_the_environment_variables_your_code_read_are_kept_as_digests(tmp_path, monkeypatch):
    """`os.environ[...]`, `.get`, `os.getenv`, `in`: each variable the user's code reads, set or not, is
    kept (a digest); a copy of the whole environment (a subprocess's) and a scheduler's own are not."""
    from align_lab.user_code import used_by_user_code, watch_opened

    (tmp_path / "reads_env9.py").write_text(
        "import os\n\n\ndef read():\n"
        "    os.environ['A9']\n    os.environ.get('B9')\n    os.getenv('C9')\n    'D9' in os.environ\n"
        "    dict(os.environ)\n    os.environ.copy()\n    list(os.environ.items())\n    {**os.environ}\n"
        "    os.environ['A9']\n"
        "    os.environ.get('SLURM_JOB_ID')\n    os.environ.get('RANK')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("A9", "x")
    monkeypatch.setenv("OTHER9", "y")
    reader = importlib.import_module("reads_env9")
    try:
        watch_opened()
        os.environ.get("E9")  # align_lab's (a test's) own read
        reader.read()
        noted = {k: v for k, v in used_by_user_code().items() if k.startswith("env ")}
        assert sorted(noted) == ["env A9", "env B9", "env C9", "env D9"]
        assert noted["env A9"] == {"file": "$A9", "sha256": hashlib.sha256(b"x").hexdigest()[:16]}
        assert noted["env B9"]["sha256"] == "unset"
    finally:
        sys.modules.pop("reads_env9", None)


def test_a_file_your_code_wrote_and_what_a_library_reads_for_it_are_no_inputs(tmp_path, monkeypatch):
    """A temporary file the user's code writes then reads back is its output (a resume would find it
    gone); TMPDIR, which tempfile reads for it (a scheduler may set it for each job), is not its setting."""
    from align_lab.user_code import used_by_user_code, watch_opened

    (tmp_path / "temp_reader9.py").write_text(
        "import os, tempfile\n\n\ndef read():\n"
        "    fd, name = tempfile.mkstemp()\n    os.close(fd)\n"
        "    with open(name, 'w') as f:\n        f.write('1')\n"
        "    with open(name) as f:\n        f.read()\n"
        "    return name\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    reader = importlib.import_module("temp_reader9")
    try:
        import tempfile

        tempfile.tempdir = None  # read TMPDIR again
        watch_opened()
        name = reader.read()
        used = used_by_user_code()
        assert f"file {name}" not in used and "env TMPDIR" not in used, sorted(used)
    finally:
        tempfile.tempdir = None
        sys.modules.pop("temp_reader9", None)
