"""hardware.offload_reference (models/offload.py, run/reference_offload.py): a frozen reference's weights
leave memory for an unlinked file and come back byte for byte; which runs do it; a full disk keeps it in
memory with one line."""

import copy
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from align_lab.models.lora import frozen_base
from align_lab.models.offload import offloadable, offloaded
from align_lab.models.sequences import response_logprobs
from align_lab.run.hardware import Hardware
from align_lab.run.reference_offload import filesystem, offloads, reference_offload
from align_lab.train.context import Models
from tests.conftest import ROOT
from tests.integration.test_faults import _read_only_mounts_work
from tests.unit.models.test_sequences import batch, tiny
from tests.unit.rollout.test_rollout_sampling import with_lora


def frozen(kind: str = "llama"):
    return tiny(kind).eval().requires_grad_(False)


def test_the_weights_come_back_byte_for_byte_and_the_forward_gives_the_same_bits(tmp_path):
    model, rows = frozen(), batch()
    before = response_logprobs(model, *rows)[0]  # (7, 6)
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    versions = [p._version for p in model.parameters()]
    offload = offloaded(model, tmp_path)
    assert list(tmp_path.iterdir()) == []  # unlinked: nothing stays if the process dies
    assert offload.nbytes == sum(p.numel() * 4 for p in model.parameters())  # the tied weight once
    for _ in range(2):
        offload.offload()
        assert all(p.numel() == 0 for p in model.parameters())  # out of memory
        with pytest.raises((RuntimeError, ZeroDivisionError)):  # a use that skips the reload: loud
            response_logprobs(model, *rows)
        offload.reload()
        assert all(torch.equal(p, weights[name]) for name, p in model.named_parameters())
        # weights_version unchanged: an evaluation still reuses the reference's samples (train/cadence.py)
        assert [p._version for p in model.parameters()] == versions
        assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied
        assert torch.equal(response_logprobs(model, *rows)[0], before)
    offload.reload()  # a no-op while in memory
    offload.close()


def test_models_hold_the_reference_in_memory_for_a_block_of_its_forwards_only(tmp_path):
    policy, reference = frozen().train(), frozen()
    offload = offloaded(reference, tmp_path)
    models = Models(policy, reference, offload=offload)
    offload.offload()
    with models.reference_in_memory() as held:  # step 3's forwards
        assert held is reference and not offload.away
    assert offload.away  # the update's memory
    with models.evaluation_reference() as held:
        assert held is reference and not offload.away  # the engine reads its weights: in memory
    assert offload.away
    with Models(policy, reference).reference_in_memory() as held:  # none offloaded: as it is
        assert held is reference and offload.away


def test_only_a_reference_with_weights_of_its_own_is_offloadable():
    policy = frozen("llama")
    assert offloadable(copy.deepcopy(policy), (policy,))
    assert not offloadable(policy, (policy,))  # a benchmark's policy standing in for the reference
    lora = with_lora(copy.deepcopy(policy))
    assert not offloadable(frozen_base(lora), (lora,))  # a LoRA policy's base is its reference
    assert not offloadable(tiny("llama"), ())  # weights that train


def test_auto_offloads_on_a_cpu_with_the_torch_backend_where_the_run_folder_is_on_a_disk(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\n/dev/vdb /dev/shm/x\\040y xfs rw 0 0\n"
    )
    assert filesystem(tmp_path, str(mounts)) == "ext4"
    assert filesystem(Path("/dev/shm/run"), str(mounts)) == "tmpfs"
    assert filesystem(Path("/dev/shm/x y/run"), str(mounts)) == "xfs"
    assert filesystem(tmp_path, str(tmp_path / "none")) is None
    on_disk = tmp_path if filesystem(tmp_path) not in ("tmpfs", "ramfs") else None
    if on_disk is not None:
        assert offloads("auto", "cpu", "torch", on_disk)
    assert not offloads("auto", "cuda", "torch", tmp_path) and not offloads(
        "auto", "cpu", "deepspeed", tmp_path
    )
    assert not offloads(False, "cpu", "torch", tmp_path) and offloads(True, "cpu", "torch", tmp_path)
    policy = frozen().train()
    models = Models(policy, copy.deepcopy(policy).requires_grad_(False))
    assert reference_offload(Hardware(offload_reference=True), models, tmp_path) is not None
    assert reference_offload(Hardware(offload_reference=False), models, tmp_path) is None
    assert reference_offload(Hardware(offload_reference=True), Models(policy), tmp_path) is None  # none held


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        ({"offload_reference": "yes"}, "offload_reference=yes: must be auto, true or false"),
        ({"offload_reference": 1}, "offload_reference=1: must be auto, true or false"),
        ({"offload_reference": True, "device": "cuda"}, "offload_reference=true: must be auto or false with"),
        (
            {"offload_reference": True, "backend": "deepspeed"},
            "offload_reference=true: must be auto or false",
        ),
    ],
)
def test_a_setting_it_cannot_do_is_one_line_naming_the_key(keys, said):
    with pytest.raises(ValueError) as error:
        Hardware(**keys)
    assert str(error.value).startswith(said) and "\n" not in str(error.value), str(error.value)


def test_a_write_that_fails_keeps_the_reference_in_memory_with_one_line(tmp_path, monkeypatch, caplog):
    model = frozen()
    weights = [p.detach().clone() for p in model.parameters()]

    real, written = os.pwrite, []

    def full(fd, data, offset):  # the first parameter fits, the second finds the disk full
        if written:
            raise OSError(28, "No space left on device")
        written.append(real(fd, data, offset))
        return written[-1]

    monkeypatch.setattr("align_lab.models.offload.os.pwrite", full)
    offload = offloaded(model, tmp_path)
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        offload.offload()  # waits for the write: it failed
        offload.offload()  # said once
    [line] = [r.getMessage() for r in caplog.records]
    said = (
        f"could not write the reference's weights to {tmp_path} (No space left on device): it stays in memory"
    )
    assert line.startswith(f"align_lab: warning: hardware.offload_reference: {said}"), line
    assert not offload.away and written
    assert os.fstat(offload.file.fileno()).st_size == 0  # its disk given back
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), weights, strict=True))
    assert list(tmp_path.iterdir()) == []


def test_a_folder_it_cannot_write_keeps_the_reference_in_memory_with_one_line(tmp_path, caplog):
    (tmp_path / "file").write_text("")  # a file where the run folder's parent should be
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        assert offloaded(frozen(), tmp_path / "file" / "run") is None
    [line] = [r.getMessage() for r in caplog.records]
    assert f"could not write the reference's weights to {tmp_path}/file/run (" in line, line


@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
def test_a_really_full_disk_keeps_the_reference_in_memory_with_one_line(tmp_path):
    """A real full file system (a 64 KB tmpfs in a private mount namespace) under a reference of 1 MiB."""
    folder = tmp_path / "small"
    folder.mkdir()
    code = (
        "import torch; from pathlib import Path; from align_lab.models.offload import offloaded\n"
        "model = torch.nn.Linear(512, 512).requires_grad_(False); before = model.weight.clone()\n"
        f"offload = offloaded(model, Path('{folder}')); offload.offload()\n"
        "print(offload.away, torch.equal(model.weight, before))\n"
    )
    script = f'mount -t tmpfs -o size=64k tmpfs {folder} && exec {sys.executable} -c "{code}"'
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.split() == ["False", "True"], result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("align_lab:")]
    assert f"could not write the reference's weights to {folder} (No space left on device)" in line, line


def test_auto_keeps_the_reference_in_memory_on_a_network_filesystem(tmp_path, monkeypatch):
    """NFS keeps an unlinked open file as `.nfsXXXX` (left behind by a killed run) and reloads cross the
    network: auto writes no file there; true still does."""
    for kind in ("nfs", "nfs4", "cifs", "fuse.sshfs"):
        monkeypatch.setattr("align_lab.run.reference_offload.filesystem", lambda folder, k=kind: k)
        assert not offloads("auto", "cpu", "torch", tmp_path), kind
        assert offloads(True, "cpu", "torch", tmp_path), kind


def test_auto_writes_only_where_the_disk_has_room_for_every_ranks_file_twice(tmp_path, monkeypatch, caplog):
    policy = frozen().train()
    models = Models(policy, copy.deepcopy(policy).requires_grad_(False))
    nbytes = sum(p.numel() * 4 for p in models.reference.parameters())
    free = {"blocks": 0}

    class Stat:
        f_frsize = 1

        @property
        def f_bavail(self):
            return free["blocks"]

    monkeypatch.setattr("align_lab.run.reference_offload.filesystem", lambda folder: "ext4")
    monkeypatch.setattr("align_lab.run.reference_offload.os.statvfs", lambda folder: Stat())
    for ranks, blocks, offloads_there in (
        (1, 2 * nbytes, True),
        (1, 2 * nbytes - 1, False),
        (2, 3 * nbytes, False),
    ):
        free["blocks"] = blocks
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="align_lab"):
            offload = reference_offload(Hardware(processes=ranks), models, tmp_path)
        assert (offload is not None) == offloads_there, (ranks, blocks)
        if offload is not None:
            offload.close()
        else:
            [line] = [r.getMessage() for r in caplog.records]
            assert line.startswith(
                f"align_lab: hardware.offload_reference=auto: the reference stays in memory: {tmp_path} has"
            ), line
    free["blocks"] = 0  # `true` is the user's word: written (a write that fails then says so)
    offload = reference_offload(Hardware(offload_reference=True), models, tmp_path)
    assert offload is not None
    offload.close()


def test_the_file_is_held_from_the_users_code_until_closed_and_a_failing_read_still_closes_it(
    tmp_path, monkeypatch
):
    from align_lab.user_fds import HELD

    model = frozen()
    offload = offloaded(model, tmp_path)
    fd = offload.file.fileno()
    assert HELD.get(fd) == "offloaded reference's file"  # user_fds.py: a call may not close it
    offload.offload()

    def failing(fd, tensor, offset):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("align_lab.models.offload._read", failing)
    with pytest.raises(OSError):
        offload.close()
    assert offload.closed and offload.file.closed and fd not in HELD
    offload.close()  # a second close: nothing


def test_a_failed_runs_end_never_waits_for_the_write_and_never_closes_the_file_under_it(
    tmp_path, monkeypatch
):
    """discard (a run that failed or was stopped) while the thread still writes: the thread closes the file
    as its write ends, so its descriptor's number is never written to after another file took it."""
    import threading

    from align_lab.user_fds import HELD

    go, real = threading.Event(), os.pwrite

    def slow(fd, data, offset):
        go.wait(10)
        return real(fd, data, offset)

    monkeypatch.setattr("align_lab.models.offload.os.pwrite", slow)
    model = frozen()
    offload = offloaded(model, tmp_path)
    offload.discard()  # returns at once: the write is under way
    assert offload.closed and not offload.file.closed and offload.writing.is_alive()
    go.set()
    offload.writing.join(10)
    assert offload.file.closed and "offloaded reference's file" not in HELD.values()
    assert all(p.numel() > 0 for p in model.parameters())  # never offloaded: nothing to read back
    offload.close()  # after discard: nothing
