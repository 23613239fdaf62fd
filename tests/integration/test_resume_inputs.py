"""Issue 73 item 1: a resume checks the user's inputs, not only the code it owns. A run of your own data
file, verifier module and reward module is stopped after step 2; each edited, the same command is refused
in one line naming the file and its digests, every file of the run as it was; with
resume_changed_inputs=true it resumes, says so in one line and records it in summary.json."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys

import pytest

from align_lab.config import ConfigError
from tests.conftest import ROOT, compose, written_elsewhere
from tests.integration.test_real_models import SMALL as REAL

VERIFIER = "resume_inputs_verifier"  # module names of this file's alone (sys.modules is the session's)
REWARD = "resume_inputs_reward"


class Interrupt(BaseException):
    pass


@pytest.fixture(scope="module")
def world(tmp_path_factory, hf_assets):
    """A folder holding your data file, verifier and reward modules (importable), and the keys naming
    them."""
    home = tmp_path_factory.mktemp("inputs")
    shutil.copy(ROOT / "examples" / "questions.jsonl", home / "data.jsonl")
    (home / f"{VERIFIER}.py").write_text(
        "def check(response, answer, prompt):\n    return float(answer in response)\n"
    )
    (home / f"{REWARD}.py").write_text(
        "def score(prompts, responses):\n    return [len(r) / 10 for r in responses]\n"
    )
    sys.path.insert(0, str(home))
    for name in (VERIFIER, REWARD):  # this world's modules, not a world this worker made before (xdist's
        sys.modules.pop(name, None)  # worksteal may run the module's tests in two stretches)
    keys = [
        *REAL,
        f"model.name_or_path={hf_assets.policy}",
        "model.max_prompt_tokens=48",
        "task=verifiable_data",
        f"task.path={home / 'data.jsonl'}",
        "task.prompt_column=question",
        "task.eval_rows=4",
        f"task.verifier={VERIFIER}:check",
        "reward=function",
        f"reward.path={REWARD}:score",
        "algo=grpo",
        "algo.group_size=4",
        "train.steps=4",
        "train.checkpoint_every=1",
    ]
    yield home, keys
    sys.path.remove(str(home))


def admit(keys, run_dir, cache_dir, *more):
    from align_lab.run.admission import admit_spec, spec_from_config

    cfg, names = compose([*keys, f"cache_dir={cache_dir}", *more])
    return admit_spec(spec_from_config(cfg, names), run_dir)


def refused_for_its_scores(keys, run_dir, cache_dir, path: str) -> None:
    """A resume of a reward that scores its last rows otherwise now is refused naming it (user_probes.py):
    whatever else a test checks of that resume comes with resume_changed_inputs=true."""
    with pytest.raises(ConfigError, match=f"^resume_changed_inputs=false: reward.path={path} scores the "):
        admit(keys, run_dir, cache_dir)


def stop_after_step_2(keys, run_dir, cache_dir) -> None:
    """Runs `keys` into run_dir until it dies after its step-2 checkpoint (it checkpoints every step)."""
    from align_lab.run.execute import run
    from align_lab.tracking import JsonlTracker

    original = JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == 3:  # step 3's metrics are logged before its checkpoint: the last is step 2's
            raise Interrupt

    JsonlTracker.log = log_then_die
    try:
        with pytest.raises(Interrupt):
            run(admit(keys, run_dir, cache_dir))
    finally:
        JsonlTracker.log = original


@pytest.fixture(scope="module")
def stopped(world, tmp_path_factory, cache_dir):
    """The run of `world` died after its step-2 checkpoint (it checkpoints every step)."""
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    stop_after_step_2(world[1], run_dir, cache_dir)
    return run_dir


def files(run_dir) -> dict:
    return {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


EDITS = {  # key -> (file, its edit): a row's answer, a verifier's rule, a reward's scale
    "task.path": ("data.jsonl", lambda t: t.replace('"answer": 10}', '"answer": 11}', 1)),
    "task.verifier": (f"{VERIFIER}.py", lambda t: t.replace("answer in response", "answer == response")),
    "reward.path": (f"{REWARD}.py", lambda t: t.replace("/ 10", "/ 20")),
}


@pytest.mark.parametrize("key", list(EDITS))
def test_a_resume_after_your_input_changed_is_one_line_naming_it_and_keeps_the_folder(
    key, world, stopped, cache_dir
):
    """Before: admitted, and steps 3-4 trained on the edited file with rc 0 and no word."""
    import torch

    from align_lab.train.checkpoint_io import checkpoint_file

    home, keys = world
    ckpt = stopped / "checkpoints"
    saved = torch.load(checkpoint_file(ckpt), weights_only=False)["identity"]["inputs"]
    # every input of the user's: the model's folder too
    assert sorted(saved) == ["model.name_or_path", "reward.path", "task.path", "task.verifier"]
    admit(keys, stopped, cache_dir)  # nothing changed: resumes
    name, edit = EDITS[key]
    path = home / name
    before, kept = path.read_text(), files(stopped)
    path.write_text(edit(before))
    # the command that resumes is a new process, which imports the edited module anew (in this one, the
    # module imported before the edit would run: run/inputs.py as_imported refuses that)
    imported = sys.modules.pop(path.stem, None) if path.suffix == ".py" else None
    try:
        with pytest.raises(ConfigError) as e:
            admit(keys, stopped, cache_dir)
        now = torch.load(checkpoint_file(ckpt), weights_only=False)  # untouched: read after the refusal
        new = __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    finally:
        path.write_text(before)
        if imported is not None:
            sys.modules[path.stem] = imported
    assert saved[key]["file"] == str(path) and new[:8] != saved[key]["sha256"][:8]
    assert str(e.value) == (
        f"resume_changed_inputs=false: {key}: {path} (sha256 {saved[key]['sha256'][:8]}, now {new[:8]}) "
        f"changed since the checkpoint in {ckpt} was written, and a resume would train "
        f"{'one run' if key == 'reward.path' else 'and evaluate one run'} on two versions of it; put it "
        "back as it was, set resume_changed_inputs=true to resume anyway, or choose another hydra.run.dir"
    )
    assert files(stopped) == kept and now["step"] == 2


def test_resume_changed_inputs_resumes_says_so_in_one_line_and_records_it(
    world, stopped, cache_dir, tmp_path, caplog, capsys
):
    from align_lab.compare import main as compare_main
    from align_lab.run.execute import run
    from align_lab.run.summary import result_lines

    home, keys = world
    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)
    data = home / "data.jsonl"
    before = data.read_text()
    data.write_text(EDITS["task.path"][1](before))
    try:
        with caplog.at_level(logging.WARNING, logger="align_lab"):
            summary = run(admit(keys, run_dir, cache_dir, "resume_changed_inputs=true"))
    finally:
        data.write_text(before)
    lines = [r.getMessage() for r in caplog.records if "resume_changed_inputs" in r.getMessage()]
    ckpt = run_dir / "checkpoints"
    assert len(lines) == 1 and lines[0].startswith(
        f"align_lab: warning: resuming {ckpt} with changed inputs (task.path: {data} (sha256 "
    )
    assert summary["status"] == "completed" and summary["time/segments"] == 2
    on_disk = json.loads((run_dir / "summary.json").read_text())
    [change] = on_disk["changed_inputs"]
    assert change["step"] == 2 and list(change["inputs"]) == ["task.path"]
    was, now = change["inputs"]["task.path"]["was"], change["inputs"]["task.path"]["now"]
    assert was["file"] == now["file"] == str(data) and was["sha256"] != now["sha256"]
    assert on_disk["inputs"]["task.path"] == now and set(on_disk["inputs"]) == {*EDITS, "model.name_or_path"}
    # its end line and compare say so too, not only the resume's warning in its log (23rd hunt's notes)
    said = "resumed on changed inputs at step 2 (task.path): it trained on two versions of them"
    assert f"  warning:    {said} (resume_changed_inputs=true)" in result_lines(on_disk, run_dir)
    assert compare_main([str(run_dir), "--out", str(tmp_path / "compare")]) == 0
    assert f"WARNING: {run_dir} {said}; its figures mix both" in capsys.readouterr().out


def test_a_warned_resume_counts_the_killed_segment_to_its_last_write_not_to_its_warning(
    world, stopped, cache_dir, tmp_path
):
    """Sixth hunt: a killed segment lasts until the last file it wrote, and the resume's warning
    (resume_changed_inputs=true) was that file: Hydra's handler appends it to app.log before the resume
    read the times, so the dead time between the kill and the resume counted as run time (1,088 s for a
    segment of 18 s)."""
    import os
    import time

    from align_lab.run.execute import run

    home, keys = world
    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)
    started = time.time() - 1000  # killed: its summary still "running", its last write 30 s after its start
    record = json.loads((run_dir / "summary.json").read_text())
    record |= {"status": "running", "started": started, "segments_s": []}
    (run_dir / "summary.json").write_text(json.dumps(record))
    for path in [run_dir, *run_dir.rglob("*")]:
        os.utime(path, (started + 30, started + 30))
    data = home / "data.jsonl"
    before = data.read_text()
    data.write_text(EDITS["task.path"][1](before))
    # as Hydra's job logging: the warning is the first line written there
    app_log = logging.FileHandler(run_dir / "app.log", delay=True)
    logging.getLogger().addHandler(app_log)
    try:
        summary = run(admit(keys, run_dir, cache_dir, "resume_changed_inputs=true"))
    finally:
        logging.getLogger().removeHandler(app_log)
        app_log.close()
        data.write_text(before)
    assert "resume_changed_inputs=true" in (run_dir / "app.log").read_text()  # the warning was written there
    killed, resumed = summary["segments_s"]
    assert killed == pytest.approx(30, abs=1)
    assert summary["time/total_s"] == pytest.approx(killed + resumed, abs=0.5)


USED = {  # what the user's reward uses at run time, no config value naming it: (its source, the file it uses)
    "computed name": (  # seventh hunt: importlib.import_module("hdyn" + str(1))
        "import importlib\n\n\ndef score(prompts, responses):\n"
        "    helper = importlib.import_module('resume_inputs_dyn_' + 'helper')\n"
        "    return [helper.W * len(r) / 10 for r in responses]\n",
        "resume_inputs_dyn_helper.py",
        "module resume_inputs_dyn_helper: {file}",
    ),
    "json": (  # eighth hunt: a JSON of settings beside the module
        "import json, os\n\n\ndef score(prompts, responses):\n"
        "    w = json.load(open(os.path.join(os.path.dirname(__file__), 'w.json')))['W']\n"
        "    return [w * len(r) / 10 for r in responses]\n",
        "w.json",
        "a file your code opened: {file}",
    ),
    "runpy": (  # eighth hunt: runpy.run_path (as spec_from_file_location + exec_module: not in sys.modules)
        "import os, runpy\n\n\ndef score(prompts, responses):\n"
        "    w = runpy.run_path(os.path.join(os.path.dirname(__file__), 'hrun.py'))['W']\n"
        "    return [w * len(r) / 10 for r in responses]\n",
        "hrun.py",
        "a file your code opened: {file}",
    ),
    "spec_from_file_location": (  # eighth hunt: a module loaded by its path, never put in sys.modules
        "import importlib.util, os\n\n\ndef score(prompts, responses):\n"
        "    path = os.path.join(os.path.dirname(__file__), 'hspec.py')\n"
        "    spec = importlib.util.spec_from_file_location('hspec', path)\n"
        "    helper = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(helper)\n"
        "    return [helper.W * len(r) / 10 for r in responses]\n",
        "hspec.py",
        "a file your code opened: {file}",
    ),
}


@pytest.mark.parametrize("way", list(USED))
def test_what_your_code_uses_at_run_time_is_checked_on_resume(world, cache_dir, tmp_path, way):
    """Issue 73 seventh and eighth hunts: a reward that imports its helper by a name it computes, reads a
    JSON of settings, or runs a helper file with runpy: which no config value names and no import shows.
    Edited between a kill and the same command, the run resumed on a reward 10x the first in silence.
    Each checkpoint keeps the user's modules imported and the files its code opened (user_code.py)."""

    home, keys = world
    source, used, said = USED[way]
    module = f"resume_inputs_used_{way.replace(' ', '_')}"
    helper = home / used
    # by another process, as a user's files are (a file this one wrote is its output: user_reads.py)
    written_elsewhere(helper, '{"W": 1.0}\n' if used.endswith(".json") else "W = 1.0\n")
    (home / f"{module}.py").write_text(source)
    keys = [k for k in keys if not k.startswith("reward.path=")] + [f"reward.path={module}:score"]
    run_dir = tmp_path / "run"
    stop_after_step_2(keys, run_dir, cache_dir)
    before = helper.read_text()
    helper.write_text(before.replace("1.0", "10.0"))
    with pytest.raises(ConfigError) as e:
        admit(keys, run_dir, cache_dir)
    assert str(e.value).startswith(f"resume_changed_inputs=false: {said.format(file=helper)} (sha256 "), str(
        e.value
    )
    helper.write_text(before)  # put back as it was: the same command resumes
    assert admit(keys, run_dir, cache_dir).changed_inputs == {}


def test_an_environment_variable_your_code_read_is_checked_on_resume(world, cache_dir, tmp_path, monkeypatch):
    """Eighth hunt: a helper chosen by an environment variable (or a scale read from one), another value
    on resume: the run went on in silence. Each checkpoint keeps a digest of every variable the user's
    code read (never its value), set or not; a scheduler's own (SLURM_*) are not the user's settings."""

    home, keys = world
    (home / "resume_inputs_env9.py").write_text(
        "import os\n\n\ndef score(prompts, responses):\n"
        "    os.environ.get('SLURM_JOB_ID')\n"
        "    w = float(os.environ.get('RESUME_INPUTS_SCALE9', '1'))\n"
        "    return [w * len(r) / 10 for r in responses]\n"
    )
    keys = [k for k in keys if not k.startswith("reward.path=")] + ["reward.path=resume_inputs_env9:score"]
    run_dir = tmp_path / "run"
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.delenv("RESUME_INPUTS_SCALE9", raising=False)
    stop_after_step_2(keys, run_dir, cache_dir)
    monkeypatch.setenv("SLURM_JOB_ID", "2")  # a requeue's: resumes
    assert admit(keys, run_dir, cache_dir).changed_inputs == {}
    monkeypatch.setenv("RESUME_INPUTS_SCALE9", "10")
    with pytest.raises(ConfigError) as e:
        admit(keys, run_dir, cache_dir)
    assert str(e.value).startswith(
        "resume_changed_inputs=false: an environment variable your code read: $RESUME_INPUTS_SCALE9 (unset, "
        "now sha256 "
    ), str(e.value)
    assert (
        str(e.value).split("now sha256 ")[1][:8] == hashlib.sha256(b"10").hexdigest()[:8]
    )  # never the value
    monkeypatch.delenv("RESUME_INPUTS_SCALE9")
    assert admit(keys, run_dir, cache_dir).changed_inputs == {}


def test_a_file_beside_your_code_that_changed_is_a_warning_on_resume(world, cache_dir, tmp_path, caplog):
    """Ninth hunt: a reward whose weight is `os.path.exists(flag)` (no open: nothing to digest), the
    flag created between a kill and the same command, resumed in silence. The checkpoint keeps the files
    beside the user's code (user_folders.py): the resume says which changed (since the eleventh hunt the
    reward's other scores refuse it first: user_probes.py)."""

    home, keys = world
    (home / "resume_inputs_flag9.py").write_text(
        "import os\n\n\ndef score(prompts, responses):\n"
        "    w = 10.0 if os.path.exists(os.path.join(os.path.dirname(__file__), 'flag9')) else 1.0\n"
        "    return [w * len(r) / 10 for r in responses]\n"
    )
    keys = [k for k in keys if not k.startswith("reward.path=")] + ["reward.path=resume_inputs_flag9:score"]
    run_dir = tmp_path / "run"
    stop_after_step_2(keys, run_dir, cache_dir)
    caplog.clear()
    assert admit(keys, run_dir, cache_dir).changed_inputs == {}
    assert "files beside your code" not in caplog.text  # nothing changed: no line
    written_elsewhere(home / "flag9", "")
    refused_for_its_scores(keys, run_dir, cache_dir, "resume_inputs_flag9:score")  # the eleventh hunt's probe
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        admit(keys, run_dir, cache_dir, "resume_changed_inputs=true")  # and the folder's warning
    assert (
        f"files beside your code changed since the checkpoint in {run_dir / 'checkpoints'} was written: "
        in caplog.text
    )
    assert f"{home / 'flag9'} (new)" in caplog.text


def test_a_file_in_a_folder_your_code_names_that_changed_is_a_warning_on_resume(
    world, cache_dir, tmp_path, caplog
):
    """Tenth hunt: a reward reading `pd.read_parquet("<elsewhere>/w.parquet")` (pyarrow reads it in C++:
    no open for the audit hook), kept in another folder than the code, edited between a kill and the same
    command: resumed in silence. The folders a user's module names in its strings are watched too (since
    the eleventh hunt the reward's other scores refuse it first: user_probes.py)."""
    pd = pytest.importorskip("pandas")
    home, keys = world
    data = tmp_path / "wdata"
    data.mkdir()
    pd.DataFrame({"W": [1.0]}).to_parquet(data / "w.parquet")
    (home / "resume_inputs_pq10.py").write_text(
        "import pandas as pd\n\n\ndef score(prompts, responses):\n"
        f"    w = float(pd.read_parquet({str(data / 'w.parquet')!r})['W'][0])\n"
        "    return [w * len(r) / 10 for r in responses]\n"
    )
    keys = [k for k in keys if not k.startswith("reward.path=")] + ["reward.path=resume_inputs_pq10:score"]
    run_dir = tmp_path / "run"
    stop_after_step_2(keys, run_dir, cache_dir)
    pd.DataFrame({"W": [10.0]}).to_parquet(data / "w.parquet")
    refused_for_its_scores(keys, run_dir, cache_dir, "resume_inputs_pq10:score")  # the eleventh hunt's probe
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        admit(keys, run_dir, cache_dir, "resume_changed_inputs=true")  # and the folder's warning
    assert f"files beside your code changed since the checkpoint in {run_dir / 'checkpoints'}" in caplog.text
    assert f"{data / 'w.parquet'} (changed)" in caplog.text


def test_a_file_a_settings_file_of_yours_names_that_changed_is_a_warning_on_resume(
    world, cache_dir, tmp_path, caplog
):
    """Thirty-fifth hunt, case 29: a reward reading a parquet file with pyarrow (in C: no open for the audit
    hook) at the path its JSON settings file names, edited between a kill and the same command: resumed in
    silence. The folders a JSON file the code read names are watched, as a module's constants are."""
    pd = pytest.importorskip("pandas")
    home, keys = world
    data, settings = tmp_path / "wdata29", tmp_path / "settings29"
    data.mkdir()
    settings.mkdir()
    pd.DataFrame({"W": [1.0]}).to_parquet(data / "w.parquet")
    written_elsewhere(settings / "cfg.json", json.dumps({"weights": str(data / "w.parquet")}))
    (home / "resume_inputs_cfg29.py").write_text(
        "import json\nimport pandas as pd\n\n\ndef score(prompts, responses):\n"
        f"    cfg = json.load(open({str(settings / 'cfg.json')!r}))\n"
        "    w = float(pd.read_parquet(cfg['weights'])['W'][0])\n"
        "    return [w * len(r) / 10 for r in responses]\n"
    )
    keys = [k for k in keys if not k.startswith("reward.path=")] + ["reward.path=resume_inputs_cfg29:score"]
    run_dir = tmp_path / "run"
    stop_after_step_2(keys, run_dir, cache_dir)
    pd.DataFrame({"W": [10.0]}).to_parquet(data / "w.parquet")
    refused_for_its_scores(keys, run_dir, cache_dir, "resume_inputs_cfg29:score")  # the eleventh hunt's probe
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        admit(keys, run_dir, cache_dir, "resume_changed_inputs=true")  # and the folder's warning
    assert f"files beside your code changed since the checkpoint in {run_dir / 'checkpoints'}" in caplog.text
    assert f"{data / 'w.parquet'} (changed)" in caplog.text


def test_a_database_your_code_reads_with_sqlite_that_changed_is_a_warning_on_resume(
    world, cache_dir, tmp_path, caplog
):
    """Thirty-fourth hunt, case 21: a reward's weights read with sqlite3 (in C: no open for the audit hook)
    from a database at a path no string of its module names, edited between a kill and the same command:
    resumed in silence. sqlite3.connect's own audit event gives the file, whose folder is watched."""
    import sqlite3

    home, keys = world
    data = tmp_path / "wdb"
    data.mkdir()
    with sqlite3.connect(data / "w.db") as con:
        con.execute("create table w (v real)")
        con.execute("insert into w values (1.0)")
    con.close()
    (home / "resume_inputs_db34.py").write_text(
        "import os, sqlite3\n\n\ndef score(prompts, responses):\n"
        f"    db = os.path.join({str(tmp_path)!r}, ''.join(['wd', 'b']), 'w' + '.db')\n"
        "    con = sqlite3.connect(db)\n"
        "    w = con.execute('select v from w').fetchone()[0]\n"
        "    con.close()\n"
        "    return [w * len(r) / 10 for r in responses]\n"
    )
    keys = [k for k in keys if not k.startswith("reward.path=")] + ["reward.path=resume_inputs_db34:score"]
    run_dir = tmp_path / "run"
    stop_after_step_2(keys, run_dir, cache_dir)
    subprocess.run(
        [
            "python3",
            "-c",
            f"import sqlite3; c = sqlite3.connect({str(data / 'w.db')!r}); "
            "c.execute('update w set v = 10.0'); c.commit()",
        ],
        check=True,
    )  # by another process
    refused_for_its_scores(keys, run_dir, cache_dir, "resume_inputs_db34:score")  # the eleventh hunt's probe
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        admit(keys, run_dir, cache_dir, "resume_changed_inputs=true")  # and the folder's warning
    assert f"files beside your code changed since the checkpoint in {run_dir / 'checkpoints'}" in caplog.text
    assert f"{data / 'w.db'} (changed)" in caplog.text


@pytest.mark.parametrize("changed", [True, False], ids=["changed", "unchanged"])
def test_a_reward_that_scores_its_last_rows_otherwise_on_resume_is_refused(
    world, cache_dir, tmp_path, changed
):
    """Eleventh hunt: a reward reading a parquet file (pyarrow, in C) at a path it builds from pieces,
    `Path(__file__).parent.parent / "wdata" / "w.parquet"`, edited between a kill and the same command:
    resumed in silence (no open for the audit hook, no string naming the folder). Each checkpoint keeps the
    rows the reward scored last and their scores, and a resume asks it again (user_probes.py): other
    scores are refused in one line; the same scores resume."""
    pd = pytest.importorskip("pandas")
    home, keys = world
    data = home.parent / "wdata"
    data.mkdir(exist_ok=True)
    pd.DataFrame({"W": [1.0]}).to_parquet(data / "w11.parquet")
    (home / "resume_inputs_built11.py").write_text(
        "from pathlib import Path\n\nimport pandas as pd\n\n\ndef score(prompts, responses):\n"
        "    where = Path(__file__).resolve().parent.parent / 'wdata' / 'w11.parquet'\n"
        "    w = float(pd.read_parquet(where)['W'][0])\n"
        "    return [w * len(r) / 10 for r in responses]\n"
    )
    keys = [k for k in keys if not k.startswith("reward.path=")] + ["reward.path=resume_inputs_built11:score"]
    run_dir = tmp_path / "run"
    stop_after_step_2(keys, run_dir, cache_dir)
    before = files(run_dir)
    if not changed:
        assert admit(keys, run_dir, cache_dir).changed_inputs == {}
        return
    pd.DataFrame({"W": [10.0]}).to_parquet(data / "w11.parquet")
    with pytest.raises(ConfigError) as e:
        admit(keys, run_dir, cache_dir)
    assert str(e.value).startswith(
        "resume_changed_inputs=false: reward.path=resume_inputs_built11:score scores the responses it scored "
        f"last before the checkpoint in {run_dir / 'checkpoints'} otherwise now ("
    ), str(e.value)
    assert files(run_dir) == before  # nothing written
    job = admit(keys, run_dir, cache_dir, "resume_changed_inputs=true")
    assert list(job.changed_inputs) == ["scores reward.path=resume_inputs_built11:score"]


def test_a_variable_a_command_may_read_is_a_warning_on_resume(
    world, cache_dir, tmp_path, caplog, monkeypatch
):
    """Ninth hunt: a reward running `sh -c 'echo ${W9S:-1}'` (the command reads the variable it inherits)
    and one summing every variable W9_*, resumed with W9S=10: in silence. Where the user's code started a
    command or read the whole environment, the checkpoint keeps every variable's digest, and the resume
    names those that changed (a warning: which the command reads is unknown; since the eleventh hunt the
    reward's other scores refuse it first: user_probes.py)."""

    home, keys = world
    (home / "resume_inputs_sub9.py").write_text(
        "import subprocess\n\n\ndef score(prompts, responses):\n"
        "    out = subprocess.run(['sh', '-c', 'echo ${W9S:-1}'], capture_output=True, text=True).stdout\n"
        "    return [float(out) * len(r) / 10 for r in responses]\n"
    )
    keys = [k for k in keys if not k.startswith("reward.path=")] + ["reward.path=resume_inputs_sub9:score"]
    run_dir = tmp_path / "run"
    monkeypatch.delenv("W9S", raising=False)
    stop_after_step_2(keys, run_dir, cache_dir)
    monkeypatch.setenv("SSH_TTY", "/dev/pts/9")  # another shell's own: no line
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        admit(keys, run_dir, cache_dir)
    assert "environment variables changed" not in caplog.text
    monkeypatch.setenv("W9S", "10")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="align_lab"):  # named before the refusal (42nd hunt, 36)
        refused_for_its_scores(keys, run_dir, cache_dir, "resume_inputs_sub9:score")  # the 11th hunt's probe
    assert "environment variables changed since the checkpoint in " in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        admit(keys, run_dir, cache_dir, "resume_changed_inputs=true")
    assert (
        f"environment variables changed since the checkpoint in {run_dir / 'checkpoints'} was written: $W9S;"
        in (caplog.text)
    )


def test_a_resume_command_says_its_shell_needs_the_runs_variables_where_the_code_read_them_all(
    tmp_path, monkeypatch
):
    """Forty-second hunt, case 36: variables a reward read through `dict(os.environ)` were in no printed
    command, which then failed in a new shell with no line naming them."""
    from align_lab import user_environ
    from align_lab.run.summary import resume_hint

    ckpt = tmp_path / "run" / "checkpoints"
    monkeypatch.setattr(user_environ, "_WHOLE_ENV", [])
    assert "whole environment" not in resume_hint(ckpt)
    monkeypatch.setattr(user_environ, "_WHOLE_ENV", [True])
    assert resume_hint(ckpt).endswith(
        " (in a shell whose variables are as the run's: your code read the whole environment, as "
        "dict(os.environ) does, or started a command)"
    )
