"""What a run asks a scheduler for: scaled by the models it holds and by its data-parallel processes."""

from __future__ import annotations

import pytest

from align_lab.app import spec_from_config
from align_lab.config import build
from align_lab.study.resources import request
from tests.conftest import compose


def _request(overrides: list[str]) -> dict:
    cfg, names = compose(overrides)
    return request(build(cfg.hardware.resources, "hardware.resources"), spec_from_config(cfg, names))


@pytest.mark.parametrize(
    "overrides,expected",
    [
        # 4 models (policy, reference, critic, reward model) x 1 GB; 1 process
        (["algo=ppo"], {"cpus_per_task": 1, "mem_gb": 4, "gpus_per_node": 0}),
        # 2 processes: one core and the models' memory per process
        (["algo=ppo", "hardware=cpu_ddp"], {"cpus_per_task": 2, "mem_gb": 8, "gpus_per_node": 0}),
        # 8 processes x 4 cores; 4 models x 8 GB x 8 processes; 8 GPUs (one per process)
        (["algo=ppo", "hardware=slurm_8gpu"], {"cpus_per_task": 32, "mem_gb": 256, "gpus_per_node": 8}),
        # DPO holds 3 (policy, reference, the reward model that scores evaluations): 3 x 8 GB x 8
        (["algo=dpo", "hardware=slurm_8gpu"], {"cpus_per_task": 32, "mem_gb": 192, "gpus_per_node": 8}),
        # one process: 4 models x 0.25 GPU -> 1 GPU, 8 cores, 4 x 16 GB
        (["algo=ppo", "hardware=slurm_1gpu"], {"cpus_per_task": 8, "mem_gb": 64, "gpus_per_node": 1}),
    ],
)
def test_a_runs_request_follows_its_models_and_processes(overrides, expected):
    got = _request(overrides)
    assert {k: got[k] for k in expected} == expected
