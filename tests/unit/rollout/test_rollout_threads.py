"""rollout.threads: with `auto` the HF engine samples on fewer threads while other processes keep cores
busy (rollout/busy.py); on the tiny test models its tokens and log-probs do not depend on the thread
count (at SmolLM2's shapes on the Xeon the log-probs' last bits do: why auto is opt-in, docs/rollout.md)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from align_lab.models.tiny import TinyLM
from align_lab.models.tokenizer import train_tokenizer
from align_lab.rollout import busy, hf
from align_lab.rollout.busy import BusyMeter, Reading, machine_cpu_seconds, other_cores, spared_threads
from align_lab.rollout.hf import HFGenerate
from align_lab.tasks.toy_prefs import ToyPrefs

TASK = ToyPrefs(max_response_tokens=12)
PROMPTS = [*TASK.prompts("train")[:3], "river :", "wolf storm garden :"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(TASK.corpus(), tmp_path_factory.mktemp("tok"))


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


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
        ValueError, match=r"threads=.*must be auto, null \(the run's threads\) or a number >= 1"
    ):
        HFGenerate(threads=value)


def draws(model, tokenizer, threads, sampler):
    torch.manual_seed(5)
    return HFGenerate(threads=threads, sampler=sampler).sample(model, tokenizer, PROMPTS, 4, 12, 6)


@pytest.mark.parametrize("sampler", ["inverse_cdf", "multinomial"])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_one_or_two_threads_draw_the_same_tokens_and_log_probs(arch, sampler, tokenizer, two_threads):
    torch.manual_seed(0)
    model = TinyLM(arch=arch, hidden_size=128, intermediate_size=512).init_policy(tokenizer)
    one, two = draws(model, tokenizer, 1, sampler), draws(model, tokenizer, 2, sampler)
    assert torch.equal(one.response_ids, two.response_ids)
    assert torch.equal(one.logprobs, two.logprobs)
    assert torch.get_num_threads() == 2  # put back after sampling


class Seen:
    def __init__(self, cores: float):
        self.cores = cores

    def others(self) -> float:
        return self.cores


@pytest.mark.parametrize(
    "setting, cores, used", [("auto", 0.0, 2), ("auto", 1.0, 1), (None, 1.0, 2), (1, 0.0, 1)]
)
def test_the_engine_samples_on_the_threads_its_setting_spares(
    setting, cores, used, tokenizer, two_threads, monkeypatch
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
    engine.sample(model, tokenizer, PROMPTS[:2], 2, 6, 6)
    assert threads_seen == [used] and torch.get_num_threads() == 2
