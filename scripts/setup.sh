#!/usr/bin/env bash
# Creates .venv and installs align_lab with its dev tools and the DeepSpeed and LoRA (peft) backends.
# torch is pinned to the CPU build (constraints.txt): an unpinned torch pulls several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt "torch==2.13.0"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev,deepspeed,lora]"
echo "align_lab installed in .venv"
