"""`hardware.offload_reference`: whether a run's frozen reference leaves memory between its forwards
(models/offload.py). `auto` (the default) does on a CPU with the torch backend where the reference has
weights of its own and the run folder is on a local disk with room for it: a folder in memory (tmpfs)
would hold the file in memory still, only outside the process; on a network filesystem (NFS, SMB, sshfs)
every reload crosses the network and a killed run leaves its unlinked file behind (NFS's `.nfsXXXX`); a
disk without twice the ranks' files free would be filled by them before the run's checkpoints. A GPU run
keeps its reference on the GPU (moving it to the host and back each step is not built), DeepSpeed's engine
places weights itself."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from align_lab.models.offload import Offloaded, offloadable, offloaded

log = logging.getLogger("align_lab")
IN_MEMORY = ("tmpfs", "ramfs")  # filesystems whose files are memory
NETWORK = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs")  # an unlinked file lingers; reads cross it
ROOM = 2  # auto writes where the disk has this many times the ranks' files free: room left for checkpoints


def filesystem(folder: Path, mounts: str = "/proc/self/mounts") -> str | None:
    """The type of the filesystem `folder` is on (the longest mount point above it), None where the
    mount table cannot be read."""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return None
    where, found = str(folder.resolve()), (-1, None)
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = where == point or where.startswith(point.rstrip("/") + "/")
        if inside and len(point) > found[0]:
            found = (len(point), fields[2])
    return found[1]


def offloads(setting, device: str, backend: str, folder: Path) -> bool:
    """Whether hardware.offload_reference=`setting` offloads on `device` with `backend`, writing to
    `folder` (Hardware refuses `true` off a CPU or with DeepSpeed); `auto`'s room on the disk aside
    (`room_for`)."""
    if setting is True:
        return True
    kind = filesystem(folder)
    return setting == "auto" and device == "cpu" and backend == "torch" and kind not in IN_MEMORY + NETWORK


def room_for(folder: Path, nbytes: int) -> bool:
    """Whether `folder`'s disk has ROOM x `nbytes` free (said in one line where not: auto keeps the
    reference in memory)."""
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    free = stat.f_bavail * stat.f_frsize
    if free >= ROOM * nbytes:
        return True
    log.info(
        f"align_lab: hardware.offload_reference=auto: the reference stays in memory: {folder} has "
        f"{free / 2**30:.2f} GiB free, auto writes where {ROOM * nbytes / 2**30:.2f} GiB are"
    )
    return False


def reference_offload(hardware, models, folder: Path) -> Offloaded | None:
    """The run's reference, offloadable between its forwards in a file of `folder` where
    hardware.offload_reference says so and it has weights of its own; else None (it stays in memory)."""
    reference, how = models.reference, (hardware.offload_reference, hardware.device, hardware.backend)
    if reference is None or not offloads(*how, folder):
        return None
    if not folder.is_dir():  # removed under the run: the run says so in its own line, at its next write
        return None
    if not offloadable(reference, (models.policy, models.critic, models.teacher)):
        return None
    files = hardware.ranks * sum(p.numel() * p.element_size() for p in reference.parameters())
    if hardware.offload_reference == "auto" and not room_for(folder, files):
        return None
    return offloaded(reference, folder)
