"""The read bandwidth a run's perf/rollout_mbu divides by, by the size of the read (train/roofline.py).

A run measures this machine's bandwidth once (`roofline.measure`, kept in machine_limits.json) as the
fastest sum over a 1 GiB tensor, the `floor` benchmark's read. A read the last-level cache can partly
serve reads faster than memory, so its figure makes every MBU low: this times sums over tensors of
each --sizes MiB (the fastest of --repeats, the sizes alternated over --rounds, so a neighbour's load
falls on all of them alike) and prints each size's bandwidth beside the 1 GiB read's, with the
last-level cache the CPU reports (twice it was the read until 2026-12-05).

    python -m benchmarks run machine_limits                       # 64, 256, 1024, 4096 MiB, 2 threads
    python -m benchmarks run machine_limits --sizes 64,1024 --rounds 5
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks.harness import arguments, machine, machine_line, report, schedule
from benchmarks.options import at_least

NEEDS = ()
SMOKE = ("--sizes", "64,128", "--repeats", "2", "--rounds", "1")


def last_level_cache() -> int:
    """The largest cache /sys reports for cpu0, in bytes (0 where it says none)."""
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = f.read_text().strip()
        sizes.append(int(text.rstrip("KMG")) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1))
    return max(sizes, default=0)


def read_rate(mib: int, repeats: int) -> float:
    """Bytes/s of the fastest of `repeats` sums over a `mib` MiB fp32 tensor (after one untimed)."""
    x = torch.ones(mib * 2**20 // 4)
    x.sum()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        x.sum()
        times.append(time.perf_counter() - start)
    return x.numel() * 4 / min(times)


def main(argv: list[str] | None = None) -> None:
    from align_lab.train.roofline import READ_BYTES

    parser = arguments(__doc__, rounds=3)
    parser.add_argument("--sizes", default="64,256,1024,4096", help="read sizes in MiB, comma-separated")
    parser.add_argument("--repeats", type=at_least(1), default=7, help="timed sums a size a round")
    parser.add_argument("--threads", type=at_least(1), default=2, help="torch threads (a run's: its own)")
    args = parser.parse_args(argv)
    print(machine_line(machine()), flush=True)
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    rates: dict[int, list[float]] = {size: [] for size in sizes}
    for _, size in schedule(sizes, args.rounds):
        rates[size].append(read_rate(size, args.repeats))
    print(f"last-level cache {last_level_cache() / 2**20:.0f} MiB; a run reads {READ_BYTES // 2**20} MiB")
    rows = []
    for size in sizes:
        each = ", ".join(f"{r / 1e9:.1f}" for r in rates[size])
        print(f"{size} MiB: {each} GB/s by round", flush=True)
        rows.append(
            {"MiB": size, **{f"round {i + 1} GB/s": round(r / 1e9, 1) for i, r in enumerate(rates[size])}}
        )
    report("machine_limits", args, rows, notes={"last_level_cache_mib": last_level_cache() // 2**20})


if __name__ == "__main__":
    main()
