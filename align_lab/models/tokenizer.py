"""A word-level tokenizer trained locally with `tokenizers` and wrapped as a transformers fast tokenizer."""

from __future__ import annotations

from pathlib import Path

from align_lab.value_checks import saved_folder

SPECIALS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}


def train_tokenizer(corpus: list[str], out_dir: Path):
    """Trains a whitespace word-level vocabulary on `corpus`, saves it with save_pretrained, returns it."""
    fast = word_level(corpus)
    fast.save_pretrained(str(out_dir))
    return fast


def word_level(corpus: list[str]):
    """The whitespace word-level tokenizer of `corpus` (what train_tokenizer saves), in memory."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=SPECIALS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIALS.values()), min_frequency=1)
    tok.train_from_iterator(corpus, trainer)
    bos = SPECIALS["bos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIALS)


def load_tokenizer(path: Path | str):
    """Loads a tokenizer saved by save_pretrained (offline)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(saved_folder(path))
