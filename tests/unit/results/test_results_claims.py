"""A study's claims as hypotheses (align_lab.results.claims; compare --claim). Expected values are worked
out by hand in the comments."""

from __future__ import annotations

import math

import pytest

from align_lab.compare import main as compare_main
from align_lab.results.aggregate import aggregate
from align_lab.results.claims import Claim, claim_verdict, parse_claim
from tests.unit.results.test_results_aggregate import online_run


def test_a_claim_reads_group_operator_group_and_metric():
    assert parse_claim("rloo > ppo on eval/gold_reward") == Claim("rloo", ">", "ppo", "eval/gold_reward")
    assert parse_claim("  reinforce_pp<grpo on eval/kl ") == Claim("reinforce_pp", "<", "grpo", "eval/kl")
    assert str(parse_claim("a < b on time/total_s")) == "a < b on time/total_s"


@pytest.mark.parametrize(
    "text",
    ["rloo beats ppo", "rloo > ppo", "rloo >> ppo on x", "rloo = ppo on eval/kl", "ppo > ppo on eval/kl"],
)
def test_a_malformed_claim_is_a_one_line_error(text):
    with pytest.raises(ValueError, match="claim") as e:
        parse_claim(text)
    assert "\n" not in str(e.value)


def _runs(diffs: list[float], base: float = 0.5) -> list:
    """ppo at `base` and rloo at base + diff on seeds 0..n-1."""
    runs = [online_run("ppo", s, base) for s in range(len(diffs))]
    return runs + [online_run("rloo", s, base + d) for s, d in enumerate(diffs)]


def _claims(runs, *texts):
    comparison = aggregate(runs, ["algo"], claims=[parse_claim(t) for t in texts])
    return {r.claim: r for r in comparison.claims.itertuples()}


def test_six_seeds_all_in_the_claimed_direction_reproduce_the_claim():
    # diffs 0.1..0.6, all > 0: mean 0.35; exact sign-flip p = 2 / 2^6 = 0.03125 (only the all-+ and
    # all-- patterns reach |mean| 0.35); one claim: Holm p = p. CI > 0 -> reproduced.
    got = _claims(_runs([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), "rloo > ppo on eval/gold_reward")
    r = got["rloo > ppo on eval/gold_reward"]
    assert (r.n_pairs, r.verdict) == (6, "reproduced")
    assert r.diff == pytest.approx(0.35) and r.p == pytest.approx(0.03125) and r.diff_lo > 0


def test_the_opposite_claim_on_the_same_runs_is_contradicted_and_holm_doubles_p():
    # two claims, both p = 0.03125: Holm multiplies the smaller by 2 and the next by 1 -> 0.0625 for
    # both (running max): neither significant at 0.05 -> both inconclusive
    runs = _runs([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    got = _claims(runs, "ppo > rloo on eval/gold_reward", "rloo > ppo on eval/gold_reward")
    assert all(r.p_holm == pytest.approx(0.0625) for r in got.values())
    assert {r.verdict for r in got.values()} == {"inconclusive"}
    alone = _claims(runs, "ppo > rloo on eval/gold_reward")["ppo > rloo on eval/gold_reward"]
    assert alone.verdict == "contradicted" and alone.diff == pytest.approx(-0.35)


def test_three_seeds_cannot_reach_significance_and_say_so():
    # 3 pairs: the smallest exact p is 2 / 2^3 = 0.25 >= 0.05 -> inconclusive, with the reason
    r = _claims(_runs([0.1, 0.2, 0.3]), "rloo > ppo on eval/gold_reward")["rloo > ppo on eval/gold_reward"]
    assert r.verdict == "inconclusive" and "cannot go below p = 0.25" in r.why


def test_a_claim_and_the_paired_table_report_the_same_statistics():
    # one computation (stats.paired_tests) serves both: rloo vs ppo on the same six seeds gives the same
    # mean, CI and p in the claim row and in the paired row against baseline ppo; diffs 0.1..0.6 ->
    # mean 0.35, p = 2/64
    comparison = aggregate(
        _runs([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
        ["algo"],
        baseline="ppo",
        claims=[parse_claim("rloo > ppo on eval/gold_reward")],
    )
    claim = comparison.claims.iloc[0]
    row = comparison.paired.set_index("group").loc["rloo"]
    assert claim["diff"] == pytest.approx(0.35) and claim["p"] == pytest.approx(0.03125)
    for key in ("n_pairs", "diff", "diff_lo", "diff_hi", "p", "p_holm"):
        assert claim[key] == row[key], key
    assert (claim["a_mean"], claim["b_mean"]) == (row["group_mean"], row["baseline_mean"])


def test_verdicts_from_hand_numbers():
    c = parse_claim("a < b on eval/kl")  # claims a - b < 0
    assert claim_verdict(c, -0.2, -0.3, -0.1, 0.01, 8)[0] == "reproduced"
    assert claim_verdict(c, 0.2, 0.1, 0.3, 0.01, 8)[0] == "contradicted"
    # the test decides alone; a t CI that covers 0 beside Holm p 0.01 (skewed differences) is named, and
    # decides nothing: one story
    assert claim_verdict(c, -0.2, -0.3, 0.1, 0.01, 8) == (
        "reproduced",
        "the t CI covers 0 (skewed differences): read it",
    )
    assert claim_verdict(c, -0.2, -0.3, -0.1, 0.2, 8) == ("inconclusive", "Holm p = 0.2 >= 0.05")
    # 6 seeds, 3 claims: the exact p cannot go below 2/2^6 = 0.03125, Holm's smallest 3 x 0.03125 = 0.09375
    assert claim_verdict(c, -0.2, -0.3, -0.1, 0.09375, 6, family=3) == (
        "inconclusive",
        "6 paired seeds: Holm p cannot go below 3 x 0.0312 = 0.0938 over 3 claims",
    )


def test_a_claim_on_a_metric_not_in_the_table_reads_it_from_the_summaries():
    # eval/kl is 0.2 in every summary: diffs all 0 -> p = 1 -> inconclusive; the column was added
    r = _claims(_runs([0.1] * 6), "rloo < ppo on eval/kl")["rloo < ppo on eval/kl"]
    assert r.diff == 0 and r.verdict == "inconclusive"


@pytest.mark.parametrize(
    "claim,message",
    [
        ("rloo > nobody on eval/gold_reward", "no group 'nobody'"),
        ("rloo > ppo on eval/bogus", "no runs report 'eval/bogus'"),
    ],
)
def test_a_claim_naming_an_unknown_group_or_metric_is_an_error(claim, message):
    with pytest.raises(ValueError, match=message):
        aggregate(_runs([0.1] * 2), ["algo"], claims=[parse_claim(claim)])


@pytest.mark.parametrize(
    "claim,message",
    [
        ("rloo > nonesuch on eval/gold_reward", "no algorithm 'nonesuch'; allowed: "),
        ("rloo beats ppo", "not understood"),
    ],
)
def test_compare_refuses_a_bad_claim_before_reading_any_run(tmp_path, capsys, claim, message):
    # the folder holds no runs at all: the claim is refused first, with one line and exit code 2
    assert compare_main([str(tmp_path), "--claim", claim]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("align_lab.compare: error: claim")


# ---- issue 13's compare checks: unknown --by / --metric, pooled configs, headline, few seeds
def test_an_unknown_by_key_or_metric_is_an_error_not_a_report_of_unset():
    runs = _runs([0.1, 0.2])
    with pytest.raises(ValueError, match="--by algo.nonexistent_key: no run has this key"):
        aggregate(runs, ["algo.nonexistent_key"])
    with pytest.raises(
        ValueError, match="--metric eval/bogus: no run reports it; they report eval/gold_reward"
    ):
        aggregate(runs, ["algo"], metric="eval/bogus")


def test_a_by_key_null_in_every_run_is_one_group_and_a_node_is_refused_naming_its_keys():
    """Issue 73 seventh hunt: `--by algo.clip_high` where every run has algo.clip.high: null said "no run
    has this key"; `--by algo.correction` (a node) named each group by its whole mapping, 400 characters."""
    runs = _runs([0.1, 0.2])
    for run in runs:
        run.config["algo"] |= {"reward_clip": None, "correction": {"mode": "none", "level": "token"}}
    comparison = aggregate(runs, ["algo.reward_clip"])
    assert comparison.groups == ["(unset)"], comparison.groups
    with pytest.raises(ValueError) as e:
        aggregate(runs, ["algo.correction"])
    assert str(e.value) == (
        "--by algo.correction: is a node of keys (mode, level); group by one of them, e.g. --by "
        "algo.correction.mode"
    )


def test_a_group_pooling_different_configs_is_flagged_with_the_keys_that_differ():
    runs = _runs([0.1, 0.2, 0.3])
    runs[-1].config["algo"]["kl_coef"] = 0.5  # one rloo seed ran another kl_coef
    notes = " ".join(aggregate(runs, ["algo"]).notes)
    assert "WARNING: group rloo pools runs whose configs differ in algo.kl_coef" in notes
    assert "--by algo,algo.kl_coef" in notes


def test_groups_that_differ_beyond_the_by_key_are_said_to():
    """Ninth hunt: compared --by a key, groups whose runs also differ in another key (each group one
    value) were paired as if only the key differed; by algo (its own keys) they are not flagged."""
    runs = _runs([0.1, 0.2, 0.3])
    for i, run in enumerate(runs):  # ppo's 3 runs 4 steps, rloo's 8
        run.config["train"] = {**run.config.get("train", {}), "steps": 4 if i < 3 else 8}
    notes = " ".join(aggregate(runs, ["algo"]).notes)
    assert "The groups also differ in train.steps: a difference between them is not algo's alone." in notes
    for run in runs:
        run.config["train"]["steps"] = 4
    assert "also differ" not in " ".join(aggregate(runs, ["algo"]).notes)


def test_the_headline_names_what_differs_beyond_seed_noise_and_few_seeds_are_flagged():
    six = aggregate(_runs([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), ["algo"], baseline="ppo")  # rloo - ppo > 0
    assert six.headline.startswith("Beyond seed noise on eval/gold_reward, against ppo: rloo +0.35 [")
    three = aggregate(_runs([0.2, 0.25, 0.3]), ["algo"], baseline="ppo")
    # three seeds: mean 0.25, s = 0.05, t_{2, 0.975} = 4.3027 -> 0.25 +- 4.3027 * 0.05 / sqrt(3)
    # = 0.25 +- 0.1242 = [0.126, 0.374]: the CI excludes 0, but the test (floor p = 0.25) decides, and
    # the headline tells its story only (never "no group differs": no test could decide, twenty-sixth
    # hunt, case 25); the action line says what would decide it
    assert three.headline == (
        "Not decided on eval/gold_reward against ppo, too few paired seeds for the exact test: rloo 0.25 "
        "[0.1258, 0.3742] (not decided: 3 seeds cannot reach Holm p < 0.05)."
    )
    assert three.paired["verdict"].tolist() == ["not decided: 3 seeds cannot reach Holm p < 0.05"]
    assert three.action.startswith("no group decided against ppo; not decided: rloo: ~")
    two = aggregate(_runs([0.1, 0.2]), ["algo"], baseline="ppo")
    # two seeds: 0.15 +- 12.706 * 0.0707 / sqrt(2) = 0.15 +- 0.635 covers 0 (a bootstrap of two values
    # said [0.1, 0.2]: it never covers 0 when both differences share a sign)
    assert two.headline.startswith(
        "Not decided on eval/gold_reward against ppo, too few paired seeds for the exact test: rloo 0.15 ["
    ) and two.headline.endswith("(not decided: 2 seeds cannot reach Holm p < 0.05).")
    one = aggregate(_runs([0.3]), ["algo"], baseline="ppo")
    assert one.headline == (
        "Not decided on eval/gold_reward against ppo, too few paired seeds for the exact test: rloo 0.3 "
        "(one paired seed: no test)."
    )
    assert any("Fewer than 3 seeds in ppo, rloo: their CIs are unreliable" in n for n in two.notes)
    default = aggregate(_runs([0.1, 0.2]), ["algo"]).notes  # the runs log SFT's gold reward
    assert any(n.startswith("Baseline: SFT, the reference policy every group started from") for n in default)


# ---- mean(<metric>) / std(<metric>): a claim about a run's course (sweeps/zoo_2025.yaml)
def test_over_steps_is_the_mean_or_population_std_of_the_logged_values():
    from align_lab.results.extract import final_value, over_steps

    records = [
        {"train/grad_norm": 1.0},
        {"eval/kl": 0.3},
        {"train/grad_norm": 3.0},
        {"train/grad_norm": None},
    ]
    # mean of 1, 3 = 2; population std = sqrt(((1 - 2)^2 + (3 - 2)^2) / 2) = 1
    assert over_steps(records, "mean", "train/grad_norm") == 2.0
    assert over_steps(records, "std", "train/grad_norm") == 1.0
    assert math.isnan(over_steps(records, "std", "eval/gold_reward"))  # never logged
    # online_run logs eval/gold_reward = finals * s / 2 at steps 1, 2: finals 0.8 -> 0.4, 0.8 -> mean 0.6,
    # while its final value (summary.json) is 0.8
    run = online_run("ppo", 0, 0.8)
    assert final_value(run, "mean(eval/gold_reward)") == pytest.approx(0.6)
    assert final_value(run, "eval/gold_reward") == 0.8


def test_a_claim_on_the_mean_over_steps_reads_every_evaluation():
    # rloo's finals are 0.5 + d: its mean over the two evaluations is 0.75 (0.5 + d), ppo's 0.375; the
    # paired diffs are 0.75 d for d = 0.1..0.6, all > 0 -> p = 2 / 2^6 = 0.03125 -> reproduced
    got = _claims(_runs([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), "rloo > ppo on mean(eval/gold_reward)")
    row = got["rloo > ppo on mean(eval/gold_reward)"]
    assert row.diff == pytest.approx(0.75 * 0.35) and row.p == pytest.approx(0.03125)
    assert row.verdict == "reproduced"
    with pytest.raises(ValueError, match=r"no runs report 'std\(eval/bogus\)'"):
        aggregate(_runs([0.1] * 2), ["algo"], claims=[parse_claim("rloo > ppo on std(eval/bogus)")])


def test_a_claims_smallest_effect_of_interest_parses_and_bad_ones_are_one_line():
    c = parse_claim("rloo > ppo on eval/pass@1 by 0.02")
    assert c.min_effect == 0.02 and str(c) == "rloo > ppo on eval/pass@1 by 0.02"
    assert parse_claim("rloo > ppo on eval/pass@1").min_effect is None
    for bad in ("a > b on m by x", "a > b on m by 0", "a > b on m by -1", "a > b on m by inf"):
        with pytest.raises(ValueError, match="smallest effect of interest must be a number > 0") as e:
            parse_claim(bad)
        assert "\n" not in str(e.value)


def test_compare_min_effect_must_be_a_positive_number(capsys):
    from align_lab.compare import parse_args

    assert parse_args(["x", "--by", "algo.clip.low", "--by", "seed"]).by == "algo.clip.low,seed"  # 8th hunt
    assert parse_args(["x", "--by", "algo,task"]).by == "algo,task" and parse_args(["x"]).by is None
    assert parse_args(["x", "--min-effect", "0.25"]).min_effect == 0.25
    assert parse_args(["x"]).min_effect == 0.5
    with pytest.raises(SystemExit) as e:
        parse_args(["x", "--min-effect", "0"])
    assert e.value.code == 2
    assert "argument --min-effect: '0': must be a number of SDs > 0, e.g. 0.5" in capsys.readouterr().err
