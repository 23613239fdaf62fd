"""A data-parallel run (hardware.processes=2) whose reward module reads a settings file as it is imported,
edited by the user after rank 0 read it and before the spawned rank imports the module again by name.
Seventeenth hunt: rank 1 trained on the edit (its half of every batch scored 10x), rank 0 on the
original, rc 0, no line. Now each spawned rank compares the files the user's code read there with what
rank 0 read (user_reads.as_opened), and the run ends in one line naming the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT, SMALL

# the user's module (outside the checkout: align_lab's own tests are not the user's code). The first
# process to import it (rank 0, at admission) then edits the settings as a user would while the run
# builds its stages (by a shell command: a file the user's code writes itself is its output, not an input)
REWARD = """
import json, os
SETTINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "w.json")
with open(SETTINGS) as f:
    WEIGHT = json.load(f)["w"]
if not os.path.exists(SETTINGS + ".edited"):
    os.system(f"echo '{{\\"w\\": 10.0}}' > {SETTINGS} && touch {SETTINGS}.edited")


def score(prompts, responses):
    return [WEIGHT * len(r.split()) for r in responses]
"""


def test_a_settings_file_edited_before_rank_1_reads_it_is_refused_in_one_line(tmp_path, cache_dir):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "rw_settings.py").write_text(REWARD)
    settings = mine / "w.json"
    settings.write_text('{"w": 1.0}')
    run_dir = tmp_path / "run"
    args = [
        *[a for a in SMALL if not a.startswith("reward.")],
        "reward=function",
        "reward.path=rw_settings:score",
        "hardware.processes=2",
        "rollout.seed_per_sample=true",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": f"{mine}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "align_lab", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert json.loads(settings.read_text()) == {"w": 10.0}  # edited after rank 0 read it
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    last = [x for x in done.stderr.splitlines() if x.startswith("align_lab:")][-1]
    assert last.startswith(
        f"align_lab: error: {settings}: a file your code read changed since this run started, before its "
        "other processes read it: one run would train on two versions of it; put it back as it was"
    ), last
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
