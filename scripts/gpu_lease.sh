#!/usr/bin/env bash
# One call on a lent GPU machine (docs/gpu.md, "A lease, step by step"), each part inside what is left of
# BUDGET seconds (default 520: a 600 s call less the install and the copies back): install the wheels
# scripts/gpu_prepare.sh made, then the acceptance checks, GRPO at SmolLM2's size (benchmarks/gpu_runs.py;
# GPU_RUNS picks its settings), and every algorithm's smoke run. What it writes for the copy back goes to
# $OUT (default outputs/gpu_lease): the device, the acceptance figures and log, the gpu_runs table, the
# smoke lines.
#   bash scripts/gpu_lease.sh          (on the GPU machine, from the repository root)
set -uo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS BUDGET=${BUDGET:-520} OUT=${OUT:-outputs/gpu_lease}
left() { echo $((BUDGET - (SECONDS - START))); }
cap() { local l; l=$(left); if [ "$1" -lt "$l" ]; then echo "$1"; else echo "$l"; fi; }
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 WANDB_MODE=disabled
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "$(nproc) cores, commit $(git log -1 --format=%h 2>/dev/null)"
  python3 -c "import torch, transformers, deepspeed, peft; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'deepspeed', deepspeed.__version__, 'peft', peft.__version__)"
} 2>&1 | tee "$OUT/device.txt"
echo "== acceptance ($(left) s left)"
timeout "$(cap 240)" python3 -m scripts.gpu_accept --out "$OUT/accept.json" 2>"$OUT/accept.log"
echo "== gpu_runs ($(left) s left)"
timeout "$(cap 120)" python3 -m benchmarks.gpu_runs --model .gpu/smollm2 --steps 4 \
  --only "${GPU_RUNS:-grpo-fp32,grpo-lora}" --out "$OUT/gpu_runs.md" --run-timeout 50 2>&1 | tail -8
echo "== smoke ($(left) s left)"
WORK=outputs/gpu_smoke ACCEPT=0 timeout "$(cap 600)" bash scripts/gpu_smoke.sh >"$OUT/smoke.txt" 2>&1
cat "$OUT/smoke.txt"
for f in outputs/gpu_smoke/*.log; do  # a run the time box cut says so: no compare line in its log
  grep -q "compare:" "$f" || echo "unfinished or failed: $(basename "$f" .log)"
done | tee -a "$OUT/smoke.txt"
echo "done, $(left) s of $BUDGET left; files in $OUT"
