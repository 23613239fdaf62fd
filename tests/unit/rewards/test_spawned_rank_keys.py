"""A reward or verifier a spawned rank loads again as it unpickles its job names its key as rank 0 does
(thirty-eighth hunt, case 40: rank 1's warning for a module turning autocast on at import named
`path=mod:f`, no such key)."""

from __future__ import annotations

import logging
import sys

from align_lab.rewards.function import FunctionReward
from align_lab.tasks.verifiers import Yours

MODULE = "import torch\ntorch.set_autocast_enabled('cpu', True)\n\ndef f(*args):\n    return 1.0\n"


def test_a_reward_loaded_again_on_a_rank_is_named_by_its_key(tmp_path, monkeypatch, caplog):
    (tmp_path / "rank_ac_reward.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    reward = FunctionReward.__new__(FunctionReward)  # as pickle makes it on a spawned rank
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        reward.__setstate__({"path": "rank_ac_reward:f", "probe_key": "reward.path=rank_ac_reward:f"})
    said = [r.getMessage() for r in caplog.records if "autocast" in r.getMessage()]
    assert said and said[0].startswith(
        "warning: reward.path=rank_ac_reward:f changed the process's cpu autocast"
    )
    sys.modules.pop("rank_ac_reward", None)


def test_a_verifier_loaded_again_on_a_rank_is_named_by_its_key(tmp_path, monkeypatch, caplog):
    (tmp_path / "rank_ac_verifier.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    verifier = Yours.__new__(Yours)
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        verifier.__setstate__({"name": "rank_ac_verifier:f", "timeout_s": None})
    said = [r.getMessage() for r in caplog.records if "autocast" in r.getMessage()]
    assert said and said[0].startswith("warning: task.verifier=rank_ac_verifier:f changed the process's cpu")
    sys.modules.pop("rank_ac_verifier", None)
