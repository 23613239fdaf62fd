"""transformers 5.x loads a model with use_kernels=True unless USE_HUB_KERNELS says no, and without the
`kernels` package every from_pretrained then fails: every run on the lent H200 of 2026-12-04 did (its
image has no `kernels`). Importing align_lab sets USE_HUB_KERNELS=0 unless the user set it
(align_lab/__init__.py HUB_KERNELS): transformers' own layers, whether `kernels` is installed or not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from align_lab import hub_kernels
from tests.conftest import ROOT

# a machine without the `kernels` package (as the lent GPU's image), then a tiny Llama saved and loaded
LOAD = """
import sys
import align_lab
import torch
import transformers.modeling_utils as mu
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

mu.is_kernels_available = lambda: False
config = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=2)
LlamaForCausalLM(config).save_pretrained(sys.argv[1])
print(type(AutoModelForCausalLM.from_pretrained(sys.argv[1])).__name__)
"""


def load(tmp_path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "USE_HUB_KERNELS"} | env
    command = [sys.executable, "-c", LOAD, str(tmp_path / "tiny")]
    return subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # a fresh interpreter importing torch and transformers, a model saved and loaded: 5-7 s
def test_a_model_loads_without_the_kernels_package_after_importing_align_lab(tmp_path):
    result = load(tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "LlamaForCausalLM"


@pytest.mark.slow  # as above
def test_the_users_use_hub_kernels_wins(tmp_path):
    result = load(tmp_path, USE_HUB_KERNELS="1")  # asked for: transformers' own refusal, as without align_lab
    assert result.returncode == 1 and "Kernels are not available" in result.stderr


def test_hub_kernels_sets_only_what_the_user_left_unset():
    environ = {}
    hub_kernels(environ, "0")
    assert environ == {"USE_HUB_KERNELS": "0"}
    mine = {"USE_HUB_KERNELS": "yes"}
    hub_kernels(mine, "0")
    assert mine == {"USE_HUB_KERNELS": "yes"}
    untouched = {}
    hub_kernels(untouched, None)
    assert untouched == {}
