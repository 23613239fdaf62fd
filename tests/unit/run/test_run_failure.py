"""What a run that ended with an exception writes into summary.json (run/execute.py failure)."""

from __future__ import annotations

from align_lab.run.execute import failure
from align_lab.run.summary import RunStopped
from align_lab.value_checks import ConfigError


def test_a_config_error_raised_inside_the_run_is_its_one_line_not_a_traceback(tmp_path):
    """A check only the run can make (after its stages) raises ConfigError: the summary kept a
    traceback of it and the user a 40-line one, where admission's same error is one line."""
    error = ConfigError("algo.ptx_coef=0.1: adds the NLL of the task's demonstrations, and task=x has none")
    summary, stop = failure(error, spec=None, ckpt=tmp_path / "checkpoints")
    assert summary == {"status": "failed", "error": str(error)}
    assert isinstance(stop, RunStopped) and str(stop) == f"error: {error}"


def test_a_bug_keeps_its_traceback(tmp_path):
    try:
        raise KeyError("x")
    except KeyError as e:
        summary, stop = failure(e, spec=None, ckpt=tmp_path / "checkpoints")
    assert stop is None and summary["status"] == "failed" and "KeyError" in summary["traceback"]
