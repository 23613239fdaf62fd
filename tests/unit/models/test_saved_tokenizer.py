"""A saved tokenizer is read from disk once a process while its files are unchanged; each caller gets a copy
of its own, and a tokenizer saved again in the same folder is read again."""

from __future__ import annotations

from align_lab.models.hf import saved_tokenizer
from align_lab.models.tokenizer import word_level


def test_a_saved_tokenizer_is_read_once_copied_to_each_caller_and_read_again_once_changed(tmp_path):
    word_level(["a b c"]).save_pretrained(str(tmp_path))
    first, second = saved_tokenizer(str(tmp_path)), saved_tokenizer(str(tmp_path))
    assert first is not second and first.get_vocab() == second.get_vocab()
    first.padding_side = "left"  # as the tokenizer stage sets it
    assert second.padding_side == "right" and saved_tokenizer(str(tmp_path)).padding_side == "right"
    assert first("a c")["input_ids"] == second("a c")["input_ids"]
    word_level(["a b c d e"]).save_pretrained(str(tmp_path))  # a new vocabulary in the same folder
    assert len(saved_tokenizer(str(tmp_path)).get_vocab()) == len(first.get_vocab()) + 2
