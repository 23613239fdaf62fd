"""The run's last words when its evaluation fell far below the SFT policy (issue 73: `algo=sdpo` ended at gold
-1.16 against SFT's 0.15, KL 23, and said nothing). tracking/progress.py below_sft_line."""

from __future__ import annotations

from align_lab.tracking.progress import below_sft_line, reversed_weights, unmoved_line


def records(gold: list, sft: list, step: int = 100, kl: float = 20.0) -> list[dict]:
    return [
        {"step": step, "gold_reward": g, "sft_gold_reward": s, "kl": kl}
        for g, s in zip(gold, sft, strict=True)
    ]


def test_a_policy_far_below_sft_on_the_same_samples_gets_a_line():
    # policy 0 on all 8, SFT 1 on 6: diffs -1 x6, 0 x2, mean -0.75; their variance ((-0.25)^2*6 + 0.75^2*2)/7
    # = 1.5/7 = 0.2143, sd 0.4629, t = -0.75 / (0.4629 / sqrt 8) = -4.58; pooled sd sqrt((0 + 0.2143) / 2)
    # = 0.3273, so 0.75 / 0.3273 = 2.3 SD lower
    line = below_sft_line(records([0.0] * 8, [1.0] * 6 + [0.0] * 2))
    assert line == (
        "warning: the policy ended far below SFT: gold reward 0.000 against SFT's 0.750 on the same 8 "
        "held-out samples (2.3 SD lower, paired t -4.6), KL to SFT 20.0 nats; training moved it the wrong "
        "way (a lower algo.lr, a KL term or fewer train.steps hold it)"
    )


def test_a_drop_the_evaluations_noise_can_make_gets_no_line():
    # SFT 1 on 3 of 8: diffs -1 x3, 0 x5, mean -0.375; variance ((-0.625)^2*3 + 0.375^2*5)/7 = 1.875/7
    # = 0.2679, sd 0.5175, t = -0.375 / (0.5175 / sqrt 8) = -2.05 > -3: not far below
    assert below_sft_line(records([0.0] * 8, [1.0] * 3 + [0.0] * 5)) is None
    assert below_sft_line(records([1.0] * 8, [0.0] * 8)) is None  # above SFT
    assert below_sft_line(records([0.0] * 7, [1.0] * 7)) is None  # fewer than 8 samples


def test_a_drop_more_than_a_policy_that_close_to_sft_can_lose_is_the_draws_noise():
    """Fifty-first hunt, case 41: one DPO step, KL to SFT -0.009 (its estimate's noise), gold 0.312 against
    0.688 on 16 samples: "training moved it the wrong way". Pinsker: a policy at KL k from SFT loses at
    most (max - min) x sqrt(k / 2) of expected reward: here 1 x sqrt(0) = 0 < 0.75, so no line; at KL 20
    the bound is 3.16 and the same drop gets its line (the first test)."""
    assert below_sft_line(records([0.0] * 8, [1.0] * 6 + [0.0] * 2, kl=-0.009)) is None
    assert below_sft_line(records([0.0] * 8, [1.0] * 6 + [0.0] * 2, kl=1.0)) is None  # bound 0.71 < 0.75
    assert below_sft_line(records([0.0] * 8, [1.0] * 6 + [0.0] * 2, kl=1.2)) is not None  # 0.77: possible


def test_a_negative_reward_weight_is_named_as_what_may_have_trained_it_the_wrong_way():
    """Fifty-first hunt, case 40: reward.components.rm.weight=-1 ended at gold -0.375 against 0.152, and the
    line said only "a lower algo.lr, a KL term or fewer train.steps hold it"."""
    line = below_sft_line(records([0.0] * 8, [1.0] * 6 + [0.0] * 2), ["reward.components.rm.weight=-1"])
    assert line.endswith(
        "training moved it the wrong way (reward.components.rm.weight=-1 trains against that source's score; "
        "else a lower algo.lr, a KL term or fewer train.steps hold it)"
    )

    class Combined:
        components = {"rm": {"weight": -1.0}, "brevity": {"weight": -0.01}}

    assert reversed_weights(Combined()) == ["reward.components.rm.weight=-1"]
    Combined.components = {"rm": {"weight": 1.0}, "brevity": {"weight": -0.01}}  # a penalty beside it
    assert reversed_weights(Combined()) == [] and reversed_weights(object()) == []
    Combined.components = {"rm": {"weight": 1.0}, "brevity": {"weight": -0.65}}  # 52nd hunt, case 36
    assert reversed_weights(Combined()) == ["reward.components.brevity.weight=-0.65"]


def test_a_student_of_a_teacher_below_its_sft_is_told_so(tmp_path):
    """Fifty-second hunt, case 40: `algo=sft_distill algo.teacher=<a run at gold -1.000>` ended at -1.000 too,
    and the line said only "a lower algo.lr, a KL term or fewer train.steps hold it"."""
    import json
    from types import SimpleNamespace

    from align_lab.run.teacher_run import teacher_below_sft

    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"eval/gold_reward": -1.0, "eval/gold_reward_sft": 0.152}))
    spec = SimpleNamespace(algo=SimpleNamespace(teaching=SimpleNamespace(teacher=str(tmp_path))))
    said = teacher_below_sft(spec)
    assert said == f"algo.teacher={tmp_path} itself ended at gold -1.000 against its SFT's 0.152"
    line = below_sft_line(records([0.0] * 8, [1.0] * 6 + [0.0] * 2), teacher=said)
    assert line.endswith(
        f"({said}: a student learns what its teacher does; else a lower algo.lr, a KL term or fewer "
        "train.steps hold it)"
    )
    summary.write_text(json.dumps({"eval/gold_reward": 0.5, "eval/gold_reward_sft": 0.152}))
    assert teacher_below_sft(spec) is None and teacher_below_sft(SimpleNamespace(algo=object())) is None


def test_only_the_last_evaluation_counts_and_a_task_without_gold_gets_no_line():
    earlier = records([0.0] * 8, [1.0] * 8, step=50)  # fell at step 50, recovered by step 100
    assert below_sft_line(earlier + records([1.0] * 8, [1.0] * 8, step=100)) is None
    assert below_sft_line(records([None] * 8, [None] * 8)) is None  # a reward model's task: no gold


def test_a_policy_that_never_moved_from_sft_gets_a_line():
    """Issue 73 fifth hunt: a reward function giving every response the same score (or 1e-45 scores)
    trained nothing: KL 0, gold = SFT's, rc 0 and no line."""
    line = unmoved_line(records([0.5] * 8, [0.5] * 8, step=3, kl=0.0))
    assert line == (
        "warning: the policy ended where SFT started (KL to SFT below 1e-05 nats on all 8 held-out samples "
        "after 3 steps): no update moved it; the rewards gave no signal (every score equal within a group, "
        "or too small to train on) or algo.lr is too small"
    )
    assert unmoved_line(records([0.5] * 8, [0.5] * 8, step=3, kl=0.01)) is None  # it moved
    # fifty-second hunt, case 34: train.max_grad_norm=1e-30 left it at SFT, float noise put its KL at 1.19e-6
    assert unmoved_line(records([0.5] * 8, [0.5] * 8, step=3, kl=1.19e-6)) is not None
    assert unmoved_line(records([0.5] * 8, [0.5] * 8, step=0, kl=0.0)) is None  # before any step
    assert unmoved_line([]) is None
    # seventeenth hunt: a constant reward's float noise put one sample's KL at 1.4e-6; no step had a gradient
    noisy = records([0.5] * 8, [0.5] * 8, step=3, kl=1.43e-5)  # (1.43e-6 then; under the bound now)
    assert unmoved_line(noisy, [0.0, 0.0, 0.0]) == (
        "warning: the policy ended where SFT started (a gradient of 0 at every one of its 3 steps "
        "(train/grad_norm)): no update moved it; the rewards gave no signal (every score equal within a "
        "group, or too small to train on) or algo.lr is too small"
    )
    assert unmoved_line(noisy, [0.0, 0.3, 0.0]) is None and unmoved_line(noisy) is None


def test_a_policy_unmoved_though_its_rewards_differed_is_said_as_a_temperature_near_0():
    """Thirty-ninth hunt, case 30: `rollout.temperature=1e-9`: every gradient 0 though train/reward_std was
    0.45-0.53 at every step; the end's warning named the rewards or algo.lr, both fine."""
    samples = records([0.5] * 8, [0.5] * 8, step=3, kl=0.0)
    line = unmoved_line(samples, [0.0, 0.0, 0.0], reward_spread=0.53)
    assert line == (
        "warning: the policy ended where SFT started (KL to SFT below 1e-05 nats on all 8 held-out samples "
        "after 3 steps) though the rewards differed (train/reward_std up to 0.53): each sampled token was "
        "certain, its log-prob 0, as a rollout.temperature near 0 makes them (1.0 samples the policy as it "
        "is)"
    )
    assert "algo.lr is too small" in unmoved_line(samples, [0.0, 0.0, 0.0], reward_spread=0.0)


def test_a_policy_unmoved_because_the_reward_clip_flattened_its_scores_names_the_clip_not_the_temperature():
    """Fortieth hunt, case 13: a length reward (scores 15-49) under reinforce_pp's reward_clip=10, at
    temperature 1: every score clamped to 10, every gradient 0, and the end's warning blamed a temperature
    near 0."""
    samples = records([0.5] * 8, [0.5] * 8, step=3, kl=0.0)
    line = unmoved_line(samples, [0.0, 0.0, 0.0], reward_spread=9.32, cold=False, clamped=1.0)
    assert line.endswith(
        "though the rewards differed (train/reward_std up to 9.32): algo.reward_clip clamped 100% of a "
        "step's scores to its bound, so their differences never reached it; scale the reward into the clip's "
        "range, or set algo.reward_clip=null"
    )
    warm = unmoved_line(samples, [0.0, 0.0, 0.0], reward_spread=9.32, cold=False)  # neither: no guess at it
    assert "temperature" not in warm and "reward_clip" not in warm


def test_a_pass_rate_that_lost_half_of_sfts_gets_a_line_where_its_spread_hides_it():
    """Hunt of 2026-12-04, c52: cispo on toy_arith, pass@1 0.028 against SFT's 0.159 (paired t -6.2): 0.46 of
    a pooled SD, under the half an SD the line asked for, so no line. Here 100 samples, SFT right on 16, the
    policy on 3 of them: diffs -1 x13, 0 x87, mean -0.13; their variance (13 x 0.87^2 + 87 x 0.13^2) / 99 =
    11.31 / 99 = 0.11424, sd 0.3380, t = -0.13 / 0.0338 = -3.85; pooled sd sqrt((2.91 / 99 + 13.44 / 99) / 2)
    = 0.2874, so 0.45 SD; but 0.03 <= 0.16 / 2: 1 - 0.03 / 0.16 = 81% lower."""
    sft = [1.0] * 16 + [0.0] * 84
    line = below_sft_line(records([1.0] * 3 + [0.0] * 97, sft))
    assert line == (
        "warning: the policy ended far below SFT: gold reward 0.030 against SFT's 0.160 on the same 100 "
        "held-out samples (81% lower, paired t -3.8), KL to SFT 20.0 nats; training moved it the wrong "
        "way (a lower algo.lr, a KL term or fewer train.steps hold it)"
    )
    assert below_sft_line(records([1.0] * 9 + [0.0] * 91, sft)) is None  # 0.09 > 0.08: not half lost
    assert below_sft_line(records([x - 1 for x in [1.0] * 3 + [0.0] * 97], [x - 1 for x in sft])) is None
