"""A frozen model's weights out of memory between its uses: written once to an unlinked file beside the
run and read back, byte for byte, before its next forward, so the memory they held serves the update.
OpenRLHF's --ref_reward_offload and verl's reference `param_offload` move a reference out of the GPU to
the host; on a CPU the place it leaves memory for is the disk (the kernel's page cache keeps the file
while memory allows, so a reload is a copy: 0.03 s for SmolLM2's 513 MiB on the EPYC Zen 5, docs/memory.md).

`hardware.offload_reference` says which runs do it (run/reference_offload.py); the run's Models hand the
reference out in memory (train/context.py `reference_in_memory`) and offload it after step 3 and after
evaluation. An offloaded parameter holds no element, so a use that skips the reload fails loudly (a shape
mismatch, a division by zero), never silently."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

import torch

from align_lab.user_fds import hold, let_go

log = logging.getLogger("align_lab")


def _bytes(tensor: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, to write or read in place."""
    return memoryview(tensor.detach().reshape(-1).view(torch.uint8).numpy())


def _write(fd: int, tensor: torch.Tensor, offset: int) -> None:
    data, done = _bytes(tensor), 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)


def _read(fd: int, tensor: torch.Tensor, offset: int) -> None:
    data, done = _bytes(tensor), 0
    while done < len(data):
        got = os.preadv(fd, [data[done:]], offset + done)
        if got == 0:  # an unlinked file nobody else can reach: only a failing disk gets here
            raise OSError(
                f"the offloaded weights' file ended at byte {offset + done} of {offset + len(data)}"
            )
        done += got


def offloadable(model: torch.nn.Module, others: tuple = ()) -> bool:
    """Whether `model`'s parameters can leave memory and come back the same: contiguous CPU tensors, none
    shared with `others` (a LoRA policy's frozen base is its reference; a benchmark may hand the policy
    itself)."""
    theirs = {p.data_ptr() for other in others if other is not None for p in other.parameters()}
    mine = list(model.parameters())
    fit = all(p.device.type == "cpu" and p.is_contiguous() and not p.requires_grad for p in mine)
    return bool(mine) and fit and not any(p.data_ptr() in theirs for p in mine)


class Offloaded:
    """`model`'s parameters (each once: a tied weight is one parameter) in an unlinked file of `folder`,
    written by a thread started here (1-4 s for SmolLM2 where the disk is busy, 0.1 s where it is not: it
    runs beside the first rollout); `offload` waits for it, then drops them from memory, `reload` reads
    them back. The file goes with the process, however it ends. Where the file could not be written (a
    full disk), the first `offload` says so in one line and the weights stay in memory for the run."""

    def __init__(self, model: torch.nn.Module, folder: Path) -> None:
        self.parameters = list(model.parameters())
        self.shapes = [p.shape for p in self.parameters]
        self.offsets = [0]
        for p in self.parameters:
            self.offsets.append(self.offsets[-1] + p.numel() * p.element_size())
        self.folder, self.file = folder, tempfile.TemporaryFile(dir=folder, prefix="offloaded-")
        self.away, self.unwritten, self.closed = False, None, False  # unwritten: the write's OSError
        # a call of the user's code may not close it (user_fds.py): its number reused would read other bytes
        hold("offloaded reference's file", self.file.fileno())
        # the file is closed by whoever is last: `discard`, or the writing thread where it was still writing
        self.lock, self.close_after_write, self.write_ended = threading.Lock(), False, False
        self.writing = threading.Thread(target=self._write, name="align_lab-offload", daemon=True)
        self.writing.start()

    def _write(self) -> None:
        fd = self.file.fileno()
        try:
            for p, offset in zip(self.parameters, self.offsets, strict=False):
                _write(fd, p, offset)
        except OSError as error:
            self.unwritten = error
            os.ftruncate(fd, 0)  # what was written gives its disk back (a full disk)
        finally:
            with self.lock:
                self.write_ended = True
                if self.close_after_write:  # the run ended while it wrote: closed here, not under it
                    self._close_file()

    @property
    def nbytes(self) -> int:
        return self.offsets[-1]

    def written(self) -> bool:
        """Whether the file holds the weights (the write waited for; its failure said once)."""
        if self.writing is not None:
            self.writing.join()
            self.writing = None
            if self.unwritten is not None:
                said_unwritten(self.folder, self.unwritten, self.nbytes)
        return self.unwritten is None

    def offload(self) -> None:
        """The parameters out of memory: each a tensor of no element (its version kept); after `close`,
        nothing."""
        if self.closed or not self.written():
            return
        for p in self.parameters:
            p.data = torch.empty(0, dtype=p.dtype)
        self.away = True

    def reload(self) -> None:
        """The parameters back in memory, as they were written (a no-op while they are there)."""
        if not self.away:
            return
        for p, shape, offset in zip(self.parameters, self.shapes, self.offsets, strict=False):
            weight = torch.empty(shape, dtype=p.dtype)
            _read(self.file.fileno(), weight, offset)
            p.data = weight
        self.away = False

    def close(self) -> None:
        """Back in memory for good, the file closed (a completed run's end, train/cadence.py finish). A
        second call does nothing; a failing read or an interrupted wait still lets go of the file."""
        if self.closed:
            return
        try:
            self.written()
            self.reload()
        finally:
            self.discard()

    def discard(self) -> None:
        """The file let go of without reading the weights back, never waiting (a run that failed or was
        stopped: its models are of no further use, and a read could fail as the run did, out of memory):
        closed now, or by the writing thread as its write ends, never under it (its descriptor's number
        could by then be another file's). Left to the garbage collector, the descriptor would close at any
        later moment, in a later run of the process among them."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if not self.write_ended:
                self.close_after_write = True
                return
            self._close_file()

    def _close_file(self) -> None:
        let_go(self.file.fileno())
        self.file.close()


def said_unwritten(folder: Path, error: OSError, nbytes: int) -> None:
    more = f"{nbytes / 2**30:.2f} GiB more at the update"
    log.warning(
        f"align_lab: warning: hardware.offload_reference: could not write the reference's weights to "
        f"{folder} ({error.strerror or error}): it stays in memory ({more})"
    )


def offloaded(model: torch.nn.Module, folder: Path) -> Offloaded | None:
    """`model` offloadable between its uses (`Offloaded`), or None where its file cannot be made (a
    read-only folder): said in one line, and the model stays in memory."""
    try:
        return Offloaded(model, folder)
    except OSError as error:
        said_unwritten(folder, error, sum(p.numel() * p.element_size() for p in model.parameters()))
        return None
