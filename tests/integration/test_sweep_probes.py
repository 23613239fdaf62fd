"""A sweep's run that starts afresh asks its scorers again for what they gave the last rows of a run of
the sweep that trained (run/probe_check.py check_sibling_probes): a file the reward reads in C, which no
audit event sees, edited between the sweep's runs (thirty-first hunt, case 37: #1 trained on the opposite
reward, rc 0, no line, and compare pooled the two)."""

from __future__ import annotations

import json
import re

from tests.conftest import SMALL

REWARD = """import pandas as pd
def score(prompts, responses):
    scale = float(pd.read_parquet("scale31.parquet")["v"][0])  # read in C++: no `open` audit event
    return [scale * len(r.split()) for r in responses]
"""


def scale(folder, value: float) -> None:
    import pandas as pd

    pd.DataFrame({"v": [value]}).to_parquet(folder / "scale31.parquet")


def test_a_sweeps_later_run_whose_reward_reads_an_edited_file_in_c_is_refused(
    tmp_path, cache_dir, forked_cli
):
    (tmp_path / "rpq31.py").write_text(REWARD)
    scale(tmp_path, 1.0)
    sweep = tmp_path / "sweep"
    small = [a for a in SMALL if not a.startswith("reward.")]
    keys = [*small, "train.steps=2", f"cache_dir={cache_dir}", "reward=function", "reward.path=rpq31:score"]
    first = forked_cli(["-m", "seed=0", *keys, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads(next(sweep.glob("0_*/probes.json")).read_text())  # its scorer's last rows, kept
    scale(tmp_path, -1.0)
    again = forked_cli(["-m", "seed=0,1", *keys, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert again.returncode == 2, again.stderr[-3000:]
    [line] = [x for x in again.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(
        "align_lab: error: reward.path=rpq31:score scores the responses it scored last in "
        f"{next(sweep.glob('0_*'))} otherwise now ("
    ), line
    assert "this run would train on another reward than theirs" in line, line
    assert not list(sweep.glob("1_*/metrics.jsonl")), "run #1 trained"
    scale(tmp_path, 1.0)  # put back as it was: #1 runs
    back = forked_cli(["-m", "seed=0,1", *keys, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert back.returncode == 0, back.stderr[-3000:]


EDITED_BY_ANOTHER = """import os, subprocess
def score(prompts, responses):
    with open("scale67.txt") as f:
        scale = float(f.read())
    if not os.path.exists("edited67"):  # once: another program edits it as run #0 trains
        subprocess.run(["sh", "-c", "echo 2 > scale67.txt && touch edited67"], check=True)
    return [scale * len(r.split()) for r in responses]
"""


def test_a_one_process_sweeps_run_refused_at_its_start_is_failed_in_its_folder(
    tmp_path, cache_dir, forked_cli
):
    """Thirty-second hunt, case 67: a one-process sweep's run #1, refused at its start because a file the
    sweep's runs read changed, was `pending` in `study status` ("0 failed") though the sweep called it
    failed: its folder held only .hydra/ and its lock. Now its summary.json says so, and the sweep run
    again takes the folder."""
    import subprocess
    import sys

    (tmp_path / "rs67.py").write_text(EDITED_BY_ANOTHER)
    (tmp_path / "scale67.txt").write_text("1\n")
    sweep = tmp_path / "sweep"
    small = [a for a in SMALL if not a.startswith("reward.")]
    keys = ["-m", "seed=0,1", *small, "train.steps=2", f"cache_dir={cache_dir}", "reward=function"]
    keys += ["reward.path=rs67:score", f"hydra.sweep.dir={sweep}"]
    first = forked_cli(keys, cwd=tmp_path)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "#1 seed=1: a file your code opened: " in first.stderr, first.stderr[-3000:]
    status = subprocess.run(
        [sys.executable, "-m", "align_lab.study", "status", str(sweep)], capture_output=True, text=True
    )
    assert status.stdout.splitlines()[-1] == "1 done, 0 running, 0 pending, 0 interrupted, 1 failed, 0 died"
    [refused] = [x for x in status.stdout.splitlines() if x.startswith("#1 ")]
    assert (
        "  failed  " in refused and "[refused at its start, before any compute: a file your code " in refused
    )
    # #0 trained on both versions: the sweep goes on with the file as it is now, #1 in its refused folder
    again = forked_cli([*keys, "resume_changed_inputs=true"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(next(sweep.glob("1_*/summary.json")).read_text())["status"] == "completed"


HELPER_EDITED = """import os, subprocess
import rhelper21 as helper
from rhelper21 import SCALE
def f(prompts, responses):
    if not os.path.exists("edited21"):  # once: another program edits the helper as run #0 trains
        subprocess.run(["sh", "-c", f"echo 'SCALE = -1.0' > {helper.__file__} && touch edited21"], check=True)
    return [SCALE * len(r.split()) for r in responses]
"""


def test_a_one_process_sweeps_run_refused_for_a_module_edited_since_its_import_is_failed(
    tmp_path, cache_dir, forked_cli
):
    """Thirty-third hunt, case 21: the same as case 67 where the edited file is a helper module the reward
    imports (refused as `changed since this process imported it`, a UserCodeError): `pending` in `study
    status`, and the sweep's line said `failed: UserCodeError: reward.path=...`."""
    import subprocess
    import sys

    (tmp_path / "rhelp21.py").write_text(HELPER_EDITED)
    (tmp_path / "rhelper21.py").write_text("SCALE = 1.0\n")
    sweep = tmp_path / "sweep"
    small = [a for a in SMALL if not a.startswith("reward.")]
    keys = ["-m", "seed=0,1", *small, "train.steps=2", f"cache_dir={cache_dir}", "reward=function"]
    done = forked_cli([*keys, "reward.path=rhelp21:f", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "align_lab: run #1 (seed=1): failed: reward.path=rhelp21:f: " in done.stdout, done.stdout[-3000:]
    assert "rhelper21.py changed since this process imported it" in done.stdout, done.stdout[-3000:]
    status = subprocess.run(
        [sys.executable, "-m", "align_lab.study", "status", str(sweep)], capture_output=True, text=True
    )
    assert status.stdout.splitlines()[-1] == "1 done, 0 running, 0 pending, 0 interrupted, 1 failed, 0 died"


def test_a_local_sweeps_run_refused_as_its_job_starts_is_failed_in_its_folder(tmp_path, cache_dir):
    """Thirty-fourth hunt, case 65: under hardware=submitit_local (each run a process of its own) a run
    refused at its start left no folder, so compare called it `pending` ("1 pending") where `study status`
    said failed. Its folder now holds its .hydra/ record and a failed summary.json, as a one-process
    sweep's does, and the sweep run again takes the folder."""
    import subprocess
    import sys

    from tests.conftest import run_cli

    (tmp_path / "rs67.py").write_text(EDITED_BY_ANOTHER)
    (tmp_path / "scale67.txt").write_text("1\n")
    sweep = tmp_path / "sweep"
    small = [a for a in SMALL if not a.startswith("reward.")]
    keys = ["-m", "seed=0,1", *small, "train.steps=2", f"cache_dir={cache_dir}", "reward=function"]
    keys += ["reward.path=rs67:score", "hardware=submitit_local", "hardware.max_parallel=1"]
    keys += [f"hydra.sweep.dir={sweep}"]
    env = {"PYTHONPATH": str(tmp_path)}
    first = run_cli(keys, cwd=tmp_path, env=env)
    assert first.returncode == 1, first.stderr[-3000:]
    [num] = re.findall(r"align_lab: run #(\d) \(seed=\d\): failed: a file your code opened: ", first.stdout)
    [refused] = list(sweep.glob(f"{num}_*"))  # the second to take the one slot: either run
    summary = json.loads((refused / "summary.json").read_text())
    assert summary["status"] == "failed", summary
    assert summary["error"].startswith("refused at its start, before any compute: a file your code "), summary
    compare = subprocess.run(
        [sys.executable, "-m", "align_lab.compare", str(sweep)], capture_output=True, text=True, timeout=300
    )
    assert "2 runs (1 completed, 1 failed)" in compare.stdout, compare.stdout[-3000:] + compare.stderr
    again = run_cli([*keys, "resume_changed_inputs=true"], cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((refused / "summary.json").read_text())["status"] == "completed"
