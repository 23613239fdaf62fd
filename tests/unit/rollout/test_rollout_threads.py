"""rollout.threads: with `load` the HF engine samples on fewer threads while other processes keep cores
busy (rollout/busy.py); with `auto`, the default, on the run's threads as it started (issue 72). What
the thread count may change, on the machine the test runs on: never a token of these draws; a log-prob's
last bits only where a matrix multiplication's kernel sums in another order at another thread count.
That is a property of the CPU and its MKL path, not of align_lab: on the Xeon (AVX-512) the tiny models'
log-probs were bit-identical at 1 and 2 threads; on the AMD EPYCs (Zen 3, AVX2; Zen 4, AVX-512) MKL's
sgemm with 5-11 rows gives other last bits (issue 59; why `load` is opt-in, docs/rollout.md;
docs/reproducibility.md)."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch

from align_lab.models.tiny import TinyLM
from align_lab.models.tokenizer import train_tokenizer
from align_lab.rollout import busy, hf
from align_lab.rollout.busy import (
    BusyMeter,
    Reading,
    machine_cpu_seconds,
    other_cores,
    spared_threads,
    threads_record,
)
from align_lab.rollout.hf import HFGenerate
from align_lab.tasks.toy_prefs import ToyPrefs

TASK = ToyPrefs(max_response_tokens=12)
PROMPTS = [*TASK.prompts("train")[:3], "river :", "wolf storm garden :"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(TASK.corpus(), tmp_path_factory.mktemp("tok"))


def test_other_cores_is_the_machines_cpu_time_less_this_processs_over_the_wall_time():
    before, after = Reading(10.0, 100.0, 5.0), Reading(12.0, 104.0, 7.0)  # 4 CPU s in 2 s, 2 of them ours
    assert other_cores(before, after) == pytest.approx(1.0)
    assert other_cores(before, Reading(12.0, 103.0, 7.0)) == pytest.approx(0.5)
    assert other_cores(before, Reading(12.0, 106.5, 8.0)) == pytest.approx(1.75)
    assert other_cores(before, Reading(12.0, 101.0, 7.0)) == 0.0  # tick rounding: never below 0
    assert other_cores(Reading(10.0, None, 5.0), after) == 0.0  # no /proc/stat: none seen
    assert other_cores(before, Reading(10.0, 104.0, 7.0)) == 0.0  # no wall time


@pytest.mark.parametrize(
    "threads, others, spared",
    [
        (2, 0.0, 2),
        (2, 0.49, 2),
        (2, 0.5, 1),
        (2, 1.0, 1),
        (2, 3.0, 1),
        (16, 1.2, 15),
        (16, 2.6, 13),
        (1, 1.0, 1),
    ],
)
def test_a_core_others_keep_busy_half_the_time_or_more_costs_the_rollout_a_thread(threads, others, spared):
    assert spared_threads(threads, others) == spared


def test_machine_cpu_seconds_reads_proc_stats_busy_fields(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice: busy = 100+1+20+3+4 ticks
    stat.write_text("cpu  100 1 20 500 60 3 4 70 0 0\ncpu0 50 0 10 250 30 1 2 35 0 0\n")
    monkeypatch.setattr(busy.os, "sysconf", lambda name: 100)
    assert machine_cpu_seconds(stat) == pytest.approx(1.28)
    assert machine_cpu_seconds(tmp_path / "missing") is None
    (tmp_path / "other").write_text("intr 1 2 3\n")
    assert machine_cpu_seconds(tmp_path / "other") is None


@pytest.mark.skipif(machine_cpu_seconds() is None, reason="no /proc/stat")
@pytest.mark.slow  # over 1.3 s of CPU: CI's tier (docs/testing.md, the fast tier)
def test_the_meter_sees_a_busy_process_beside_this_one():
    meter = BusyMeter()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.5)
        seen = meter.others()
    finally:
        child.kill()
        child.wait()
    assert seen >= 0.5


@pytest.mark.parametrize("value", [0, -1, "all", 1.5, True])
def test_a_bad_threads_value_is_one_line_naming_it(value):
    with pytest.raises(
        ValueError, match=r"threads=.*must be auto \(.*\), load \(.*\), null \(.*\) or a number >= 1"
    ):
        HFGenerate(threads=value)


def draws(model, tokenizer, threads, sampler):
    torch.manual_seed(5)
    return HFGenerate(threads=threads, sampler=sampler).sample(model, tokenizer, PROMPTS, 4, 12, 6)


def matmuls_thread_invariant(model) -> bool:
    """Whether every matrix multiplication the draws make gives the same bits at 1 and 2 threads on this
    machine: each Linear weight of `model` times 1..40 rows (the draws' prefill and decode steps have
    5 to 20), as F.linear and as W @ h^T (rollout.decode_matmul). The sums in between (norms, softmax)
    split over rows, not within one, so these products are where a thread count can reach the bits."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    weights = {tuple(m.weight.shape): m.weight.detach() for m in linears}
    before = torch.get_num_threads()
    try:
        for rows in range(1, 41):
            for w in weights.values():
                h = torch.randn(rows, w.shape[1], generator=torch.Generator().manual_seed(rows))  # (rows, K)
                products = []
                for n in (1, 2):
                    torch.set_num_threads(n)
                    products.append((torch.nn.functional.linear(h, w), w @ h.T))
                if not all(torch.equal(a, b) for a, b in zip(*products, strict=True)):
                    return False
        return True
    finally:
        torch.set_num_threads(before)


# Where a kernel is not thread-invariant, how far apart two log-probs may be: 4 float32 ulps at the
# scale of the sum they come from. A log-prob is logit - logsumexp(logits); at another thread count
# MKL adds a logit's K = 128 products in another order, so the logit moves by a few ulps of its partial
# sums, and the log-prob by that plus the same of logsumexp, which for these untrained models' small
# logits is about log(V) (V = 45 tokens: 3.8; a float32 ulp is 2.4e-7 in [2, 4), 4.8e-7 in [4, 8)).
# Measured on the AVX2 EPYC (2026-11-28): at most 1 ulp of the log-prob (4.8e-7 at |log-prob| 4.3,
# 3 of 240 differ); issue 59's Zen 4: 2.4e-7. A real change of distribution moves them by 1e-3 or more.
ULPS = 4


def log_prob_tolerance(vocab_size: int) -> float:
    """ULPS float32 ulps at the magnitude of log(V): ULPS * 2^-23 * 2^ceil(log2 log V)."""
    scale = 2.0 ** math.ceil(math.log2(math.log(vocab_size)))  # log 45 = 3.8 -> 4
    return ULPS * torch.finfo(torch.float32).eps * scale


def test_the_log_prob_tolerance_is_four_ulps_at_log_v():
    # eps = 2^-23 = 1.19e-7; log 45 = 3.81 -> 2^2 = 4; 4 * 1.19e-7 * 4 = 1.91e-6
    assert log_prob_tolerance(45) == pytest.approx(4 * 2**-23 * 4)
    # log 8 = 2.08 -> 2^2 = 4 as well; log 7 = 1.95 -> 2^1 = 2
    assert log_prob_tolerance(8) == pytest.approx(16 * 2**-23)
    assert log_prob_tolerance(7) == pytest.approx(8 * 2**-23)


@pytest.mark.parametrize("sampler", ["inverse_cdf", "multinomial"])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_one_or_two_threads_draw_the_same_tokens_and_log_probs(arch, sampler, tokenizer, two_threads):
    """Tokens: equal, always (a token would flip only if its noise fell within a few ulps of a boundary
    of the CDF: not with these seeds, on any machine seen). Log-probs: bit-identical where this machine's
    matmuls are thread-invariant at these shapes, else within log_prob_tolerance."""
    torch.manual_seed(0)
    model = TinyLM(arch=arch, hidden_size=128, intermediate_size=512).init_policy(tokenizer)
    one, two = draws(model, tokenizer, 1, sampler), draws(model, tokenizer, 2, sampler)
    assert torch.equal(one.response_ids, two.response_ids)
    if matmuls_thread_invariant(model):
        assert torch.equal(one.logprobs, two.logprobs)
    else:
        tolerance = log_prob_tolerance(len(tokenizer))
        torch.testing.assert_close(two.logprobs, one.logprobs, rtol=0.0, atol=tolerance)
    assert torch.get_num_threads() == 2  # put back after sampling


class Seen:
    def __init__(self, cores: float):
        self.cores = cores
        self.threads_used = Counter()

    def others(self) -> float:
        return self.cores


@pytest.mark.parametrize(
    "setting, fixed, cores, used",
    [
        ("load", None, 0.0, 2),
        ("load", None, 1.0, 1),
        (None, None, 1.0, 2),
        (1, None, 0.0, 1),
        # auto: the run's count as it started, whatever the load (issue 72); unfixed: as they are
        ("auto", 1, 0.0, 1),
        ("auto", 2, 1.0, 2),
        ("auto", None, 1.0, 2),
    ],
)
def test_the_engine_samples_on_the_threads_its_setting_spares(
    setting, fixed, cores, used, tokenizer, two_threads, monkeypatch
):
    threads_seen = []
    real = hf.sample_with_cache

    def spy(*args, **kwargs):
        threads_seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(hf, "sample_with_cache", spy)
    model = TinyLM().init_policy(tokenizer)
    engine = HFGenerate(threads=setting)
    engine.meter = Seen(cores)
    if fixed is not None:
        engine.fixed_threads = fixed
    engine.sample(model, tokenizer, PROMPTS[:2], 2, 6, 6)
    assert threads_seen == [used] and torch.get_num_threads() == 2


@pytest.mark.parametrize("setting, recorded", [(1, {"1": 2}), (None, {"2": 2})])
def test_the_engine_counts_the_threads_each_rollout_sampled_with(setting, recorded, tokenizer, two_threads):
    """What summary.json's numerics record as rollout_threads (issue 59): two rollouts on 1 thread
    (rollout.threads=1), or on the run's 2 (null)."""
    model = TinyLM().init_policy(tokenizer)
    engine = HFGenerate(threads=setting)
    for _ in range(2):
        engine.sample(model, tokenizer, PROMPTS[:2], 2, 6, 6)
    assert threads_record(engine) == {"rollout_threads": recorded}
    assert threads_record(object()) == {}  # an engine that does not count them (vLLM)
