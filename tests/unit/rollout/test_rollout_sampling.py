"""The KV-cache sampling loop draws exactly the tokens of transformers' generate for one seed with
sampler="multinomial", and samples the same distribution with the default, "inverse_cdf"."""

from __future__ import annotations

import pytest
import torch

from align_lab.models.tiny import TinyLM
from align_lab.models.tokenizer import train_tokenizer
from align_lab.rollout import sampling
from align_lab.rollout.hf import HFGenerate
from align_lab.tasks.toy_prefs import ToyPrefs

TASK = ToyPrefs(max_response_tokens=12)
# prompts of 1, 2 and 3 topics: left padding in the batch
PROMPTS = [*TASK.prompts("train")[:3], "river :", "wolf storm garden :"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(TASK.corpus(), tmp_path_factory.mktemp("tok"))


def both(model, tok, greedy=False, **engine):
    out = []
    for use_generate in (True, False):
        torch.manual_seed(3)
        engine_ = HFGenerate(use_generate=use_generate, sampler="multinomial", **engine)
        out.append(engine_.sample(model, tok, PROMPTS, 4, 12, 6, greedy))
    return out


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize(
    "greedy, engine",
    [(False, {}), (False, {"temperature": 0.7, "top_k": 5, "top_p": 0.9}), (True, {})],
)
def test_kv_cache_loop_draws_the_tokens_of_generate(arch, greedy, engine, fast, tokenizer, monkeypatch):
    if not fast:  # the model's own forward decodes (other model classes)
        monkeypatch.setattr(sampling, "fast_decode_supported", lambda model: False)
    torch.manual_seed(0)
    model = TinyLM(arch=arch).init_policy(tokenizer)
    generate, loop = both(model, tokenizer, greedy, **engine)
    assert torch.equal(loop.response_ids, generate.response_ids)
    assert loop.responses == generate.responses and loop.finished == generate.finished
    assert torch.equal(loop.mask, generate.mask)
    # the same log-probs: generate's raw logits, warped as its sampler warps them
    assert torch.allclose(loop.logprobs, generate.logprobs, rtol=0, atol=1e-6)


def test_kv_cache_loop_stops_when_every_row_has_ended(tokenizer):
    torch.manual_seed(0)
    model = TinyLM(arch="qwen2").init_policy(tokenizer)
    with torch.no_grad():  # EOS likely at every step: all rows end well before the limit
        model.lm_head.weight[tokenizer.eos_token_id] *= 40
    generate, loop = both(model, tokenizer)
    assert all(loop.finished) and loop.response_ids.shape[1] < 12
    assert torch.equal(loop.response_ids, generate.response_ids)


def test_decode_matmul_is_auto_exact_or_fast():
    with pytest.raises(ValueError, match=r"^decode_matmul=quick: must be auto\|exact\|fast\|packed$"):
        HFGenerate(decode_matmul="quick")


def shifted_copy(model):
    """A copy of `model` whose parameters lie 4 bytes past a 16-byte boundary, each the one tensor of its
    storage, as SmolLM2's 272 lie as from_pretrained loads them (views into the safetensors file); tied
    ones still tied."""
    import copy

    shifted = copy.deepcopy(model)
    for p in shifted.parameters():
        buf = bytearray(p.numel() * 4 + 64)
        at = (4 - torch.frombuffer(buf, dtype=torch.uint8).data_ptr()) % 16  # 4 bytes off a boundary
        lies = torch.frombuffer(buf, dtype=torch.float32, count=p.numel(), offset=at)  # its own storage
        p.data = lies.view_as(p).copy_(p.data)
    assert all(p.data_ptr() % 16 == 4 for p in shifted.parameters())
    return shifted


def test_align_weights_moves_every_misaligned_weight_and_keeps_ties_and_values(tokenizer):
    from align_lab.rollout.decode import ALIGNMENT, align_weights

    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tokenizer)
    model.tie_weights()
    shifted = shifted_copy(model)
    params = list(shifted.parameters())
    optimizer = torch.optim.AdamW(params)
    assert align_weights(shifted) == len(params)
    assert all(p.data_ptr() % ALIGNMENT == 0 for p in shifted.parameters())
    assert list(shifted.parameters()) == params  # the same Parameter objects: the optimizer's
    assert (shifted.lm_head.weight is shifted.model.embed_tokens.weight) == (
        model.lm_head.weight is model.model.embed_tokens.weight
    )
    for mine, theirs in zip(shifted.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)
    shifted(torch.tensor([[1, 2, 3]])).logits.sum().backward()
    optimizer.step()  # trains on, in place, where the weights now lie
    assert all(p.data_ptr() % ALIGNMENT == 0 for p in shifted.parameters())
    assert align_weights(shifted) == 0


def test_align_weights_leaves_views_into_a_shared_flat_buffer(tokenizer):
    """Parameters that are views into one flat buffer (as DeepSpeed ZeRO-1/2 lays them out and updates
    them) stay views into it, wherever they lie: moving them would cut them off from their updates."""
    from align_lab.rollout.decode import align_weights

    model = TinyLM(arch="llama").init_policy(tokenizer)
    params = list(model.parameters())
    flat = torch.empty(sum(p.numel() + 1 for p in params) + 1)
    at = 1
    for p in params:  # each one float past the previous one's end: most off a 16-byte boundary
        p.data = flat[at : at + p.numel()].view_as(p).copy_(p.data)
        at += p.numel() + 1
    assert any(p.data_ptr() % 16 for p in params)
    assert align_weights(model) == 0
    before = [p.detach().clone() for p in params]
    flat.add_(1.0)  # the library's update reaches every parameter
    assert all(torch.equal(p, b + 1.0) for p, b in zip(params, before, strict=True))


@pytest.mark.parametrize("left", [False, True])
def test_the_fast_decode_step_aligns_the_weights_it_multiplies(left, tokenizer):
    """decode_matmul=fast first moves the weights to aligned storage (W @ h^T's last bits depend on
    where W lies on the AVX2 EPYC), so the live policy, a resumed copy and an async snapshot draw alike;
    exact leaves the model as it is."""
    from align_lab.models.sequences import encode_prompts

    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tokenizer).eval()
    shifted = shifted_copy(model)
    ids, attn = encode_prompts(tokenizer, PROMPTS, 6)
    limits = (12, tokenizer.eos_token_id, tokenizer.pad_token_id)
    drawn = []
    for m in (model, shifted):
        torch.manual_seed(3)
        drawn.append(sampling.sample_with_cache(m, ids, attn, *limits, n=4, weights_left=left))
    assert torch.equal(drawn[0][0], drawn[1][0]) and torch.equal(drawn[0][1], drawn[1][1])
    assert all(p.data_ptr() % 64 == 0 for p in shifted.parameters()) is left


def with_lora(model, targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "lm_head"), **how):
    """`model` with peft LoRA adapters (r 4) whose B is not 0, so that they change every output."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), task_type="CAUSAL_LM", **how)
    wrapped = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return wrapped


@pytest.mark.parametrize("lora", [False, True])  # LoRA adapters (peft) on attention, MLP and LM head
@pytest.mark.parametrize("left", [False, True])  # rollout.decode_matmul exact, fast
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("kv_heads", [4, 2, 1])  # multi-head, grouped-query (SmolLM2, Qwen2.5), multi-query
def test_decode_step_equals_the_model_forward_bit_for_bit(kv_heads, padded, left, lora):
    """exact: the forward's bits; fast (W @ h^T): the same logits up to float rounding. With LoRA the
    step reads the peft layers' base weights and adapters: the peft model's forward's bits."""
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    from align_lab.rollout.decode import decode_step, fast_decode_supported, preallocate

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=128,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
    )
    model = LlamaForCausalLM(config).eval()
    if lora:
        model = with_lora(model).eval()
    assert fast_decode_supported(model)
    ids = torch.randint(3, 50, (3, 6))  # (B, P)
    attn = torch.ones_like(ids)
    if padded:
        attn[0, :2] = 0  # left padding
    position = (attn.cumsum(-1) - 1).clamp(min=0)
    mask = attn if padded else None
    with torch.no_grad():
        ours = model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True)
        theirs = model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True)
        prefill = [(layer.keys, layer.values) for layer in ours.past_key_values.layers]
        kv = preallocate(prefill, 1, 6 + 3)  # per layer (B, H_kv, P + 3, D), written in place
        cache: DynamicCache = theirs.past_key_values
        tokens = torch.randint(3, 50, (3,))
        for t in range(3):
            position = position[:, -1:] + 1
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(3, 1)], dim=1)
            fast = decode_step(model, tokens, position, kv, 6 + t, mask, left)  # (B, V)
            slow = model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                position_ids=position,
                past_key_values=cache,
                use_cache=True,
            ).logits[:, -1]
            assert torch.allclose(fast, slow, rtol=0, atol=1e-5) if left else torch.equal(fast, slow)
            tokens = slow.argmax(-1)


def test_lora_that_only_its_own_forward_knows_decodes_with_the_forward():
    """LoRA with dropout, merged into the base, switched off or DoRA: the model's forward decodes."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from align_lab.rollout.decode import fast_decode_supported

    def tiny():
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48,
                                            num_hidden_layers=1, num_attention_heads=2))  # fmt: skip

    assert fast_decode_supported(with_lora(tiny()))
    assert not fast_decode_supported(with_lora(tiny(), lora_dropout=0.1))
    assert not fast_decode_supported(with_lora(tiny(), use_dora=True))
    merged = with_lora(tiny())
    merged.merge_adapter()
    assert not fast_decode_supported(merged)
    off = with_lora(tiny())
    with off.disable_adapter():
        assert not fast_decode_supported(off)
    assert fast_decode_supported(off)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_one_prefill_per_prompt_draws_the_tokens_of_a_prefill_per_row(arch, fast, tokenizer, monkeypatch):
    from align_lab.models.sequences import encode_prompts

    if not fast:
        monkeypatch.setattr(sampling, "fast_decode_supported", lambda model: False)
    torch.manual_seed(0)
    model = TinyLM(arch=arch).init_policy(tokenizer).eval()
    ids, attn = encode_prompts(tokenizer, PROMPTS, 6)  # (5, P) left-padded
    limits = (12, tokenizer.eos_token_id, tokenizer.pad_token_id)
    torch.manual_seed(3)  # every row prefilled: the prompts repeated G=4 times, as before the sharing
    per_row, per_row_logprobs = sampling.sample_with_cache(
        model, ids.repeat_interleave(4, 0), attn.repeat_interleave(4, 0), *limits
    )
    torch.manual_seed(3)
    shared, shared_logprobs = sampling.sample_with_cache(model, ids, attn, *limits, n=4)  # (20, T') each
    assert shared.shape[0] == 20 and torch.equal(shared, per_row)
    assert torch.equal(shared_logprobs, per_row_logprobs)


def test_bfloat16_rollouts_sample_a_synced_copy_and_leave_the_trainer_float32(tokenizer):
    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tokenizer)
    engine = HFGenerate(dtype="bfloat16")
    engine.sync(model)
    copy = engine.policy_copy
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in copy.parameters())
    assert copy.lm_head.weight is copy.model.embed_tokens.weight  # tied, as in the trainer's model
    s = engine.sample(model, tokenizer, PROMPTS, 4, 12, 6)
    assert s.response_ids.shape[0] == 20 and s.mask.shape == s.response_ids.shape
    assert int(s.response_ids.max()) < model.config.vocab_size and s.mask[:, 0].all()
    assert all(p.dtype == torch.float32 and p.requires_grad for p in model.parameters())
    # a step of the trainer: the next sample (or sync) copies the new weights into the same copy
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(input_ids=s.response_ids).logits.mean().backward()
    optimizer.step()
    engine.sample(model, tokenizer, PROMPTS, 1, 4, 6)
    assert engine.policy_copy is copy
    for mine, theirs in zip(copy.parameters(), model.parameters(), strict=True):
        assert torch.equal(mine, theirs.detach().to(torch.bfloat16))
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_bfloat16_kv_cache_loop_draws_the_tokens_of_generate_on_the_copy(arch, tokenizer):
    torch.manual_seed(0)
    model = TinyLM(arch=arch).init_policy(tokenizer)
    generate, loop = both(model, tokenizer, dtype="bfloat16")
    assert torch.equal(loop.response_ids, generate.response_ids)


def test_decode_lm_head_in_chunks_gives_the_bits_of_one_matmul_at_smollm2_shape():
    import torch.nn.functional as F

    from align_lab.rollout import decode

    torch.manual_seed(0)
    head = torch.nn.Linear(576, 49_152, bias=False)  # SmolLM2's LM head, (V, d)
    decode._HEAD_CHUNKS_EXACT.clear()
    for _ in range(3):  # the first call checks the chunks on this machine, the others use the verdict
        x = torch.randn(8, 1, 576)  # (B, 1, d)
        assert torch.equal(decode._lm_head(head, x), F.linear(x, head.weight))
    assert len(decode._HEAD_CHUNKS_EXACT) == 1


def trainer_logprobs(model, s, temperature):
    """The online loop's log-probs of the samples: one forward, temperature only, whole vocabulary."""
    from align_lab.models.sequences import response_logprobs

    with torch.no_grad():
        return response_logprobs(model, s.prompt_ids, s.prompt_attn, s.response_ids, s.mask, temperature)[0]


@pytest.mark.parametrize("use_generate", [False, True])
@pytest.mark.parametrize("seeds", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_rollout_logprobs_are_the_trainers_without_truncation(temperature, seeds, use_generate, tokenizer):
    """top_k=0, top_p=1: the engine samples from softmax(logits / temperature), the very distribution
    the trainer scores with; the two differ only by float rounding (KV-cache steps vs one forward)."""
    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tokenizer)
    engine = HFGenerate(temperature=temperature, use_generate=use_generate, seed_per_sample=seeds)
    torch.manual_seed(3)
    s = engine.sample(model, tokenizer, PROMPTS, 4, 12, 6, seeds=list(range(20)))
    assert s.logprobs.shape == s.mask.shape and s.logprobs.dtype == torch.float32
    assert (s.logprobs[s.mask.bool()] <= 0).all() and (s.logprobs[~s.mask.bool()] == 0).all()
    assert torch.allclose(s.logprobs, trainer_logprobs(model, s, temperature) * s.mask, rtol=0, atol=1e-5)


@pytest.mark.parametrize("use_generate", [False, True])
@pytest.mark.parametrize("truncation", [{"top_p": 0.9}, {"top_k": 5}, {"top_k": 5, "top_p": 0.9}])
def test_truncated_logprobs_exceed_the_trainers_by_the_kept_mass(truncation, use_generate, tokenizer):
    """With top-k / top-p the engine samples from the kept tokens, renormalised: its log-prob of a
    token is the trainer's minus log(kept mass S) at that position, so every trainer/rollout ratio is S."""
    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tokenizer)
    engine = HFGenerate(temperature=0.7, use_generate=use_generate, **truncation)
    torch.manual_seed(3)
    s = engine.sample(model, tokenizer, PROMPTS, 4, 12, 6)
    from align_lab.models.sequences import response_logits

    with torch.no_grad():
        logits = response_logits(model, s.prompt_ids, s.prompt_attn, s.response_ids, s.mask)  # (B, T, V)
    B, T, V = logits.shape
    kept = torch.isfinite(sampling.warp(logits.reshape(B * T, V), 0.7, engine.top_k, engine.top_p))  # (BT, V)
    probs = torch.softmax(logits.reshape(B * T, V) / 0.7, dim=-1)  # (BT, V)
    log_kept_mass = torch.where(kept, probs, 0.0).sum(-1).log().reshape(B, T)  # (B, T) log S <= 0
    keep = s.mask.bool()
    assert (log_kept_mass[keep] < 0).any()  # the truncation did remove mass
    log_ratio = trainer_logprobs(model, s, 0.7) - s.logprobs  # (B, T) log(trainer / rollout)
    assert torch.allclose(log_ratio[keep], log_kept_mass[keep], atol=1e-5)


def test_greedy_rollouts_have_logprob_zero(tokenizer):
    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tokenizer)
    for use_generate in (False, True):
        s = HFGenerate(use_generate=use_generate).sample(model, tokenizer, PROMPTS, 2, 12, 6, greedy=True)
        assert torch.equal(s.logprobs, torch.zeros(s.mask.shape))


@pytest.mark.parametrize("use_generate", [False, True])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_diverged_weights_stop_sampling_with_non_finite_logits(bad, use_generate, tokenizer):
    """Not torch's 'probability tensor contains either inf, nan or element < 0': an error the run
    reports in one line as diverged (a Diverged)."""
    from align_lab.rollout.base import NonFiniteLogits
    from align_lab.value_checks import Diverged

    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tokenizer)
    with torch.no_grad():
        model.lm_head.weight[5, 0] = bad  # one vocabulary row: logits NaN or +-inf at every position
    with pytest.raises(NonFiniteLogits, match="^diverged while sampling \\(non-finite logits\\)$") as e:
        HFGenerate(use_generate=use_generate).sample(model, tokenizer, PROMPTS, 2, 12, 6)
    assert isinstance(e.value, Diverged)
    assert model.training  # the policy's train/eval mode is restored on the way out


def test_finite_logits_check_finds_nan_inf_and_all_masked_rows():
    from align_lab.rollout.base import NonFiniteLogits, check_finite_logits

    fine = torch.tensor([[0.0, 1.0, float("-inf")], [2.0, -3.0, 1.0]])  # a -inf (masked token) is fine
    check_finite_logits(fine)
    for row in ([1.0, float("nan"), 0.0], [float("inf"), 1.0, 0.0]):
        with pytest.raises(NonFiniteLogits):
            check_finite_logits(torch.tensor([[0.0, 1.0, 2.0], row]))
    with pytest.raises(NonFiniteLogits):
        check_finite_logits(torch.tensor([[0.0, 1.0, 2.0], [float("-inf")] * 3]))


def test_the_decode_loop_runs_without_a_default_device_and_sets_it_back():
    # hardware.device=cuda sets torch's default device, whose mode costs a Python call per operation;
    # the loop unsets it while it runs ("meta" stands in for cuda) and restores it, even on an error
    from align_lab.rollout.sampling import no_default_device

    torch.set_default_device("meta")
    try:
        with no_default_device():
            assert torch.zeros(1).device == torch.device("cpu")
        assert torch.get_default_device() == torch.device("meta")
        with pytest.raises(ValueError), no_default_device():
            raise ValueError
        assert torch.get_default_device() == torch.device("meta")
    finally:
        torch.set_default_device(None)


def test_sampling_runs_with_no_default_device_and_keeps_it_after(tokenizer, monkeypatch):
    # the loop unsets it while it runs (sample_with_cache's decorator) and sets it back: a CPU model
    # samples with "meta" set; each step's draw sees torch's default (cpu) device
    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tokenizer)
    ids, attn = torch.full((2, 3), 5), torch.ones(2, 3, dtype=torch.long)
    seen, draw = [], sampling.draw
    monkeypatch.setattr(
        sampling, "draw", lambda *a, **k: seen.append(torch.get_default_device()) or draw(*a, **k)
    )
    torch.set_default_device("meta")
    try:
        out, logprobs = sampling.sample_with_cache(model, ids, attn, 4, tokenizer.eos_token_id, 0)
        assert torch.get_default_device() == torch.device("meta")
    finally:
        torch.set_default_device(None)
    assert out.device == logprobs.device == torch.device("cpu")
    assert seen and set(seen) == {torch.device("cpu")}


@pytest.mark.parametrize("fast", [True, False])
def test_sampling_uses_transformers_current_cache_names(fast, tokenizer, monkeypatch):
    # `past_key_values` is deprecated in transformers 5.2x: reading or passing it logs a warning in
    # every run; the loop uses `cache` where the installed transformers has it
    import logging

    from transformers.utils import logging as hf_logging

    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tokenizer)
    monkeypatch.setattr(sampling, "fast_decode_supported", lambda m: fast)
    hf_logging.get_logger("transformers").warning_once.cache_clear()
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        ids, attn = torch.full((2, 3), 5), torch.ones(2, 3, dtype=torch.long)
        sampling.sample_with_cache(model, ids, attn, 4, tokenizer.eos_token_id, 0)
    finally:
        logger.removeHandler(handler)
    assert not [m for m in seen if "deprecated" in m]


def chi_square_p(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's chi-square test of draw counts against probabilities (tokens of mass > 0), its p-value."""
    from scipy.stats import chisquare

    kept = probs > 0
    expected = probs[kept].double() / probs[kept].double().sum() * counts.sum()
    return float(chisquare(counts[kept].double().numpy(), expected.numpy()).pvalue)


def test_inverse_cdf_draws_each_token_with_its_probability_and_never_one_of_mass_zero():
    probs = torch.tensor(
        [
            [0.5, 0.25, 0.125, 0.125, 0.0],
            [0.0, 0.7, 0.0, 0.2, 0.1],  # zeros inside, as top-k / top-p leave them
            [1e-3, 0.0, 0.0, 0.0, 0.999],
        ]
    )
    n = 200_000
    torch.manual_seed(0)
    tokens = sampling.inverse_cdf(probs.repeat(n, 1)).view(n, 3)  # (n, 3)
    for row in range(3):
        counts = torch.bincount(tokens[:, row], minlength=5)
        assert counts[probs[row] == 0].sum() == 0, row
        assert chi_square_p(counts, probs[row]) > 1e-3, (row, counts)
    # unnormalised rows (the draw is against the row's own total) and one draw per row
    torch.manual_seed(0)
    assert torch.equal(sampling.inverse_cdf(probs.repeat(n, 1) * 3), tokens.view(-1))


def test_inverse_cdf_whose_uniform_rounds_to_the_total_draws_the_last_token_with_mass(monkeypatch):
    probs = torch.tensor([[0.3, 0.7, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.ones(shape, **kw))  # u x total = total
    assert sampling.inverse_cdf(probs).tolist() == [1, 3]


@pytest.mark.parametrize("row_seeds", [False, True])
@pytest.mark.parametrize("sampler", ["inverse_cdf", "multinomial"])
def test_the_loops_first_tokens_follow_the_models_next_token_distribution(sampler, row_seeds, tokenizer):
    """4,000 samples of one token of one prompt (one prefill, its logits repeated) against softmax of
    the model's logits at the prompt's last position, warped by temperature and top-k; with each row's
    own seed (seed_per_sample: inverse_cdf on the row's uniform, or Gumbel-max) too."""
    from align_lab.models.sequences import encode_prompts

    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tokenizer).eval()
    ids, attn = encode_prompts(tokenizer, PROMPTS[:1], 6)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn).logits[0, -1]  # (V,)
    probs = torch.softmax(sampling.warp(logits[None], 1.3, 20, 1.0), -1)[0]  # (V,)
    torch.manual_seed(1)
    noise = sampling.RowNoise(list(range(4000))) if row_seeds else None
    limits = (1, tokenizer.eos_token_id, tokenizer.pad_token_id)
    tokens, logprobs = sampling.sample_with_cache(
        model, ids, attn, *limits, temperature=1.3, top_k=20, n=4000, sampler=sampler, noise=noise
    )
    counts = torch.bincount(tokens[:, 0], minlength=len(probs))
    assert counts[probs == 0].sum() == 0
    assert chi_square_p(counts, probs) > 1e-3
    assert torch.allclose(logprobs[:, 0], probs.log()[tokens[:, 0]], atol=1e-5)


@pytest.mark.parametrize("sampler", ["inverse_cdf", "multinomial"])
def test_with_row_seeds_a_rows_tokens_do_not_depend_on_the_other_rows_or_the_global_generator(
    sampler, tokenizer
):
    torch.manual_seed(0)
    model = TinyLM(arch="llama").init_policy(tokenizer).eval()
    engine = HFGenerate(seed_per_sample=True, sampler=sampler)
    seeds = list(range(100, 120))
    whole = engine.sample(model, tokenizer, PROMPTS, 4, 12, 6, seeds=seeds)
    torch.manual_seed(99)
    tail = engine.sample(model, tokenizer, PROMPTS[2:], 4, 12, 6, seeds=seeds[8:])
    assert whole.responses[8:] == tail.responses and len(set(whole.responses)) > 5


def test_rows_to_keep_are_the_unfinished_ones_and_at_least_two():
    keep = sampling.rows_to_keep
    assert keep(torch.tensor([True, True, True])) is None
    assert keep(torch.tensor([True, False, True])).tolist() == [0, 2]
    assert keep(torch.tensor([False, True, False, False])).tolist() == [0, 1]  # one left: a finished one kept
    assert keep(torch.tensor([False, False, True])).tolist() == [0, 2]
    assert keep(torch.tensor([False, True])) is None  # two rows left: nothing to drop


@pytest.mark.parametrize("row_seeds", [False, True])
@pytest.mark.parametrize("engine", [{}, {"temperature": 0.7, "top_k": 5}])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_dropping_ended_rows_from_the_decode_step_draws_the_tokens_of_the_whole_batch(
    arch, engine, row_seeds, tokenizer, monkeypatch
):
    """inverse_cdf: the decode step computes only the rows still sampling; every row still draws its
    uniform, so tokens and log-probs equal those of decoding every row to the end (left-padded
    prompts, rows ending at different steps)."""
    from align_lab.models.sequences import encode_prompts

    torch.manual_seed(0)
    model = TinyLM(arch=arch).init_policy(tokenizer).eval()
    with torch.no_grad():  # EOS likely enough that rows end at different steps
        model.lm_head.weight[tokenizer.eos_token_id] *= 4
    ids, attn = encode_prompts(tokenizer, PROMPTS, 6)
    limits = (12, tokenizer.eos_token_id, tokenizer.pad_token_id)

    def sample():
        torch.manual_seed(3)
        noise = sampling.RowNoise(list(range(20))) if row_seeds else None
        return sampling.sample_with_cache(model, ids, attn, *limits, n=4, noise=noise, **engine)

    dropped, dropped_logprobs = sample()
    kept_rows = []
    monkeypatch.setattr(sampling, "rows_to_keep", lambda unfinished: kept_rows.append(1))  # None: keep all
    whole, whole_logprobs = sample()
    lengths = (whole != tokenizer.pad_token_id).sum(-1)
    assert len(set(lengths.tolist())) > 3 and kept_rows  # rows ended at several steps
    assert torch.equal(dropped, whole)
    # bit for bit where the BLAS gives a row the same bits at any row count (Llama's matmuls here);
    # Qwen2's biased q/k/v projections (addmm) can differ in the last bits
    exact = arch == "llama"
    assert torch.allclose(dropped_logprobs, whole_logprobs, rtol=0, atol=0 if exact else 1e-6)


def test_a_lora_policy_the_forward_decodes_passes_the_cache_as_transformers_names_it(tokenizer):
    """Seventh hunt of 2026-12-04: ZeRO-3 with LoRA decodes with the model's forward, and the peft
    wrapper's forward takes **kwargs, so the loop passed `past_key_values`: transformers 5.2x's
    FutureWarning, three a run. The keyword is asked of the model under the wrapper."""
    import inspect
    import warnings

    torch.manual_seed(0)
    model = with_lora(TinyLM(arch="llama").init_policy(tokenizer)).eval()
    base = model.get_base_model()
    assert sampling.cache_keyword(model) == sampling.cache_keyword(base)
    if "cache" in inspect.signature(base.forward).parameters:  # transformers >= 5.2x
        engine = HFGenerate(use_generate=False, sampler="multinomial")
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            with pytest.MonkeyPatch.context() as m:
                m.setattr(sampling, "fast_decode_supported", lambda model: False)
                engine.sample(model, tokenizer, PROMPTS, 4, 12, 6, False)
