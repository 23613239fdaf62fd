#!/usr/bin/env bash
# Every algorithm (conf/algo/) on the toy world on a GPU, 4 steps each, and the GPU-side keys (bf16
# autocast, a bf16 rollout copy, DeepSpeed ZeRO-2/3, per-row seeds with async rollouts, LoRA, a
# multi-turn environment), 6 runs at a time after one run has built the shared stages. One line per
# run (ok, or its last error line); the logs stay in $WORK (default outputs/gpu_smoke). First the
# acceptance checks (scripts/gpu_accept.py: PASS/FAIL a check, figures into benchmarks/acceptance/;
# ACCEPT=0 leaves them out). Exit 1 if any run or check failed.
#   bash scripts/gpu_smoke.sh   (python: $PYTHON or python3; DEVICE=cpu runs the same on a CPU)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WORK=${WORK:-outputs/gpu_smoke}
# WORK is emptied first: only a folder this script made (its .gpu_smoke mark), or an empty or new one
# (the seventh hunt of 2026-12-04: WORK naming a folder of the user's removed what it held)
if [ -n "$(ls -A "$WORK" 2>/dev/null)" ] && [ ! -e "$WORK/.gpu_smoke" ]; then
  echo "gpu_smoke.sh: WORK=$WORK holds files this script did not write; name a new or empty folder" >&2
  exit 2
fi
rm -rf "$WORK" && mkdir -p "$WORK" && touch "$WORK/.gpu_smoke"
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled WORK PY DEVICE
one() {  # name, overrides...
  local name=$1; shift
  if $PY -m align_lab "hardware.device=${DEVICE:-cuda}" tracker=none train.steps=4 train.eval_every=0 \
      "cache_dir=$WORK/cache" "hydra.run.dir=$WORK/$name" "$@" > "$WORK/$name.log" 2>&1; then
    echo "ok    $name"
  else
    echo "FAIL  $name: $(grep -E 'Error|error' "$WORK/$name.log" | tail -1)"
  fi
}
needs() {  # what an algorithm needs beyond algo=<name> in 4 steps (tests/integration/test_run.py NEEDS),
  # each after a space: a line of xargs -L that ends in a blank goes on into the next line
  case $1 in
    gdpo|dapo) echo " reward=combined ~reward.components.rm '+reward.components.gold={weight: 1.0, source: {_target_: align_lab.rewards.GoldReward}}'" ;;
    ppo_max) echo " algo.critic_pretrain_steps=2" ;;  # its 10 critic-only steps would be > train.steps=4
  esac
}
export -f one
touch "$WORK/accept.txt"
if [ "${ACCEPT:-1}" != 0 ]; then
  $PY -m scripts.gpu_accept --device "${DEVICE:-cuda}" 2> "$WORK/accept.log" | tee "$WORK/accept.txt"
fi
one stages algo=grpo  # builds the SFT policy and reward model once
{
  for f in conf/algo/*.yaml; do a=$(basename "$f" .yaml); echo "$a algo=$a$(needs "$a")"; done
  echo "grpo-bf16 algo=grpo hardware.dtype=bf16"
  echo "grpo-bf16-rollout algo=grpo hardware.dtype=bf16 rollout.dtype=bf16"
  echo "grpo-zero2 algo=grpo hardware.backend=deepspeed hardware.zero_stage=2"
  echo "ppo-zero3 algo=ppo hardware.backend=deepspeed hardware.zero_stage=3 hardware.dtype=bf16"
  echo "dpo-zero3 algo=dpo hardware.backend=deepspeed hardware.zero_stage=3"
  echo "grpo-lora algo=grpo lora.enabled=true"
  echo "grpo-guess-number algo=grpo task=guess_number env=guess_number reward=verifier"
  echo "rloo-async algo=rloo rollout.seed_per_sample=true train.max_staleness=1 train.async_rollouts=true"
} | xargs -P 6 -L 1 bash -c 'one "$@"' _ | tee "$WORK/lines.txt"  # each line as its run ends
sort -k2 "$WORK/lines.txt" > "$WORK/summary.txt"
echo "$(grep -c '^ok' "$WORK/summary.txt") ok, $(grep -c '^FAIL' "$WORK/summary.txt") failed: $WORK/summary.txt"
! grep -q '^FAIL' "$WORK/summary.txt" "$WORK/accept.txt"
