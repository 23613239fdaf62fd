"""Bounded staleness (train.max_staleness) and async rollouts (train.async_rollouts) end to end on the toy
world: which policy sampled each step's rollout, sync = async, resume with pending rollouts, refusals."""

from __future__ import annotations

import pytest
import torch

from align_lab.config import ConfigError
from align_lab.tracking import JsonlTracker, read_metrics
from align_lab.train.checkpoint_io import load_checkpoint
from tests.conftest import compose, run_in_process

SEEDED = ["rollout.seed_per_sample=true"]  # the sampling thread must not draw from the trainer's RNG


def numbers(run_dir) -> list[dict]:
    """Every logged metric but the timings (which differ run to run)."""
    return [
        {k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))}
        for r in read_metrics(run_dir / "metrics.jsonl")
    ]


def test_staleness_k_trains_each_step_on_the_rollout_of_the_policy_k_steps_before(
    tmp_path, cache_dir, monkeypatch
):
    """Records, for each sampled rollout, the step it is for and the weights it was drawn with; and for
    each trained step, the rollout it trained on. Step t must train on the rollout sampled for t, drawn
    with the weights the policy had at the start of step max(t - k, 0) (the warm-up: the initial ones),
    with the prompts and row seeds of step t (the same as at k=0)."""
    from align_lab.train import online_steps

    def spy_runs(k: int) -> tuple[list, list]:
        sampled, trained = [], []
        original_sample, original_score = online_steps.sample, online_steps.score

        def sample(ctx, algo, step_prompts, step, source, model=None, now=None):
            weights = torch.cat(
                [p.detach().flatten() for p in (ctx.models.policy if model is None else model).parameters()]
            ).clone()
            out = original_sample(ctx, algo, step_prompts, step, source, model, now)
            sampled.append((step, now, weights, list(step_prompts), out[0].response_ids))
            return out

        def score(ctx, algo, samples, greedy, counters):
            weights = torch.cat([p.detach().flatten() for p in ctx.models.policy.parameters()]).clone()
            trained.append((weights, samples.response_ids))
            return original_score(ctx, algo, samples, greedy, counters)

        monkeypatch.setattr(online_steps, "sample", sample)
        monkeypatch.setattr(online_steps, "score", score)
        run_in_process(["train.steps=4", f"train.max_staleness={k}"], tmp_path / f"k{k}", cache_dir)
        monkeypatch.undo()
        return sampled, trained

    on_policy, on_trained = spy_runs(0)
    stale, stale_trained = spy_runs(2)
    # k=2: steps 0, 1, 2 sampled at loop step 0 (warm-up), then step s at loop step s - 2, through s = 5
    assert [(s, now) for s, now, *_ in stale] == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 3)]
    start_weights = [w for w, _ in stale_trained]  # the policy at the start of each loop step
    for step, now, weights, step_prompts, _ in stale:
        assert torch.equal(weights, start_weights[now]), step
        if step < len(on_policy):  # the prompts of the step that trains on it
            assert step_prompts == on_policy[step][3]
    for t, (_, response_ids) in enumerate(stale_trained):
        assert torch.equal(response_ids, stale[t][4]), t  # step t trains on the rollout sampled for t
    # at loop step 0 both runs sample step 0 with the same weights and RNG state: the same responses
    assert torch.equal(stale[0][4], on_policy[0][4])
    assert not torch.equal(stale_trained[3][0], on_trained[3][0])  # stale rollouts trained other weights


# the decode step's matmuls: the machine's default, and W @ h^T, whose bits depend on where the weights
# lie on an AVX2 EPYC (the live policy from the stage cache 8 bytes off a 16-byte boundary, an async
# snapshot on one): decode.align_weights puts every copy on one (docs/rollout.md, item 7)
DECODE = pytest.mark.parametrize("decode", ["auto", "fast"])


@DECODE
def test_async_rollouts_give_the_numbers_of_the_synchronous_loop(decode, tmp_path, cache_dir):
    """Sampling on a thread from a frozen copy of the weights draws what the loop itself draws: every
    logged number and the final evaluation agree exactly, for ReMax too (greedy baselines queued)."""
    for algo in ("reinforce_pp", "remax"):
        common = [f"algo={algo}", "train.steps=4", "train.max_staleness=2", *SEEDED]
        common += [f"rollout.decode_matmul={decode}"]
        sync = run_in_process(common, tmp_path / f"{algo}_sync", cache_dir)
        if decode == "fast":  # what the run multiplied with is in its summary
            assert sync["rollout/decode_matmul"] == "fast"
        background = run_in_process(
            [*common, "train.async_rollouts=true"], tmp_path / f"{algo}_async", cache_dir
        )
        assert numbers(tmp_path / f"{algo}_async") == numbers(tmp_path / f"{algo}_sync"), algo
        assert background["eval/gold_reward"] == sync["eval/gold_reward"]
        rows = read_metrics(tmp_path / f"{algo}_async" / "metrics.jsonl")
        assert all(r["time/rollout_sampling_s"] > 0 for r in rows)


class Interrupt(BaseException):
    pass


@DECODE
@pytest.mark.parametrize("background", [False, True], ids=["sync", "async"])
def test_a_resumed_stale_run_continues_from_its_pending_rollouts(
    background, decode, tmp_path, cache_dir, monkeypatch
):
    """Killed after logging step 3, its last checkpoint holding the next two steps' rollouts (k=2): the resume
    trains on those (not on rollouts resampled from step 3's weights) and logs what the uninterrupted run
    logs. async_rollouts may change on resume (the same numbers), so the resume flips it."""
    common = ["seed=3", "train.steps=5", "train.max_staleness=2", *SEEDED, f"rollout.decode_matmul={decode}"]
    flag = lambda on: [f"train.async_rollouts={str(on).lower()}"]  # noqa: E731
    run_in_process([*common, *flag(background)], tmp_path / "full", cache_dir)
    original = JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == 3:
            raise Interrupt

    monkeypatch.setattr(JsonlTracker, "log", log_then_die)
    with pytest.raises(Interrupt):
        run_in_process([*common, *flag(background)], tmp_path / "resumed", cache_dir)
    monkeypatch.setattr(JsonlTracker, "log", original)
    state = load_checkpoint(tmp_path / "resumed" / "checkpoints")
    done = state["step"]  # steps 0 .. done-1 trained; the rollouts of the next two are pending
    assert [p["step"] for p in state["objects"]["pending_rollouts"]["pending"]] == [done, done + 1]
    run_in_process([*common, *flag(not background)], tmp_path / "resumed", cache_dir)
    assert numbers(tmp_path / "resumed") == numbers(tmp_path / "full")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.max_staleness=-1"], "train.max_staleness=-1: must be an integer >= 0"),
        (["train.max_staleness=1.5"], "train.max_staleness"),
        (["train.steps=3", "train.max_staleness=3"], "train.max_staleness=3: must be < train.steps=3"),
        (
            ["train.async_rollouts=true"],
            "train.async_rollouts=true: must be false with train.max_staleness=0",
        ),
        (
            ["train.max_staleness=1", "train.async_rollouts=true"],
            "train.async_rollouts=true: rollout=hf cannot sample on a thread",
        ),
        (["algo=dpo", "train.max_staleness=1"], "train.max_staleness=1: the pairwise loop samples on-policy"),
        (
            ["train.max_staleness=1", "hardware.processes=2", *SEEDED],
            "train.max_staleness=1: not supported with 2 data-parallel processes",
        ),
    ],
)
def test_bad_staleness_settings_fail_in_one_line_before_compute(overrides, message, tmp_path):
    from align_lab.run.admission import spec_from_config
    from align_lab.run.cross_checks import check_run

    cfg, names = compose(["tracker=none", f"cache_dir={tmp_path}", *overrides])
    with pytest.raises((ConfigError, ValueError)) as e:
        check_run(spec_from_config(cfg, names), here=False)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not any(tmp_path.iterdir())  # nothing built
