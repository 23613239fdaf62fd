"""Issue 59 item 3: nothing completes that did not do what its config says. Each case stops (or is
refused) in one line naming the key, through the real run entry on the toy world."""

from __future__ import annotations

import json

import pytest

from align_lab.config import ConfigError
from align_lab.study.summary import RunStopped
from tests.conftest import compose, run_in_process


@pytest.mark.fast
def test_a_kto_threshold_above_every_sampled_reward_stops_in_one_line_naming_the_range(tmp_path, cache_dir):
    """toy_prefs' gold rewards are not 0/1, so only the sampled rewards tell (before: a 61-line
    traceback after the preferences stage)."""
    run_dir = tmp_path / "run"
    with pytest.raises(RunStopped) as e:
        run_in_process(["algo=kto", "reward=gold", "algo.desirable_threshold=100"], run_dir, cache_dir)
    message = str(e.value)
    assert message.startswith("error: algo.desirable_threshold=100.0: all ") and "\n" not in message
    assert "are at or below it, so KTO has nothing to contrast; choose a threshold in [" in message
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "traceback" not in summary


@pytest.mark.fast
@pytest.mark.parametrize("threshold", ["1", "-0.5"])
def test_a_kto_threshold_outside_a_verifiers_0_1_is_refused_at_admission(threshold):
    from align_lab.admission import spec_from_config
    from align_lab.study.cross_checks import check_run

    world = ["algo=kto", "task=toy_arith", "reward=verifier", "cache_dir=/nonexistent"]
    spec = spec_from_config(*compose([*world, f"algo.desirable_threshold={threshold}"]))
    with pytest.raises(
        ConfigError, match=rf"^algo.desirable_threshold={float(threshold)}: reward=verifier on "
    ):
        check_run(spec, here=False)
    check_run(spec_from_config(*compose([*world, "algo.desirable_threshold=0.5"])), here=False)
