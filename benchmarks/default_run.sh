#!/usr/bin/env bash
# Wall time of the default `python -m align_lab` from an empty stage cache, then with cached stages.
# Usage: bash benchmarks/default_run.sh   (prints two lines: "empty cache: N s" and "cached stages: N s")
set -euo pipefail
cd "$(dirname "$0")/.."
cache=$(mktemp -d)
out=$(mktemp -d)
export ALIGN_LAB_CACHE="$cache" HF_HUB_OFFLINE=1 WANDB_MODE=offline WANDB_SILENT=true
for label in "empty cache" "cached stages"; do
  start=$(python3 -c "import time; print(time.time())")
  .venv/bin/python -m align_lab hydra.run.dir="$out/$(echo "$label" | tr ' ' _)" 2>/dev/null >/dev/null
  end=$(python3 -c "import time; print(time.time())")
  python3 -c "print(\"$label: %.1f s\" % ($end - $start))"
done
python3 - "$out" <<'PY'
import json, sys, pathlib
for run in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    s = json.loads((run / "summary.json").read_text())
    stages = ", ".join(f"{k} {v['seconds']:.1f}s{' (hit)' if v['hit'] else ''}" for k, v in s["stages"].items())
    print(f"{run.name}: gold {s['eval/gold_reward']:.3f} vs SFT {s['eval/gold_reward_sft']:.3f}; {stages}")
PY
rm -rf "$cache" "$out"
