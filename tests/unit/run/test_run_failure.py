"""What a run that ended with an exception writes into summary.json (run/execute.py failure)."""

from __future__ import annotations

import pytest

from align_lab.run.failure import failure
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


# torch's own message, as a GRPO run at SmolLM2's size held to 0.04 of an H200 raised it (2026-12-04)
H200 = (
    "CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 139.80 GiB of which "
    "133.54 GiB is free. Including non-PyTorch memory, this process has 6.25 GiB memory in use. 5.59 GiB "
    "allowed; Of the allocated memory 5.33 GiB is allocated by PyTorch, and 266.21 MiB is reserved by "
    "PyTorch but unallocated. If reserved but unallocated memory is large try setting "
    "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation."
)


def _spec(micro_batch_size="auto", memory_gb=None):
    from types import SimpleNamespace

    return SimpleNamespace(
        train=SimpleNamespace(micro_batch_size=micro_batch_size),
        hardware=SimpleNamespace(memory_gb=memory_gb),
    )


def test_a_gpu_out_of_memory_is_one_line_with_the_budget_that_fits(tmp_path):
    """The H200 run above was a 143-line traceback; the same run with hardware.memory_gb=5 completed."""
    import torch

    summary, stop = failure(torch.OutOfMemoryError(H200), spec=_spec(), ckpt=tmp_path / "checkpoints")
    said = (
        "error: out of GPU memory during the run (tried to allocate 20.00 MiB; 5.59 GiB for this run): "
        "micro-batches were planned for the device's whole memory (hardware.memory_gb unset); plan them "
        "for 5 GiB: resume from step 0 with: "
    )
    assert isinstance(stop, RunStopped) and str(stop).startswith(said), stop
    assert str(stop).endswith(" hardware.memory_gb=5") and summary == {"status": "failed", "error": str(stop)}


def test_a_gpu_others_share_plans_for_what_this_run_held_and_what_was_free(tmp_path):
    from align_lab.run.failure import gpu_room

    shared = "GPU 0 has a total capacity of 79.20 GiB of which 1.00 GiB is free. Including non-PyTorch "
    shared += "memory, this process has 6.25 GiB memory in use. Of the allocated memory ..."
    assert gpu_room(shared) == int(7.25 * 2**30) and gpu_room("CUDA out of memory.") is None


@pytest.mark.parametrize(
    "room, budget, expected",
    [
        (5.59, None, 5.0),
        (5.59, 20, 5.0),
        (5.59, 4, 3.0),
        (None, 8, 6.0),
        (None, None, None),
        (0.05, None, None),
    ],
)
def test_the_budget_said_is_under_the_room_and_under_a_budget_that_failed(room, budget, expected):
    from align_lab.run.failure import memory_gb

    assert memory_gb(room and int(room * 2**30), budget) == expected


def test_fixed_micro_batches_that_do_not_fit_ask_for_a_new_run(tmp_path):
    """train.micro_batch_size is kept on resume (it may move a float's last bits): the line says so."""
    import torch

    _, stop = failure(torch.OutOfMemoryError(H200), spec=_spec(micro_batch_size=8), ckpt=tmp_path / "c")
    assert str(stop).endswith(
        ": train.micro_batch_size=8 does not fit; run it again with train.micro_batch_size=auto or below 8 "
        "(a new run: a resume keeps it)"
    ), stop
    _, stop = failure(torch.OutOfMemoryError(H200), spec=_spec(micro_batch_size=None), ckpt=tmp_path / "c")
    assert "train.micro_batch_size=null (whole minibatches) does not fit; run it again with " in str(stop)


def test_a_cpu_allocation_torch_refuses_is_the_same_line_with_the_machines_memory(tmp_path):
    import torch

    from align_lab.train.memory import machine_memory

    try:
        torch.empty(1 << 50, dtype=torch.uint8)  # 1 PiB: torch's CPU allocator refuses it
    except RuntimeError as e:
        summary, stop = failure(e, spec=_spec(), ckpt=tmp_path / "checkpoints")
    room = f"{machine_memory() / 2**30:.2f} GiB for this run"
    assert str(stop).startswith(
        f"error: out of memory during the run (tried to allocate 1048576.00 GiB; {room})"
    )
    assert summary["status"] == "failed" and "traceback" not in summary
