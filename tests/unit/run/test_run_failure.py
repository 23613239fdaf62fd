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


def test_a_full_disk_in_a_copy_names_the_file_being_written_not_its_source(tmp_path):
    """CI at 3e69634: DeepSpeed's checkpoint copies its zero-to-fp32 script into the step folder; on a full
    disk shutil.copyfile's OSError has the source as `filename` and the copy as `filename2`, and the line said
    "no space left on the device writing <the venv>/site-packages/deepspeed/utils/<that script>"."""
    import errno
    import os

    source, copy = tmp_path / "zero_to_fp32.py", tmp_path / "checkpoints" / "step-3" / "zero_to_fp32.py"
    error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(source), None, str(copy))
    _, stop = failure(error, spec=None, ckpt=tmp_path / "checkpoints")
    assert str(stop).startswith(f"error: no space left on the device writing {copy}; free space"), stop
