"""python -m align_lab: the Hydra app. Errors in the configuration end in one line and exit code 2."""

from __future__ import annotations

import os
import sys

from align_lab import malloc

if __name__ == "__main__":  # before torch is imported: this process starts again with tcmalloc, once
    malloc.start_with_it("align_lab")


def command() -> None:
    """The command: its arguments put in order, then Hydra's app; a configuration error in one line."""
    from align_lab.app import (
        check_group_overrides,
        format_error,
        main,
        multirun_first,
        renamed_keys,
        run_dir_in_a_sweep,
    )

    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let config errors reach format_error
    sys.argv[1:], moved = multirun_first(sys.argv[1:])  # `algo=ppo,rloo -m seed=0,1`: -m first
    for note in (moved, run_dir_in_a_sweep(sys.argv[1:])):
        if note:
            print(note, file=sys.stderr)
    pairs = [f"{a}={b}" for a, b in zip(sys.argv, sys.argv[1:], strict=False)]
    if {"--cfg=job", "-c=job"} & {*pairs, *sys.argv}:
        sys.argv.append("--resolve")  # --cfg job shows the values a run uses, not ${...} interpolations
    try:
        sys.argv[1:] = renamed_keys(sys.argv[1:])  # the old flat keys (algo.clip=0.3), said once
        check_group_overrides(sys.argv[1:])
        main()
    except Exception as e:
        message = format_error(e)
        if message is None:
            raise
        print(f"align_lab: error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    try:
        command()
    except KeyboardInterrupt:  # before a run or sweep takes it: importing, Hydra composing (seventeenth hunt)
        print(
            "align_lab: interrupted by SIGINT as the command started, before any run: rerun it",
            file=sys.stderr,
        )
        sys.exit(130)
