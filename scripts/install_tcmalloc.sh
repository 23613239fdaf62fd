#!/usr/bin/env bash
# gperftools' tcmalloc (Debian's libtcmalloc-minimal4, ~0.3 MB), which `python -m align_lab` starts itself
# with when it is installed (align_lab/malloc.py): a SmolLM2 step ~25% faster than with glibc's malloc,
# its peak within ~100 MiB (docs/memory.md, "The allocator"). Idempotent; needs root and apt. Without
# them it says so and leaves the machine as it is: runs then use glibc's malloc, as before.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python; [ -x "$py" ] || py=python3  # align_lab.malloc needs only the standard library
found=$("$py" -c "import sys; sys.path.insert(0, '.'); from align_lab.malloc import library; print(library({}) or '')" || true)
if [ -n "$found" ]; then
  echo "tcmalloc: $found"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq libtcmalloc-minimal4 >/dev/null)) \
    && echo "tcmalloc: installed libtcmalloc-minimal4" \
    || echo "tcmalloc: apt-get could not install libtcmalloc-minimal4: runs use glibc's malloc (docs/memory.md)"
elif [ "$(id -u)" = 0 ]; then
  echo "tcmalloc: not installed and no apt-get to install it (Debian's libtcmalloc-minimal4): runs use glibc's malloc (docs/memory.md)"
else
  echo "tcmalloc: not installed and no root to install it (apt-get install libtcmalloc-minimal4): runs use glibc's malloc (docs/memory.md)"
fi
