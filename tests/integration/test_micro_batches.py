"""train.micro_batch_size: gradient accumulation equals one minibatch, in both loops and the stages;
and the memory-lean log-probs equal the full-logits formula."""

from __future__ import annotations

import pytest
import torch

from align_lab.config import ConfigError
from align_lab.models.sequences import joint_inputs, response_logprobs
from align_lab.rl import entropy_from_logits, logprobs_from_logits
from align_lab.run.admission import spec_from_config
from align_lab.run.cross_checks import check_run
from align_lab.tracking import read_metrics
from tests.conftest import Quiet, compose, run_in_process

COMPARED = ("train/reward", "train/kl", "train/loss", "train/grad_norm", "train/entropy", "train/clip_frac")


@pytest.mark.parametrize(
    "overrides",
    [
        ["algo=ppo", "algo.entropy_coef=0.01", "algo.ptx_coef=0.1"],  # critic, entropy and ptx terms
        ["algo=grpo"],  # k3 KL in the loss, per-sequence aggregation
        ["algo=dpo"],  # pairwise loop
    ],
    ids=["ppo", "grpo", "dpo"],
)
def test_micro_batches_equal_one_minibatch(overrides, tmp_path, cache_dir, monkeypatch):
    from align_lab.run import stages

    common = [*overrides, "hardware.num_threads=1", "seed=2"]
    one = run_in_process([*common, "train.micro_batch_size=null"], tmp_path / "one", cache_dir)
    # the stages' micro_batch_size is in their keys (it changes their rounding); this test compares
    # the loops alone, so the micro run is served the stages the first run built (never builds one)
    monkeypatch.setattr(stages.StageBuild, "stage_numerics", lambda self, stage: self.numerics)
    # 8-sample minibatches in micro-batches of 3: uneven split, the last one smaller
    micro = run_in_process([*common, "train.micro_batch_size=3"], tmp_path / "micro", cache_dir)
    assert all(stage["hit"] for stage in micro["stages"].values())
    assert one["status"] == micro["status"] == "completed"
    rows_1, rows_2 = (
        read_metrics(tmp_path / "one/metrics.jsonl"),
        read_metrics(tmp_path / "micro/metrics.jsonl"),
    )
    assert len(rows_1) == len(rows_2) == 3
    for a, b in zip(rows_1, rows_2, strict=True):
        for key in COMPARED:
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
    for key in ("eval/gold_reward", "eval/kl"):
        assert micro[key] == pytest.approx(one[key], rel=1e-5, abs=1e-6), key


def test_stages_accumulate_to_the_same_model(tmp_path):
    """SFT and reward-model stages built with micro-batches equal the whole-batch ones."""
    from align_lab.cache import StageCache
    from align_lab.run.stages import build_stages

    cfg, names = compose(["task.n_demonstrations=96", "task.n_pairs=64", "sft.epochs=1", "sft.batch_size=32"])
    spec = spec_from_config(cfg, names)
    quiet = Quiet
    models = []
    for i, micro in enumerate((None, 5)):  # 5 demonstrations (pairs) per micro-batch
        cache = StageCache(tmp_path / f"c{i}")
        stages = build_stages(
            spec.task, spec.model, spec.sft, cache, quiet, micro, reward_models=(spec.reward,)
        )
        models.append((stages.load_policy(), stages.load_reward_model(spec.reward), stages.rm_metrics))
    (p1, r1, m1), (p2, r2, m2) = models
    # Adam over many steps turns float rounding into differences in a few weights: up to 8e-5 in one
    # element (4e-5 of its tensor's norm) on a Zen 4 EPYC, so each tensor is compared by its norm. A
    # micro-batch weighted by 1/its rows instead of 1/the batch's moved whole tensors by 0.15 of theirs.
    pairs = zip(
        [*p1.named_parameters(), *r1.named_parameters()], [*p2.parameters(), *r2.parameters()], strict=True
    )
    for (name, a), b in pairs:
        assert (a - b).norm() <= 1e-3 * a.norm(), (name, ((a - b).norm() / a.norm()).item())
    assert m2["rm/heldout_accuracy"] == pytest.approx(
        m1["rm/heldout_accuracy"], abs=1.01 / m1["rm/heldout_pairs"]
    )


@pytest.mark.fast
def test_micro_batch_size_is_checked_before_compute():
    with pytest.raises(ValueError, match=r"micro_batch_size=0: must be auto .*, an integer >= 1, or null"):
        compose_and_build(["train.micro_batch_size=0"])
    cfg, names = compose(["train.micro_batch_size=4", "hardware.backend=deepspeed"])
    with pytest.raises(ConfigError, match=r"train.micro_batch_size=4: not supported with hardware.backend"):
        check_run(spec_from_config(cfg, names), here=False)
    cfg, names = compose(["hardware.backend=deepspeed"])  # auto, the default: whole minibatches
    check_run(spec_from_config(cfg, names), here=False)


def compose_and_build(overrides):
    cfg, names = compose(overrides)
    return spec_from_config(cfg, names)


@pytest.mark.fast
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_lean_logprobs_and_entropy_equal_the_full_logits_formula(temperature, monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    from align_lab.rl import logprobs as lean

    monkeypatch.setattr(lean, "CHUNK_ELEMENTS", 2 * 7 * 97)  # 2 rows of (T, V) at a time: 3 chunks

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2
    )
    model = LlamaForCausalLM(config)
    B, P, T = 6, 5, 7
    prompt_ids, response_ids = torch.randint(3, 97, (B, P)), torch.randint(3, 97, (B, T))
    prompt_attn, mask = torch.ones(B, P, dtype=torch.long), torch.ones(B, T)
    prompt_attn[0, :2] = 0  # left padding
    mask[1, 4:] = 0  # a finished response
    ids, attn, pos = joint_inputs(prompt_ids, prompt_attn, response_ids, mask)
    full = model(input_ids=ids, attention_mask=attn, position_ids=pos).logits[:, P - 1 : -1] / temperature
    expected = logprobs_from_logits(full, response_ids)  # (B, T)
    logprobs, entropy = response_logprobs(
        model, prompt_ids, prompt_attn, response_ids, mask, temperature, entropy=True
    )
    torch.testing.assert_close(logprobs, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(entropy, entropy_from_logits(full), rtol=1e-5, atol=1e-6)
    assert not entropy.requires_grad  # no (B, T, V) graph unless the entropy is a loss term
    # the same gradient
    (g_full,) = torch.autograd.grad((expected * mask).sum(), model.lm_head.weight)
    (g_lean,) = torch.autograd.grad((logprobs * mask).sum(), model.lm_head.weight)
    torch.testing.assert_close(g_lean, g_full, rtol=1e-5, atol=1e-6)
