"""The random number generators' seeding and states (torch's CPU one, every CUDA device's when in use,
Python's, numpy's), saved in each checkpoint for every data-parallel rank; and the minibatch order, the
same on every rank."""

from __future__ import annotations

import random

import torch
from torch import Tensor


def seed_generators(seed: int) -> None:
    """The run's seed into every global generator the user's code may draw from as the run trains:
    torch's, Python's `random` and numpy's (twelfth hunt: a reward adding `np.random.normal` or
    `random.random()` noise gave other numbers each time the same command ran). align_lab's own draws
    use generators of their own."""
    import numpy as np

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(numpy_seed(seed))


def numpy_seed(seed: int) -> int | list[int]:
    """numpy's legacy seed (32-bit words) for a run's seed in torch's range [-2^63, 2^64): the seed itself
    where it fits in one word, else its two 64-bit halves' words (thirteenth hunt: seeds 0 and 2^32 drew
    the same numpy noise, `seed % 2^32`)."""
    if 0 <= seed < 2**32:
        return seed
    whole = seed % 2**64  # a negative seed: its 64-bit two's complement, distinct from every other
    return [whole & 0xFFFFFFFF, whole >> 32]


def rng_state() -> dict:
    import numpy as np

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    state = {"torch": torch.get_rng_state(), "cuda": cuda, "python": random.getstate()}
    return state | {"numpy": np.random.get_state()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    if state.get("numpy") is not None:  # a checkpoint written before numpy's was kept: as it is
        import numpy as np

        np.random.set_state(state["numpy"])


def every_rank(state: dict, size: int) -> list[dict]:
    """Every rank's generator `state` (rng_state()), in rank order, on every rank: a collective that
    every rank calls. Only rank 0 writes the checkpoint, yet a rank's generators are its own (the CUDA
    one of its GPU, any draw on its own rows), so a resume sets each rank's from its own entry."""
    if size == 1:
        return [state]
    import torch.distributed as dist

    states: list = [None] * size
    dist.all_gather_object(states, state)
    return states


def own_rng_state(saved: dict, rank: int, size: int) -> dict:
    """This rank's generator states in a checkpoint: its own entry of `rng_ranks` when the checkpoint
    was written by as many ranks, else rank 0's (`rng`: a checkpoint of one process, or of another
    process count, whose minibatch orders rank 0 broadcasts all the same)."""
    ranks = saved.get("rng_ranks")
    return ranks[rank] if ranks is not None and len(ranks) == size else saved["rng"]


def minibatch_order(rows: int, size: int) -> Tensor:
    """A random order of a step's `rows` (the minibatches are its consecutive slices), drawn on every
    rank from torch's CPU generator (as many draws on every rank, whatever its device: on a GPU the
    default device's generator is the rank's own), and rank 0's on every rank: a rank whose generator
    drifted (a draw of its own, a resume) still trains on the same minibatches as rank 0, whose
    gradients the ranks sum."""
    order = torch.randperm(rows, device="cpu")  # (rows,)
    if size == 1:
        return order
    import torch.distributed as dist

    shared = order.to(torch.empty(()).device)  # the default device: nccl broadcasts CUDA tensors only
    dist.broadcast(shared, 0)
    return shared.cpu()
