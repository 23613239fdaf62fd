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


def test_a_full_disk_no_file_named_says_the_temp_folder_where_its_device_is_the_full_one(
    tmp_path, monkeypatch
):
    """Hunt of 2026-12-04, c35: a full TMPDIR (wandb's table, written at the last step) was said "no space
    left on the device writing a file", and the user freed space on the run folder's disk, which had room."""
    import errno
    import os
    import shutil
    import tempfile
    from collections import namedtuple

    temp, run = tmp_path / "tmp", tmp_path / "run"
    temp.mkdir(), (run / "checkpoints").mkdir(parents=True)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1, 1, 8192 if str(p) == str(temp) else 2**40))
    error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # a flush's: no file named
    _, stop = failure(error, spec=None, ckpt=run / "checkpoints")
    said = f"error: no space left on the device writing a file in the temp folder {temp} (TMPDIR) (8 KiB free"
    assert str(stop).startswith(said), stop


def test_a_write_past_the_file_size_limit_is_one_line_naming_the_file_and_the_limit(tmp_path):
    """Hunt of 2026-12-04 (env/cwd, c54, c55): under `ulimit -f 200` (some login nodes), the final
    checkpoint's torch.save raised "unexpected pos 196160 vs 196048" (an 84-line traceback, rc 1, no resume
    line) and an SFT stage's safetensors "File too large (os error 27)" (74 lines): now the limit, named."""
    import subprocess
    import sys

    code = (
        "import resource, torch\nfrom pathlib import Path\nfrom safetensors.torch import save_file\n"
        "from align_lab.cache import disk_full_error\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200 * 1024, resource.RLIM_INFINITY))\n"
        "for name, save in (('a.pt', lambda p: torch.save({'w': torch.ones(10**5)}, p)),\n"
        "                   ('b.safetensors', lambda p: save_file({'w': torch.ones(10**5)}, p))):\n"
        "    path = Path(name)\n"
        "    try:\n        save(path)\n"
        "    except Exception as e:\n        said = disk_full_error(e, path)\n"
        "        print(name, said.errno, said.filename)\n"
        "small = Path('c.bin')\nsmall.write_bytes(bytes(10240))\n"  # another error, a file far under it
        "print('other', disk_full_error(RuntimeError('a bug'), small))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    expected = ["a.pt 27 a.pt", "b.safetensors 27 b.safetensors", "other None"]  # was EFBIG: any file under
    assert done.stdout.splitlines() == expected, done.stderr[-2000:]  # a limit below 1 MiB was "at" it
    error = OSError(27, "File too large", str(tmp_path / "checkpoints" / "state-00000003.pt.tmp"))
    _, stop = failure(error, spec=None, ckpt=tmp_path / "checkpoints")
    assert str(stop).startswith(
        f"error: writing {error.filename} met the file size limit of this process ("
    ) and "); raise it (ulimit -f), then " in str(stop), stop
