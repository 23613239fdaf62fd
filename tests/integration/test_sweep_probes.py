"""A sweep's run that starts afresh asks its scorers again for what they gave the last rows of a run of
the sweep that trained (run/probe_check.py check_sibling_probes): a file the reward reads in C, which no
audit event sees, edited between the sweep's runs (thirty-first hunt, case 37: #1 trained on the opposite
reward, rc 0, no line, and compare pooled the two)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SMALL

REWARD = """import pandas as pd
def score(prompts, responses):
    scale = float(pd.read_parquet("scale31.parquet")["v"][0])  # read in C++: no `open` audit event
    return [scale * len(r.split()) for r in responses]
"""


def scale(folder, value: float) -> None:
    import pandas as pd

    pd.DataFrame({"v": [value]}).to_parquet(folder / "scale31.parquet")


@pytest.mark.fast
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
