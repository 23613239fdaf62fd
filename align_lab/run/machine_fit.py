"""The settings far outside what this machine serves, warned of as a run is admitted
(align_lab/run/admission.py): they run, many times slower, or stop part-way. One line each."""

from __future__ import annotations

from align_lab.cache import DISK_FULL_BYTES as TEMP_FREE_BYTES  # a temp folder with less free is said
from align_lab.train.memory import RUNTIME

BATCHES_AT_LEAST = 64 * 2**20  # a budget with less beside the runtime runs forwards of a row or so


def machine_warnings(spec) -> list[str]:
    """Settings far outside what this machine serves: they run, many times slower; one line each."""
    from align_lab.run.resources import machine

    cores, mem_gb = machine()
    hw, lines = spec.hardware, []
    if hw.num_threads and hw.num_threads > 2 * cores:
        lines.append(
            f"hardware.num_threads={hw.num_threads}: this machine gives the run {cores} cores; threads "
            "beyond them wait for one (slower, not faster); null uses the cores given"
        )
    if hw.memory_gb is not None and hw.memory_gb * 2**30 < RUNTIME + BATCHES_AT_LEAST:  # (0.3: 193 s, not 8:
        lines.append(  # hunt of 2026-12-04; it said only under 0.25)
            f"hardware.memory_gb={hw.memory_gb:g}: micro-batches of a row or so (many times slower) on a "
            f"machine of {mem_gb:.0f} GB (a run's runtime alone holds {RUNTIME >> 20} MiB); null uses the "
            "machine's memory"
        )
    elif hw.memory_gb is not None and hw.device == "cpu" and hw.memory_gb > 4 * mem_gb:
        lines.append(
            f"hardware.memory_gb={hw.memory_gb:g}: this machine has {mem_gb:.0f} GB; micro-batches sized "
            "for it may not fit (null uses the machine's memory)"
        )
    said = getattr(spec.model, "context_warning", lambda: None)()  # a pretrained policy's own limits
    return lines + ([said] if said else []) + temp_folder_short()


def temp_folder_short() -> list[str]:
    """The temp folder (TMPDIR) where its device is nearly full: wandb's tables, torch's compiled kernels and
    Hydra write there, and a run ended by it lost its steps since the last checkpoint with no word of
    where (hunt of 2026-12-04, c35: all 20 steps, TMPDIR 8 KiB free); one line before anything."""
    import shutil
    import tempfile

    folder = tempfile.gettempdir()
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return []
    if free >= TEMP_FREE_BYTES:
        return []
    return [
        f"TMPDIR: the temp folder {folder} has {free // 2**10} KiB free; the libraries write their temporary "
        "files there (wandb's tables at each evaluation), and a run that meets a full one stops; free space "
        "there or set TMPDIR to a folder with room"
    ]
