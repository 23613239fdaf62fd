"""The batch on which each peer's rollout correction is re-derived (issue 26 item 4, docs/off_policy.md),
and `same_loss`, which checks align_lab's loss and gradient against a peer's re-derivation on it.
Used by the test_<peer>.py files here and by tests/unit/algorithms/test_peer_corrections.py.

Peers' newest stored code: verl b178a3c (2026-01-29), OpenRLHF 3c3be62 (2026-08-13), TRL f2cd577
(2026-07-24), slime 624b824 (2026-08-21), AReaL 4aef98d (2026-05-21). Re-checked for issue 36
(2026-08-22) against verl-project/verl 1dda039 and areal-project/AReaL cbff54d: the functions are
unchanged there (line numbers stay the older commits')."""

import torch

from tests.unit.algorithms.test_algorithms_group import lengths_mask, rollout, t

# One batch of 4 responses of lengths 4, 3, 2, 1 (padding after; its values are finite garbage that must
# not count). Per token, log pi_old - log pi_rollout (the engine's):
#   row 0: [3, -10, 0.1, -0.2]  a token ratio e^3 and one e^-10; product e^-7.1, geometric mean e^-1.775
#   row 1: [0.3, 0.2, 0.4]      product e^0.9 = 2.46 (outside [0.5, 2]: masked), geometric mean e^0.3
#   row 2: [-0.1, 0.05]         product e^-0.05, geometric mean e^-0.025
#   row 3: [1.5]                e^1.5 = 4.48 (outside 2 and 3, inside 5)
# log pi_theta - log pi_old (the PPO ratio) is small except row 3's 1.2 (ratio 3.32: with A = -1.5 verl's
# dual clip c = 3 binds). Advantages are constant per response: 1, -0.5, 2, -1.5.
CORR_LENGTHS = [4, 3, 2, 1]
CORR_MASK = lengths_mask(CORR_LENGTHS, 4)
CORR_ROLLOUT_RATIO = t(
    [[3.0, -10.0, 0.1, -0.2], [0.3, 0.2, 0.4, 9.0], [-0.1, 0.05, 9.0, 9.0], [1.5, 9.0, 9.0, 9.0]]
)
CORR_DELTA = t([[0.1, -0.3, 0.05, 0.25], [-0.1, 0.3, 0.0, 2.0], [0.2, -0.05, 2.0, 2.0], [1.2, 2.0, 2.0, 2.0]])
CORR_OLD = t(
    [[-1.0, -2.0, -0.5, -1.5], [-0.7, -1.2, -2.2, -3.0], [-0.3, -1.1, -3.0, -3.0], [-0.9, -3.0, -3.0, -3.0]]
)
CORR_ADVANTAGES = t([[1.0] * 4, [-0.5] * 4, [2.0] * 4, [-1.5] * 4]) * CORR_MASK


def corr_batch():
    """The batch above as align_lab's Rollout: pi_old's log-probs, the engine's, the reference's."""
    batch = rollout([0.0] * 4, CORR_MASK, 2, logprobs=CORR_OLD, ref_logprobs=CORR_OLD - 0.2 * CORR_MASK)
    batch.advantages = CORR_ADVANTAGES
    batch.rollout_logprobs = CORR_OLD - CORR_ROLLOUT_RATIO
    return batch


def same_loss(algo, peer):
    """algo's loss and its gradient in pi_theta's log-probs equal the peer's re-derivation `peer(logp)`."""
    batch = corr_batch()
    ours_logp = (CORR_OLD + CORR_DELTA).requires_grad_()
    peer_logp = (CORR_OLD + CORR_DELTA).requires_grad_()
    ours, _ = algo.loss(batch, ours_logp, None)
    theirs = peer(peer_logp)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours_logp.grad, peer_logp.grad, rtol=1e-6, atol=1e-6)
    return ours.item()
