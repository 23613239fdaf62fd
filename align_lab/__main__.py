"""python -m align_lab: the Hydra app. Errors in the configuration end in one line and exit code 2."""

from __future__ import annotations

import os
import sys

from align_lab.app import format_error, main

if __name__ == "__main__":
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let config errors reach format_error
    try:
        main()
    except Exception as e:
        message = format_error(e)
        if message is None:
            raise
        print(f"align_lab: error: {message}", file=sys.stderr)
        sys.exit(2)
