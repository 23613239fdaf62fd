"""The preference pairs a run samples from its SFT policy (align_lab/run/pairs.py)."""

from __future__ import annotations


def test_the_line_where_no_sample_gave_a_pair_counts_the_prompts_and_says_what_can_give_one():
    """Thirty-third hunt, case 58: `algo=dpo` on a 36-question file whose SFT policy got every answer wrong
    said "none of 256 prompts" and "score with reward=verifier", which the command already set."""
    from align_lab.run.pairs import no_pairs_line

    assert no_pairs_line(256, 36, 4, {0.0}) == (
        "preferences: none of 256 draws (task.n_pairs) of the 36 training prompts x 4 samples "
        "(task.pair_samples) of the SFT policy gave a pair: every sample scored 0; a pair is two samples of "
        "one prompt that score differently: raise task.pair_samples, or start from a policy that answers "
        "some right; pairs are made for reward=learned_rm's reward model (the default reward) and for the "
        "pairwise algorithms (DPO's family): an online algorithm with reward=verifier needs none"
    )  # fifty-second hunt, case 38: `algo=opd` (and grpo) with the default reward were told to use grpo
    assert ": each prompt's samples scored alike; " in no_pairs_line(8, 8, 2, {0.0, 1.0})
