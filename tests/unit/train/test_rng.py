"""train/rng.py: the run's seed into the global generators the user's code draws from."""

from __future__ import annotations

import numpy as np

from align_lab.train.rng import numpy_seed, seed_generators


def test_seeds_that_agree_modulo_2_to_the_32_draw_other_numpy_numbers():
    """Thirteenth hunt: seeds 0 and 2^32 gave a reward the same numpy noise (`seed % 2^32`)."""
    draws = {}
    for seed in (0, 1, 2**32, 2**32 + 1, 2**63, -1):
        seed_generators(seed)
        draws[seed] = tuple(np.random.normal(size=3))
    assert len(set(draws.values())) == len(draws)
    assert numpy_seed(7) == 7  # a seed of one word: numpy's numbers as before
    assert numpy_seed(2**32 + 5) == [5, 1] and numpy_seed(-1) == [0xFFFFFFFF, 0xFFFFFFFF]
