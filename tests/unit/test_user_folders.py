"""user_folders.py: the files beside the user's code, compared on resume (a warning): a file changed,
new or gone is named; one the run wrote, a log, a hidden file, and one the inputs' check said are not."""

from __future__ import annotations

import json
import os
from pathlib import Path

from align_lab.user_folders import (
    MAX_FILES,
    beside_warning,
    changed_beside,
    folders_in_values,
    named_folders,
    snapshot,
)


def test_a_file_changed_new_or_gone_beside_the_code_is_named(tmp_path):
    for name in ("w.parquet", "gone.txt", "reward.py", "slurm-12.out", ".hidden", "cache.json"):
        (tmp_path / name).write_text("1")
    saved = snapshot([str(tmp_path)], written=[tmp_path / "cache.json"])
    assert sorted(saved[str(tmp_path)]) == ["cache.json", "gone.txt", "reward.py", "w.parquet"]
    assert saved[str(tmp_path)]["cache.json"] is None  # the run's own output
    (tmp_path / "w.parquet").write_text("10")  # another size
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "flag").write_text("")
    (tmp_path / "cache.json").write_text("22")
    (tmp_path / "slurm-12.out").write_text("more log")
    os.utime(tmp_path / "reward.py", ns=(1, 1))
    lines = changed_beside(saved, snapshot(saved), known=[tmp_path / "reward.py"])
    assert lines == [
        f"{tmp_path}/flag (new)",
        f"{tmp_path}/gone.txt (gone)",
        f"{tmp_path}/w.parquet (changed)",
    ]
    line = beside_warning(lines, "run/checkpoints")
    assert line.startswith(
        f"files beside your code changed since the checkpoint in run/checkpoints was written: {lines[0]}"
    )
    assert beside_warning([], "x") is None


def test_a_folder_too_big_or_unreadable_is_left_out(tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    for i in range(MAX_FILES + 1):
        (big / f"{i}.json").touch()
    assert snapshot([str(big), str(tmp_path / "none")]) == {}


def test_the_processs_own_output_redirected_beside_the_code_is_no_input(tmp_path):
    """Tenth hunt: `python -m align_lab ... > u/run.txt 2>&1` in the code's folder: the run's own output,
    said changed on resume."""
    import subprocess
    import sys

    code = (
        "import json, sys\nfrom align_lab.user_folders import snapshot\n"
        f"print(json.dumps(snapshot([{str(tmp_path)!r}])))\n"
    )
    (tmp_path / "data.json").write_text("1")
    with open(tmp_path / "run.txt", "w") as out:
        subprocess.run([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT, check=True)
    saved = json.loads((tmp_path / "run.txt").read_text())[str(tmp_path)]
    assert saved["run.txt"] is None and saved["data.json"] is not None


def test_the_folders_a_module_names_in_its_strings_are_watched(tmp_path, monkeypatch):
    """Tenth hunt: a reward read `pd.read_parquet("/tmp/hunt10/wdata/w.parquet")` (pyarrow's C++ reader,
    unseen by the audit hook) one folder away from the code; edited between a kill and the resume, the
    run went on in silence. The folder a string constant names (a file's folder, or a folder) is watched:
    absolute, relative to the module or to the working folder; never a top-level or system folder."""
    code, data, cwd_data = tmp_path / "code", tmp_path / "wdata", tmp_path / "here" / "d"
    for folder in (code, data, cwd_data):
        folder.mkdir(parents=True)
    (data / "w.parquet").write_bytes(b"PAR1")
    (cwd_data / "x.csv").write_text("1")
    (code / "near.json").write_text("{}")
    module = code / "rpq.py"
    module.write_text(
        "import pandas as pd\n"
        f"W = {str(data / 'w.parquet')!r}\n"
        "X, NEAR, TOP = 'd/x.csv', 'near.json', '/tmp'\n"
        "MODE, ETC = 'r', '/etc/hostname'\n"
        "def score(p, r):\n    return [float(pd.read_parquet(W)['W'][0])] * len(r)\n"
    )
    monkeypatch.chdir(tmp_path / "here")
    assert named_folders([str(module)]) == sorted([str(code), str(data), str(cwd_data)])
    assert named_folders([str(module)], skip=[str(tmp_path)]) == []  # installed code's folders
    assert named_folders([str(tmp_path / "gone.py")]) == []
    saved = snapshot(named_folders([str(module)]))
    (data / "w.parquet").write_bytes(b"PAR1 W=10")
    assert changed_beside(saved, snapshot(saved)) == [f"{data}/w.parquet (changed)"]


def test_a_data_folder_beside_the_codes_own_a_home_path_and_a_variables_path_are_watched(
    tmp_path, monkeypatch
):
    """Thirty-sixth hunt, cases 31-33: a parquet pyarrow reads (in C++: no open the audit hook sees) at
    `Path(__file__).parent.parent / "data" / "w.parquet"` (a project's src/ beside its data/), at
    `os.path.expanduser("~/h36w/w.parquet")`, or at the path an environment variable the code read gives,
    was rewritten between a kill and the resume: trained on in silence. Each folder is watched."""
    project, home, elsewhere = tmp_path / "p", tmp_path / "home", tmp_path / "env_data"
    for folder in (project / "src", project / "data", home / "h36w", elsewhere):
        folder.mkdir(parents=True)
    for folder in (project / "data", home / "h36w", elsewhere):
        (folder / "w.parquet").write_bytes(b"PAR1")
    module = project / "src" / "rpq.py"
    module.write_text(
        "import os\nfrom pathlib import Path\n"
        "TABLE = Path(__file__).resolve().parent.parent / 'data' / 'w.parquet'\n"
        "HOME_TABLE = os.path.expanduser('~/h36w/w.parquet')\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert named_folders([str(module)]) == sorted([str(project / "data"), str(home / "h36w")])
    values = [str(elsewhere / "w.parquet"), "1", "relative/path", "", "/etc/hostname"]
    assert folders_in_values(values) == [str(elsewhere)]  # a value that names nothing there: none


def test_a_path_made_as_the_module_ran_a_relative_variable_and_a_toml_setting_are_watched(
    tmp_path, monkeypatch
):
    """Thirty-seventh hunt, cases 7-9: the parquet pyarrow reads at `Path.home() / "h37p" / "w.parquet"`,
    at `os.environ["WREL37"]` holding a path relative to the working folder (`../envrel/w.parquet`), or
    at the path a TOML settings file gives, was rewritten between a kill and the resume: trained on in
    silence. Each folder is watched: the home folder is a base of a module's constants, a variable's
    relative value is read from the working folder, a text settings file's quoted strings and words
    holding a `/` are followed, and a module's globals as they are (any path made as it ran)."""
    import sys

    from align_lab.user_folders import folders_in_globals, folders_in_settings

    home, work, made = tmp_path / "home", tmp_path / "w", tmp_path / "made" / "deep"
    folders = {n: tmp_path / n for n in ("envrel", "tomlw", "yamlw", "bare")}
    work.mkdir()
    for folder in (home / "h37p", made, *folders.values()):
        folder.mkdir(parents=True)
        (folder / "w.parquet").write_bytes(b"PAR1")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    module = work / "rpq37.py"
    module.write_text("from pathlib import Path\nTABLE = Path.home() / 'h37p' / 'w.parquet'\n")
    assert named_folders([str(module)]) == [str(home / "h37p")]  # "h37p" relative to the home folder
    assert folders_in_values(["../envrel/w.parquet", "data"]) == [str(folders["envrel"])]
    toml = tmp_path / "set37.toml"
    toml.write_text(f'[reward]\ntable = "{folders["tomlw"]}/w.parquet"\n')
    yaml = tmp_path / "set37.yaml"
    yaml.write_text(f"reward:\n  table: {folders['yamlw']}/w.parquet\n  other: ../bare/w.parquet\n")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\xff\xfe" + str(folders["bare"]).encode())  # not text: passed over
    found = folders_in_settings([str(toml), str(yaml), str(binary), str(module)])
    assert found == sorted(str(folders[n]) for n in ("tomlw", "yamlw", "bare")), found
    # a module's globals as they are: a path joined from pieces no constant names whole
    mod = type(sys)("rpq37_made")
    mod.__file__ = str(module)
    mod.TABLE = made / "w.parquet"
    mod.SETTINGS = {"tables": [str(made.parent), "not a path"], "n": 3}
    monkeypatch.setitem(sys.modules, "rpq37_made", mod)
    assert folders_in_globals([str(module)]) == sorted([str(made.parent), str(made)])
    assert folders_in_globals([str(work / "other.py")]) == []  # only the user's modules named


def test_the_files_two_folders_below_a_watched_one_are_listed_and_an_outputs_folder_is_not(tmp_path):
    """Thirty-eighth hunt, case 6: a parquet at `os.path.join(os.path.dirname(__file__), "data", "v2",
    "w.parquet")`, rewritten between a kill and the resume: only the watched folders' own files were
    listed (data/ held the folder v2). Two levels of subfolders are; a run's outputs/ are not inputs."""
    (tmp_path / "data" / "v2").mkdir(parents=True)
    (tmp_path / "data" / "v2" / "w.parquet").write_bytes(b"PAR1")
    (tmp_path / "outputs" / "day").mkdir(parents=True)
    (tmp_path / "outputs" / "day" / "metrics.jsonl").write_text("{}")
    (tmp_path / "runs" / "r1" / ".hydra").mkdir(parents=True)  # hydra.run.dir=runs/r1 beside the code
    (tmp_path / "runs" / "r1" / "summary.json").write_text("{}")
    saved = snapshot([str(tmp_path)])
    assert sorted(saved[str(tmp_path)]) == ["data/v2/w.parquet"]
    (tmp_path / "data" / "v2" / "w.parquet").write_bytes(b"PAR1 rewritten")
    now = snapshot([str(tmp_path)])
    assert changed_beside(saved, now) == [f"{tmp_path / 'data' / 'v2' / 'w.parquet'} (changed)"]


def test_a_stage_cache_in_the_codes_folder_is_no_input(tmp_path):
    """`cache_dir=./cache` in the project folder: its entries' lock files, written as a stage was built,
    were said `files beside your code changed while the run went on: cache/sft/<key>.lock (new)`. The
    cache marks itself with CACHEDIR.TAG (the cache-directory standard), which the listing passes over."""
    from align_lab.cache import StageCache

    (tmp_path / "reward.py").write_text("1")
    saved = snapshot([str(tmp_path)])
    StageCache(tmp_path / "cache").get("sft", 1, {"a": 1}, lambda out: (out / "w.bin").write_bytes(b"w"))
    assert (
        (tmp_path / "cache" / "CACHEDIR.TAG")
        .read_text()
        .startswith("Signature: 8a477f597d28d172789f06886806bc55")
    )
    assert changed_beside(saved, snapshot(saved)) == []


def test_a_folder_another_tool_tagged_as_a_cache_is_still_watched(tmp_path):
    """huggingface_hub writes CACHEDIR.TAG into the folder it downloads to: data kept there, rewritten
    between a kill and the resume, was passed over as align_lab's stage cache (thirty-ninth hunt, case 47)."""
    (tmp_path / "data" / "v2").mkdir(parents=True)
    (tmp_path / "data" / "v2" / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    (tmp_path / "data" / "v2" / "w.parquet").write_bytes(b"PAR1")
    saved = snapshot([str(tmp_path)])
    (tmp_path / "data" / "v2" / "w.parquet").write_bytes(b"PAR1 rewritten")
    assert changed_beside(saved, snapshot(saved)) == [f"{tmp_path / 'data' / 'v2' / 'w.parquet'} (changed)"]


def test_a_folder_under_var_tmp_a_module_names_is_watched(tmp_path):
    """Thirty-ninth hunt, case 17: a parquet at /var/tmp/.../w.parquet, a constant of the module, rewritten
    between a kill and the resume: never watched (all of /var was the system's)."""
    import shutil
    import tempfile

    data = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        (data / "w.parquet").write_bytes(b"PAR1")
        module = tmp_path / "rvar.py"
        module.write_text(f"T = {str(data / 'w.parquet')!r}\nLOG = '/var/log/syslog'\n")
        assert named_folders([str(module)]) == [str(data)]  # not /var/log
    finally:
        shutil.rmtree(data)


def test_a_copy_of_the_environment_names_no_folder_of_the_shells_own(tmp_path, monkeypatch):
    """Forty-third hunt, case 18: a reward holding `dict(os.environ)` had $OLDPWD's folder (another
    checkout) watched and said to be "beside your code"; a variable of its own naming data still is."""
    import sys

    from align_lab.user_folders import folders_in_globals

    shell, data = tmp_path / "previous", tmp_path / "data"
    for folder in (shell, data):
        folder.mkdir()
    (data / "w.parquet").write_bytes(b"PAR1")
    monkeypatch.setenv("OLDPWD", str(shell))
    monkeypatch.setenv("DATA43", str(data / "w.parquet"))
    module = tmp_path / "envcopy43.py"
    module.write_text("import os\nENV = dict(os.environ)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("envcopy43")
    try:
        found = folders_in_globals([str(module)])
        assert str(data) in found and str(shell) not in found, found
    finally:
        sys.modules.pop("envcopy43", None)


def test_a_runs_own_folder_listed_by_the_code_is_no_input(tmp_path):
    """Forty-fourth hunt, case 23: a reward that listed the run's own folder had the run's
    eval_samples.jsonl (written by its evaluation) said `files beside your code changed ... (new)`."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "checkpoints").mkdir()
    saved = snapshot([str(run), str(run / "checkpoints")])
    (run / "eval_samples.jsonl").write_text("{}\n")
    (run / "checkpoints" / "step_2.pt").write_bytes(b"w")
    assert saved == {} and changed_beside(saved, snapshot([str(run), str(run / "checkpoints")])) == []
    data = tmp_path / "data"  # a folder of the user's beside it is still watched
    data.mkdir()
    (data / "w.csv").write_text("1")
    assert list(snapshot([str(data)])) == [str(data)]


def test_the_resumes_own_output_redirected_to_new_files_beside_the_code_is_no_input(tmp_path):
    """A resume typed as `... > out2.txt 2> err2.txt` in the code's folder (the first run's `> out.txt`):
    `files beside your code changed since the checkpoint ...: err2.txt (new), out2.txt (new)`."""
    (tmp_path / "rw.py").write_text("1")
    saved = snapshot([str(tmp_path)])
    (tmp_path / "out2.txt").write_text("the resume's output")
    now = snapshot([str(tmp_path)], written=[str(tmp_path / "out2.txt")])
    assert now[str(tmp_path)]["out2.txt"] is None and changed_beside(saved, now) == []
    (tmp_path / "data.csv").write_text("a new input")  # one it did not write is still said
    now = snapshot([str(tmp_path)], written=[str(tmp_path / "out2.txt")])
    assert changed_beside(saved, now) == [f"{tmp_path}/data.csv (new)"]
