"""pass_ks: the k of pass@k an evaluation of n samples reports (1, powers of two below n, n)."""

from align_lab.rl import pass_ks


def test_pass_ks_are_one_the_powers_of_two_below_n_and_n():
    assert pass_ks(1) == [1]
    assert pass_ks(2) == [1, 2]
    assert pass_ks(3) == [1, 2, 3]  # 2 = 2^1 < 3
    assert pass_ks(8) == [1, 2, 4, 8]
    assert pass_ks(12) == [1, 2, 4, 8, 12]  # 16 > 12: not reported
    assert pass_ks(0) == []
