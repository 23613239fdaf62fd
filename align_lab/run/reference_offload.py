"""`hardware.offload_reference`: whether a run's frozen reference leaves memory between its forwards
(models/offload.py). `auto` (the default) does on a CPU with the torch backend where the reference has
weights of its own and the run folder is on a disk: a folder in memory (tmpfs) would hold the file in
memory still, only outside the process. A GPU run keeps its reference on the GPU (moving it to the host
and back each step is not built), DeepSpeed's engine places weights itself."""

from __future__ import annotations

from pathlib import Path

from align_lab.models.offload import Offloaded, offloadable, offloaded

IN_MEMORY = ("tmpfs", "ramfs")  # filesystems whose files are memory


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
    `folder` (Hardware refuses `true` off a CPU or with DeepSpeed)."""
    if setting is True:
        return True
    return (
        setting == "auto" and device == "cpu" and backend == "torch" and filesystem(folder) not in IN_MEMORY
    )


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
    return offloaded(reference, folder)
