#!/usr/bin/env bash
# The project's test command: everything the tests need is started from here.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE="${WANDB_MODE:-offline}" WANDB_SILENT=true
exec .venv/bin/python -m pytest "$@"
