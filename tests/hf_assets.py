"""Tiny real Hugging Face artifacts for tests: a Llama causal LM and a Llama sequence-classification
reward model saved with save_pretrained (word-level tokenizer with a chat template), and small
preference / prompt datasets as jsonl, parquet and csv, in the column layouts the presets expect."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from align_lab.tasks.toy_prefs import TOPICS, WORDS

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)
HH_HUMAN, HH_ASSISTANT = "\n\nHuman:", "\n\nAssistant:"


@dataclass
class Assets:
    policy: Path  # LlamaForCausalLM + tokenizer
    rm: Path  # LlamaForSequenceClassification (1 label) + tokenizer
    prefs_jsonl: Path  # prompt, chosen, rejected
    prefs_parquet: Path
    prompts_parquet: Path  # prompt, response
    prompts_csv: Path
    hh_jsonl: Path  # HH-RLHF transcripts in chosen / rejected
    tldr_parquet: Path  # prompt, completion
    gguf: Path  # a tiny Llama GGUF (tests/gguf_assets.py): stands in for model=smollm2_135m's packaged file


def rows(n: int, seed: int = 0) -> list[dict]:
    """Prompts of two topics; chosen and rejected are different short word lists."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.sample(WORDS, 6)
        out.append(
            {
                "prompt": " ".join(rng.sample(TOPICS, 2)),
                "chosen": " ".join(words[:3]),
                "rejected": " ".join(words[3:]),
            }
        )
    return out


def write_jsonl(path: Path, data: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return path


def tokenizer(root: Path):
    from align_lab.models.tokenizer import train_tokenizer

    corpus = [
        " ".join([*TOPICS, *WORDS, "user", "assistant", "system", ":", "Human:", "Assistant:", "TL;DR:"])
    ]
    tok = train_tokenizer(corpus, root / "tokenizer")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_config(tok, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
        **extra,
    )


def build_assets(root: Path) -> Assets:
    import pandas as pd
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    root.mkdir(parents=True, exist_ok=True)
    tok = tokenizer(root)
    torch.manual_seed(0)
    for name, model in (
        ("policy", LlamaForCausalLM(tiny_config(tok))),
        ("rm", LlamaForSequenceClassification(tiny_config(tok, num_labels=1))),
    ):
        model.save_pretrained(str(root / name))
        tok.save_pretrained(str(root / name))
    prefs = rows(40)
    prompts = [{"prompt": r["prompt"], "response": r["chosen"]} for r in prefs]
    hh = [
        {
            "chosen": f"{HH_HUMAN} {r['prompt']}{HH_ASSISTANT} {r['chosen']}",
            "rejected": f"{HH_HUMAN} {r['prompt']}{HH_ASSISTANT} {r['rejected']}",
        }
        for r in prefs
    ]
    tldr = [{"prompt": f"{r['prompt']} TL;DR:", "completion": r["chosen"]} for r in prefs]
    pd.DataFrame(prefs).to_parquet(root / "prefs.parquet")
    pd.DataFrame(prompts).to_parquet(root / "prompts.parquet")
    pd.DataFrame(prompts).to_csv(root / "prompts.csv", index=False)
    pd.DataFrame(tldr).to_parquet(root / "tldr.parquet")
    return Assets(
        policy=root / "policy",
        rm=root / "rm",
        prefs_jsonl=write_jsonl(root / "prefs.jsonl", prefs),
        prefs_parquet=root / "prefs.parquet",
        prompts_parquet=root / "prompts.parquet",
        prompts_csv=root / "prompts.csv",
        hh_jsonl=write_jsonl(root / "hh.jsonl", hh),
        tldr_parquet=root / "tldr.parquet",
        gguf=tiny_gguf(root / "tiny.gguf"),
    )


def tiny_gguf(path: Path) -> Path:
    from tests.gguf_assets import write_tiny_gguf

    write_tiny_gguf(path)
    return path
