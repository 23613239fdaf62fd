"""train/memory/planner.py: the run's predicted peak, term by term, and train.micro_batch_size=auto's rows
planned from it (hand-derived numbers); the Context plans whoever builds it."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from align_lab.run.hardware import Hardware
from align_lab.train.common import TrainConfig
from align_lab.train.memory.footprint import held_modules, parameter_bytes
from align_lab.train.memory.planner import (
    Dims,
    GiB,
    allowance,
    forward_row_bytes,
    kv_bytes,
    machine_memory,
    plan,
    plan_run,
    response_tokens,
    row_bytes,
)

MiB = 2**20
SMOL = Dims(hidden=576, layers=30, intermediate=1536, heads=9, vocab=49152, kv_width=192)


def smollm2(requires_grad: bool = True):
    """SmolLM2-135M-Instruct's architecture (its config.json) on the meta device: sizes, no memory."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
        tie_word_embeddings=True,
        max_position_embeddings=8192,
    )
    with torch.device("meta"):
        return LlamaForCausalLM(config).requires_grad_(requires_grad)


def arith_word(eval_prompts: int = 64):
    """arith_word as SmolLM2 reads it: the longest chat prompt 58 tokens, 64 response tokens."""
    prompts = ["q"] * eval_prompts
    return SimpleNamespace(
        max_prompt_tokens=128, max_response_tokens=64, longest_prompt_tokens=58, prompts=lambda s: prompts
    )


def test_row_and_cache_bytes_by_hand():
    dims = Dims(hidden=8, layers=2, intermediate=16, heads=2, vocab=10)
    # L = 3 + 2 = 5 tokens; per token and layer 6*8 + 4*16 + 2*5 = 122 floats; 2 layers: 2*5*122 = 1220;
    # logits: 3 copies of (2 + 1) x 10 = 90 floats; 4 bytes each
    assert row_bytes(dims, 3, 2) == 4 * (1220 + 90) == 5240
    assert row_bytes(dims, 3, 2, logits=False) == 4 * 1220
    # bf16 autocast: the layers' floats at 2 bytes, the fp32 logits at 4
    assert row_bytes(dims, 3, 2, dtype="bf16") == 2 * 1220 + 4 * 90 == 2800
    # a no-graph forward: the larger of one layer (5 * 122 = 610 floats) and 2 copies of the logits
    # (2 x 3 x 10 = 60), and the KV cache of its 5 positions (2 x 2 layers x 8 x 5 = 160 floats)
    assert forward_row_bytes(dims, 3, 2) == 4 * (610 + 160) == 3080
    # KV: keys and values (2) x 2 layers x 8 floats (no grouped queries: hidden) x 5 positions x 4 bytes
    assert kv_bytes(dims, 5) == 2 * 2 * 8 * 5 * 4 == 640
    # SmolLM2: 3 KV heads of 64 = 192 floats; 122 positions: 4 * 2 * 30 * 192 * 122 = 5,621,760
    assert kv_bytes(SMOL, 122) == 5_621_760


def test_dims_and_parameters_of_smollm2_from_its_config():
    model = smollm2()
    dims = Dims.of(model.config)
    assert dims == dataclasses.replace(SMOL, tied=True)
    # tied embedding 49152 * 576 = 28,311,552; a layer: q, o 576^2 each, k, v 576 * 192 each, MLP
    # 3 * 576 * 1536: 663,552 + 221,184 + 2,654,208 = 3,538,944; x 30 = 106,168,320 (norms left out)
    assert dims.parameters() == 28_311_552 + 106_168_320 == 134_479_872
    assert sum(p.numel() for p in model.parameters()) == 134_515_008  # + 61 norms of 576


def test_allowance_is_a_quarter_of_the_update_on_a_cpu_within_the_budget_and_an_eighth_of_a_gpu():
    assert allowance(4 * GiB, 64 * GiB) == GiB  # a quarter of what the update holds
    assert allowance(3 * GiB, int(3.5 * GiB)) == GiB // 2  # what the budget leaves
    assert allowance(5 * GiB, 4 * GiB) == 0  # nothing left: 1 row (plan)
    assert allowance(5 * GiB, 80 * GiB, gpu=True) == 10 * GiB


def test_plan_fills_the_allowance_runs_whole_within_four_times_it_and_keeps_a_number():
    assert plan("auto", 64, 100 * MiB, GiB) == 10  # 1024 // 100
    assert plan("auto", 40, 100 * MiB, GiB) is None  # 4000 MiB <= 4 x 1024 MiB: one forward
    assert plan("auto", 41, 100 * MiB, GiB) == 10
    assert plan("auto", 21, 100 * MiB, GiB, whole_factor=2) == 10  # a stage's: within 2 x
    assert plan("auto", 11, 100 * MiB, GiB, whole_factor=1) == 10  # no-graph forwards: within 1 x
    assert plan("auto", 64, 2 * GiB, GiB) == 1 == plan("auto", 64, MiB, 0)  # never 0 rows
    assert plan(4, 64, 100 * MiB, GiB) == 4 and plan(None, 64, 100 * MiB, GiB) is None


def test_reinforce_pp_64_by_64_on_smollm2_plans_under_4_gb():
    # weights 134,515,008 x 4 = 538,060,032 bytes each for the policy and the reference; gradients the
    # policy's; AdamW 2 x theirs. Held: 440 MiB runtime (461,373,440) + 2 x 538,060,032 + 1,076,120,064
    # = 2,613,613,568; the update adds 538,060,032 of gradients: 3,151,673,600, a quarter 787,918,400.
    # A graph row: 1.4 x row_bytes(58, 64) = 1.4 x 194,957,280 = 272,940,192; 787,918,400 // that = 2.
    # Evaluation (64 prompts x 4): a no-graph row 4 x 2 x 65 x 49152 logits + 5,621,760 KV = 31,180,800:
    # 25 rows; sampling: KV of 2 x 58 + 64 = 180 positions 4 x 2 x 30 x 192 x 180 = 8,294,400: 94 rows.
    # What evaluation keeps of its 256 rows (kept.py): 2304 + 32 x 58 + (32 + 12) x 64 = 6,976 bytes a row.
    planned = plan_run("auto", (smollm2(), smollm2(False), None), arith_word(), None, TrainConfig(),
                       budget=int(23.5 * GiB))  # fmt: skip
    peak = planned.peak
    assert (planned.micro_batch_size, planned.eval_micro_batch_size, planned.eval_sample_rows) == (2, 25, 94)
    assert planned.forward_micro_batch_size == 25  # step 3's and the reference's no-graph forwards
    assert peak.held == 2_613_613_568
    assert peak.phases == {
        "update": 538_060_032 + 2 * 272_940_192,
        "rollout forward": 25 * 31_180_800,  # 64 rows: 1,995,571,200 > 787,918,400
        "evaluation": 25 * 31_180_800 + 256 * 6_976,
        "sampling": 94 * 8_294_400,  # the larger of the rollout's 64 rows and an evaluation chunk
    }
    assert peak.total == 3_697_553_984 < 4 * 10**9  # the update's phase: 3526 MiB
    # hardware.memory_gb=3: 3 GiB - 3,151,673,600 leaves nothing: one row a micro-batch
    tight = plan_run(
        "auto", (smollm2(), smollm2(False), None), arith_word(), None, TrainConfig(), budget=3 * GiB
    )
    assert tight.micro_batch_size == 1


def test_a_rollout_that_packs_the_weights_adds_their_copy_to_the_sampling_phase_only():
    # rollout.decode_matmul=packed (auto's way on an AMD CPU with AVX-512): the policy's linears
    # reordered for one rollout. SmolLM2's (tied head once), its weights less the norms': 538,060,032 -
    # 4 x (30 x 2 x 576 + 576) = 537,919,488 bytes. Sampling: 94 x 8,294,400 + that = 1,317,593,088,
    # the largest phase (the update's 538,060,032 + 2 x 272,940,192 = 1,083,940,416); the chunks' rows
    # are not cut for it.
    from align_lab.rollout.decode_matmul import packed_bytes
    from align_lab.rollout.hf import HFGenerate

    assert packed_bytes(HFGenerate(decode_matmul="packed"), smollm2(), "cpu") == 537_919_488
    assert packed_bytes(HFGenerate(decode_matmul="packed"), smollm2(), "cuda") == 0  # a GPU: F.linear
    planned = plan_run("auto", (smollm2(), smollm2(False), None), arith_word(), None, TrainConfig(),
                       budget=int(23.5 * GiB), weight_terms={"packed": 537_919_488})  # fmt: skip
    assert planned.eval_sample_rows == 94 and planned.peak.phases["sampling"] == 1_317_593_088
    assert planned.peak.total == 2_613_613_568 + 1_317_593_088  # 3749 MiB against 3526 unpacked


def test_async_rollouts_hold_the_sampling_snapshot_and_sample_beside_the_update():
    # train.async_rollouts: a frozen copy of the policy (538,060,032 bytes) held throughout, and the next
    # rollout's sampling (94 x 8,294,400 = 779,673,600) beside the loop's largest phase, the update's
    # 1,083,940,416: 2,613,613,568 + 538,060,032 + 1,083,940,416 + 779,673,600 = 5,015,287,616
    models = (smollm2(), smollm2(False), None)
    train = TrainConfig(async_rollouts=True, max_staleness=1)
    copies = {"snapshot": 538_060_032}  # context.weight_terms: the policy's bytes where async
    peak = plan_run(
        "auto", models, arith_word(), None, train, budget=int(23.5 * GiB), weight_terms=copies
    ).peak
    assert peak.held == 2_613_613_568 + 538_060_032
    assert peak.total == 5_015_287_616
    assert "sampling snapshot 513, " in peak.describe()
    inline = plan_run("auto", models, arith_word(), None, TrainConfig(), budget=int(23.5 * GiB)).peak
    assert inline.snapshot == 0 and inline.total == 3_697_553_984  # sampling in the loop: phases apart


def test_a_bf16_rollouts_copy_of_the_policy_is_held_throughout():
    # rollout.dtype=bfloat16: the engine samples a bf16 copy of the policy, made at the first sync and kept:
    # 134,515,008 parameters x 2 = 269,030,016 bytes beside the 2,613,613,568 held; the update's phase
    # (1,083,940,416) still the largest: 2,613,613,568 + 269,030,016 + 1,083,940,416 = 3,966,584,000
    copies = {"engine_copy": 269_030_016}  # context.weight_terms: the policy's parameters at 2 bytes
    peak = plan_run("auto", (smollm2(), smollm2(False), None), arith_word(), None, TrainConfig(),
                    budget=int(23.5 * GiB), weight_terms=copies).peak  # fmt: skip
    assert peak.held == 2_613_613_568 + 269_030_016 and peak.total == 3_966_584_000
    assert "sampling copy 257, " in peak.describe()


def test_an_offloaded_reference_is_priced_where_it_is_back_in_memory_and_not_at_the_update():
    # hardware.offload_reference: the reference's 538,060,032 bytes leave what is held throughout
    # (2,613,613,568 - that = 2,075,553,536) and join step 3's forwards (25 x 31,180,800 + that =
    # 1,317,580,032), evaluation (+ 256 x 6,976: 1,319,365,888) and an evaluation chunk's sampling
    # (94 x 8,294,400 + that = 1,317,733,632 against the rollout's 64 x 8,294,400), not the update
    # (1,083,940,416). Total 2,075,553,536 + 1,319,365,888 = 3,394,919,424 (3,697,553,984 held throughout)
    terms = {"offloaded": 538_060_032}  # context.weight_terms: the reference's bytes where offloaded
    planned = plan_run("auto", (smollm2(), smollm2(False), None), arith_word(), None, TrainConfig(),
                       budget=int(23.5 * GiB), weight_terms=terms)  # fmt: skip
    peak = planned.peak
    assert planned.micro_batch_size == 2  # the allowance is what it was: the same rows, the same numbers
    assert peak.held == 2_075_553_536
    assert peak.phases == {
        "update": 538_060_032 + 2 * 272_940_192,
        "rollout forward": 1_317_580_032,
        "evaluation": 1_319_365_888,
        "sampling": 1_317_733_632,
    }
    assert peak.total == 3_394_919_424
    assert "weights 513, optimiser 1026, offloaded reference 513, " in peak.describe()


def test_gkds_divergence_to_the_teacher_adds_its_measured_copies_to_an_update_row():
    # GKD at beta 0.5: 10.3 fp32 (T, V) tensors a row (footprint.MIXTURE_COPIES, measured by
    # scripts/divergence_copies.py), T = 64: 4 x 10.3 x 64 x 49,152 = 129,603,993.6 bytes, no BACKWARD
    # factor (measured as it runs). A row 402,544,185: the quarter 787,918,400 holds 1 (2 without it)
    models = (smollm2(), smollm2(False), None)
    plain = plan_run("auto", models, arith_word(), None, TrainConfig(), budget=int(23.5 * GiB))
    gkd = plan_run(
        "auto", models, arith_word(), None, TrainConfig(), budget=int(23.5 * GiB), divergence_copies=10.3
    )
    assert gkd.peak.train_row - plain.peak.train_row == 129_603_993
    assert (plain.micro_batch_size, gkd.micro_batch_size) == (2, 1)
    assert gkd.budget.divergence_copies == 10.3 and not gkd.budget.packed


def test_bf16_autocast_plans_an_update_row_at_two_bytes_a_layer_float():
    # row_bytes(58, 64): 3 x 65 x 49152 = 9,584,640 logit floats, 194,957,280 / 4 - 9,584,640 =
    # 39,154,680 layer floats. bf16: 2 x 39,154,680 + 4 x 9,584,640 = 116,647,920; x 1.4 = 163,307,088
    # (fp32: 272,940,192). The same 787,918,400 allowance holds 4 rows instead of 2.
    models, budget = (smollm2(), smollm2(False), None), int(23.5 * GiB)
    planned = plan_run("auto", models, arith_word(), None, TrainConfig(), budget=budget, dtype="bf16")
    assert planned.micro_batch_size == 4
    assert planned.peak.phases["update"] == 538_060_032 + 4 * 163_307_088
    # measured (benchmarks/forward_rows.py --graph --dtype bf16 --device cuda, an H200): 90.3 MiB a row
    # at 58 + 64 tokens, 172.4 at 64 + 128; the plan's 155.7 and 275.8 stay above
    assert 163_307_088 / MiB > 90.3 and int(1.4 * row_bytes(SMOL, 64, 128, dtype="bf16")) / MiB > 172.4


def test_an_update_holds_a_minibatch_of_rows_whole_only_within_what_the_budget_leaves():
    # rollout 64, minibatch 8: an update's graph holds 8 rows (the rollout's 64 were counted before),
    # 8 x 272,940,192 = 2,183,521,536 <= 4 x 787,918,400: whole minibatches, their activations the phase
    models = (smollm2(), smollm2(False), None)
    config = TrainConfig(rollout_size=64, minibatch_size=8)
    roomy = plan_run("auto", models, arith_word(), None, config, budget=int(23.5 * GiB))
    assert (roomy.micro_batch_size, roomy.forward_micro_batch_size) == (None, 25)
    assert roomy.peak.phases["update"] == 8 * 272_940_192  # whole: more than the gradients
    assert roomy.peak.phases["rollout forward"] == 25 * 31_180_800
    assert roomy.peak.total == 2_613_613_568 + 2_183_521_536
    # 4 GiB leaves 4,294,967,296 - 3,151,673,600 = 1,143,293,696 for activations: whole would not fit
    tight = plan_run("auto", models, arith_word(), None, config, budget=4 * GiB)
    assert tight.micro_batch_size == 2 and tight.peak.total == 3_697_553_984 < 4 * GiB


def test_step_3s_kept_graph_is_priced_beside_the_reference_forward():
    # minibatch = rollout = 8, whole: step 3's graph (8 x 272,940,192) stays for the first update; the
    # reference's no-graph forward of its 8 rows (8 x 31,180,800 = 249,446,400 <= the allowance) runs
    # before it since 2026-12-05, but the kept graph's update peaks above max(activations, gradients):
    # the sum stands for it (tests/integration/test_memory_peak.py)
    config = TrainConfig(rollout_size=8, minibatch_size=8)
    kept = plan_run(
        "auto", (smollm2(), smollm2(False), None), arith_word(), None, config, budget=int(23.5 * GiB)
    )
    assert kept.micro_batch_size is None and kept.forward_micro_batch_size is None
    assert kept.peak.phases["rollout forward"] == 8 * 272_940_192 + 8 * 31_180_800
    assert kept.peak.total == 2_613_613_568 + 2_432_967_936
    # two processes: each holds 4 rows, and step 3 keeps no graph (a minibatch spans both)
    split = plan_run(
        "auto", (smollm2(), smollm2(False), None), arith_word(), None, config, ranks=2, budget=int(23.5 * GiB)
    )
    assert split.peak.phases["rollout forward"] == 4 * 31_180_800
    assert split.peak.phases["update"] == 4 * 272_940_192


def test_a_multi_turn_row_is_as_long_as_its_conversation():
    task = SimpleNamespace(max_prompt_tokens=64, max_response_tokens=16)
    calculator = SimpleNamespace(multi_turn=True, max_turns=3, max_conversation_tokens=256)
    assert response_tokens(task) == 16  # one response
    assert response_tokens(task, calculator) == 256  # every turn and observation after the prompt
    assert response_tokens(task, calculator, max_positions=128) == 128 - 64  # within the model
    # no conversation limit: 3 turns of 16 and an observation as long between each two: 16 x 5
    unbounded = SimpleNamespace(multi_turn=True, max_turns=3, max_conversation_tokens=None)
    assert response_tokens(task, unbounded) == 80
    policy = (smollm2(), smollm2(False), None)
    one = plan_run(4, policy, arith_word(), None, TrainConfig(), budget=23 * GiB).peak
    turns = plan_run(4, policy, arith_word(), calculator, TrainConfig(), budget=23 * GiB).peak
    assert one.train_row == int(1.4 * row_bytes(SMOL, 58, 64))
    assert turns.train_row == int(1.4 * row_bytes(SMOL, 58, 256)) > 3 * one.train_row


def test_reward_models_in_a_scorer_count_once_and_a_critic_adds_its_body():
    rm = torch.nn.Linear(4, 1)
    scorer = (lambda model: lambda p, r, f: model(p))(rm)
    combined = (lambda parts: lambda p, r, f: sum(s(p, r, f) for _, s in parts))(
        [(1.0, scorer), (0.5, scorer)]
    )
    assert held_modules(combined) == [rm, rm] and held_modules(lambda p, r, f: 0) == []
    # a third-party scorer closing over an object that holds a class, a module and a function (the
    # real_model_vs_trl benchmark's scorer over a task view): found, and the class's descriptors skipped
    holder = SimpleNamespace(kind=type(held_modules), lib=torch, fn=held_modules, model=rm)
    assert held_modules((lambda h: lambda p, r, f: h.model(p))(holder)) == [rm]
    assert parameter_bytes(held_modules(combined)) == (4 + 1) * 4  # weight and bias, once
    policy = (smollm2(), smollm2(False), smollm2())  # PPO: a critic from the same body
    with_critic = plan_run(4, policy, arith_word(), None, TrainConfig(), budget=23 * GiB).peak
    assert with_critic.gradients == 2 * 538_060_032
    assert with_critic.train_row == int(1.4 * row_bytes(SMOL, 58, 64)) + int(
        1.4 * row_bytes(SMOL, 58, 64, False)
    )


def test_memory_budget_is_the_setting_or_the_machine_total_per_process():
    assert Hardware(memory_gb=2.0).memory_bytes() == 2 * GiB
    assert Hardware(memory_gb=2.0, processes=2).memory_bytes() == GiB
    assert Hardware(memory_gb=2.0, processes=2).memory_bytes(whole_node=True) == 2 * GiB  # the stages'
    assert Hardware().memory_bytes() == machine_memory() == machine_memory()  # totals, not free memory
    assert Hardware(processes=2).memory_bytes() == machine_memory() // 2
    with pytest.raises(ValueError, match=r"memory_gb=0: must be > 0 or null"):
        Hardware(memory_gb=0)


def test_on_a_gpu_the_budget_is_that_gpus_memory_for_the_loop_and_the_stages(monkeypatch):
    # one GPU per process: neither divided by the processes nor multiplied for the stages' process
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(total_memory=80 * GiB))
    gpu = Hardware(device="cuda", processes=2)
    assert gpu.memory_bytes() == gpu.memory_bytes(whole_node=True) == 80 * GiB
    # hardware.memory_gb is a node's, as on a CPU
    assert Hardware(device="cuda", processes=2, memory_gb=8.0).memory_bytes() == 4 * GiB


def quiet(**kw):
    from tqdm import tqdm

    return tqdm(disable=True, **kw)


def test_a_context_built_outside_the_app_plans_auto_and_is_frozen(tmp_path):
    """benchmarks/trl_vs_align_lab.py builds its Context by hand with TrainConfig's default "auto":
    Context.build plans it, so the loop gets rows or None (it ended in a TypeError in micro.chunks before)."""
    from align_lab.algorithms.grpo import GRPO
    from align_lab.train.online import train_online
    from tests.conftest import toy_context

    train = TrainConfig(
        steps=1, rollout_size=8, minibatch_size=8, eval_every=0, checkpoint_every=0, eval_samples=1
    )
    assert train.micro_batch_size == "auto"
    ctx = toy_context(tmp_path, train)
    assert ctx.train.micro_batch_size is None and ctx.memory.eval_micro_batch_size is None  # tiny: whole
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.train = train  # built once, complete: nothing patches it after
    assert dataclasses.replace(ctx, seed=1).memory is ctx.memory  # a copy keeps the plan
    from align_lab.train.backend import Backend
    from align_lab.train.context import planned

    bf16 = planned(dataclasses.replace(ctx, backend=Backend(dtype="bf16"), memory=None))  # planned again
    assert bf16.memory.peak.train_row < ctx.memory.peak.train_row  # the backend's dtype reaches the plan
    assert ctx.memory.peak.packed == 0  # the toy policy (64 wide): auto multiplies as the forward
    engine = dataclasses.replace(ctx.engine, decode_matmul="packed")
    packs = planned(dataclasses.replace(ctx, engine=engine, memory=None)).memory.peak
    linears = [m.weight for m in ctx.models.policy.modules() if isinstance(m, torch.nn.Linear)]
    assert packs.packed == 4 * sum(w.numel() for w in linears) > 0  # the engine's setting reaches the plan
    assert ctx.memory.peak.snapshot == 0
    background = dataclasses.replace(ctx.train, steps=2, async_rollouts=True, max_staleness=1)
    snapshot = planned(dataclasses.replace(ctx, train=background, memory=None)).memory.peak.snapshot
    assert snapshot == sum(p.numel() * 4 for p in ctx.models.policy.parameters()) > 0  # async: its copy
    assert ctx.memory.peak.engine_copy == 0
    bf16 = dataclasses.replace(ctx.engine, dtype="bfloat16")
    copy = planned(dataclasses.replace(ctx, engine=bf16, memory=None)).memory.peak.engine_copy
    assert copy == snapshot // 2  # the engine's bf16 copy: 2 bytes a parameter
    final = train_online(GRPO(lr=1e-3, group_size=4, kl_coef=0.0), ctx)
    assert "eval/gold_reward" in final


def test_a_kl_free_runs_evaluation_loads_the_reference_unless_a_lora_policys_base_serves():
    # no reference in training (GRPO beta 0, SimPO): evaluation loads one of the policy's 538,060,032
    # bytes beside its forward's rows, unless it is a LoRA policy's frozen base (models/lora.py)
    models = (smollm2(), None, None)
    loads = plan_run(4, models, arith_word(), None, TrainConfig(), budget=23 * GiB).peak
    shared = plan_run(4, models, arith_word(), None, TrainConfig(), budget=23 * GiB, reference_loads=False)
    kept = 256 * 6_976  # 64 prompts x 4 samples, each row's samples and record (kept.py)
    assert loads.phases["evaluation"] == 538_060_032 + 4 * 31_180_800 + kept
    assert shared.peak.phases["evaluation"] == 4 * 31_180_800 + kept


def test_a_kept_line_says_a_tiny_memory_in_digits_and_that_not_one_sample_fits() -> None:
    from align_lab.train.memory.kept import gib, kept_line

    # 18 prompts x 4 samples x 2,960 bytes = 213,120 bytes = 0.000198 GiB, said 0.0002 (two significant
    # digits), never "0.0"; half of 1 byte holds 0 rows
    line = kept_line(18, 4, 2960, 1, "hardware.memory_gb=1e-09")
    assert "~0.0002 GiB, more than half of hardware.memory_gb=1e-09 (9.3e-10 GiB)" in line
    assert line.endswith("not one sample a prompt fits in hardware.memory_gb=1e-09")
    assert gib(5 * 2**30) == "5.0" and gib(0) == "0.0" and gib(2**30 / 10) == "0.1"
