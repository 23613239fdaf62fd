"""Issue 73 section 3, the cases still open from the last hunt: each a traceback or a misleading line
before, each one line now naming the key, its value and what is allowed."""

from __future__ import annotations

import logging

import pytest
from omegaconf import OmegaConf

from align_lab.config import ConfigError, build


@pytest.mark.parametrize(
    "target,why",
    [  # before: Hydra's 3-line "Error getting class ... Are you sure that module 'nope' is installed?"
        (
            "nope.Nope",
            "no module nope; a module of yours must be importable from where you run, or on PYTHONPATH",
        ),
        (
            "align_lab.envs.Nope",
            "align_lab.envs has no Nope",
        ),  # before: "No module named 'align_lab.envs.Nope'"
        ("align_lab.envs.base.Step.x", "align_lab.envs.base has no Step.x"),
        ("my_envs:Game", "must be module.Class"),
    ],
)
def test_an_env_class_that_does_not_exist_is_one_line_saying_what_is_missing(target, why, caplog):
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as e:
        build(OmegaConf.create({"_target_": target}), "env")
    assert str(e.value) == f"env._target_={target}: not an importable class ({why})"
    assert caplog.messages == []  # nothing logged before the one line
