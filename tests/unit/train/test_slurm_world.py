"""A run across Slurm nodes reads each rank's place from Slurm's environment (train/distributed.py)."""

from __future__ import annotations

import pytest

from align_lab.train.slurm_world import SlurmWorld, first_host, slurm_world

# what srun sets in task 3 of `sbatch --nodes=2 --ntasks-per-node=2` on gpu[07-08], job 4242
TASK_3 = {
    "SLURM_PROCID": "3",
    "SLURM_NTASKS": "4",
    "SLURM_LOCALID": "1",
    "SLURM_JOB_NODELIST": "gpu[07-08]",
    "SLURM_JOB_ID": "4242",
}


def test_a_slurm_task_is_rank_procid_of_ntasks_meeting_at_the_first_host():
    # port: 10000 + 4242 % 20000 = 14242
    assert slurm_world(TASK_3) == SlurmWorld(rank=3, size=4, local_rank=1, master_addr="gpu07", port=14242)


def test_every_task_of_a_job_and_its_requeue_meet_at_the_same_address():
    worlds = [slurm_world(TASK_3 | {"SLURM_PROCID": str(r), "SLURM_LOCALID": str(r % 2)}) for r in range(4)]
    assert {(w.master_addr, w.port) for w in worlds} == {("gpu07", 14242)}
    assert [w.rank for w in worlds] == [0, 1, 2, 3]
    # job 64242: 10000 + 64242 % 20000 = 14242 again; MASTER_PORT, when set, wins
    assert slurm_world(TASK_3 | {"MASTER_PORT": "29500"}).port == 29500


def test_outside_a_slurm_task_there_is_no_slurm_world():
    assert slurm_world({}) is None
    assert slurm_world({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2"}) is None  # salloc shell: no task


@pytest.mark.parametrize(
    "nodelist,host",
    [
        ("ci-node[1-2]", "ci-node1"),
        ("gpu[07-09,12],cpu3", "gpu07"),  # zero padding kept
        ("gpu[12,07-09]", "gpu12"),  # Slurm's order, not sorted
        ("node3", "node3"),
        ("a,b[1-2]", "a"),
        ("rack[1-2]-n[3-4]", "rack1-n3"),  # two ranges: the first of each
    ],
)
def test_first_host_of_a_slurm_host_list(nodelist, host):
    assert first_host(nodelist) == host


def test_deepspeeds_local_rank_is_the_rank_on_the_node_never_the_global_rank():
    """DeepSpeed puts a process on cuda:LOCAL_RANK: rank 9 of 16 on two 8-GPU nodes is GPU 1 of its node
    (it was given 9, which no node has); a task that sees one GPU uses cuda:0; one node: the rank."""
    from align_lab.train.backend import local_rank

    task = {"SLURM_PROCID": "9", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "7"}
    assert local_rank(9, task) == 1
    assert local_rank(9, task, cuda_device=0) == 0  # --gpus-per-task=1: the one visible GPU
    assert local_rank(1, {}) == 1  # the processes of one node
    one_task = {"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_LOCALID": "0"}
    assert local_rank(1, one_task) == 1  # a local run of 2 processes inside a one-task allocation
