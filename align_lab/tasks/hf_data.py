"""Real-text tasks from a file or a hub dataset: preference pairs (task=hf_prefs) and prompt sets
(task=hf_prompts). No gold reward; token limits, chat template and tokenizer come from model=hf.

Every row is checked when the task is built, before any compute: a missing column, an empty text or a
chosen equal to its rejected is a one-line error naming the file and the line or row.
"""

from __future__ import annotations

import logging
import random
import re
import unicodedata
from dataclasses import dataclass

from align_lab.tasks.base import Pair
from align_lab.tasks.data_files import is_local, read_table, split_at_marker, text


@dataclass(frozen=True)
class Example:
    """One row: a prompt, and the texts that go with it (None where the task has none)."""

    prompt: str
    where: str  # "task.path=data.jsonl line 8", for error messages
    chosen: str | None = None
    rejected: str | None = None
    response: str | None = None  # a reference / demonstration response
    answer: str | None = None  # the reference answer a verifier checks (task=verifiable_data)


SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+(?=[.,;:!?)\]}])")


QUOTES = str.maketrans(
    {c: "'" for c in "\u2018\u2019\u201b\u2032`\u00b4"}
    | {c: '"' for c in "\u201c\u201d\u201e\u00ab\u00bb\u2033"}
)
KEPT_AT_EDGES = set("-([{)]}%")  # punctuation that is part of a question's math at its start or end


def same_prompt(prompt: str) -> str:
    """A prompt as the held-out check compares it: in Unicode's compatibility form (NFKC: a full-width
    letter is the letter), its curly quotes straight, invisible format characters dropped (a zero-width
    space), whitespace runs made one space, no space before punctuation, no punctuation wrapping it
    (quotes, `**`, a closing `.`, `?`, `!`, `...` or `。`; a sign or bracket stays: `-3 + 5`), case
    folded: `What is 2+2?` is the same question to the policy as `what is 2+2 ?`, `"What is 2+2"` or
    `**What is 2+2?**`."""
    text = unicodedata.normalize("NFKC", prompt).translate(QUOTES)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return unwrapped(SPACE_BEFORE_PUNCTUATION.sub("", " ".join(text.split()))).casefold()


def unwrapped(text: str) -> str:
    """`text` without the spaces and punctuation at its two ends (KEPT_AT_EDGES aside)."""

    def edge(c: str) -> bool:
        return c.isspace() or unicodedata.category(c).startswith("P") and c not in KEPT_AT_EDGES

    start, end = 0, len(text)
    while start < end and edge(text[start]):
        start += 1
    while end > start and edge(text[end - 1]):
        end -= 1
    inner = text[start + 1 : end - 1]
    if text[start:end][:1] + text[start:end][-1:] in PAIRS and balanced(inner):  # `(What is 2+2?)`
        return unwrapped(inner)
    return text[start:end]


PAIRS = ("()", "[]", "{}")


def balanced(text: str) -> bool:
    """Every bracket of `text` closed in order: `(1+2)*(3)` stripped of its ends is `1+2)*(3`, not one."""
    depth = 0
    for c in text:
        depth += (c in "([{") - (c in ")]}")
        if depth < 0:
            return False
    return depth == 0


def unseen(train: list[Example], evaluation: list[Example], path: str) -> list[Example]:
    """The training rows whose prompt is not held out (same_prompt: whitespace and case aside): a question
    repeated in your data (or in a hub dataset's two splits) would be trained on, then scored as held out;
    every task of your own file (verifiable_data, hf_prompts, hf_prefs and its presets: issue 73 hunt).
    Said in one warning line with the count and the first repeat; ValueError if no training row is left."""
    held_out = {same_prompt(e.prompt): e for e in evaluation}
    repeats = [e for e in train if same_prompt(e.prompt) in held_out]
    if not repeats:
        return train
    kept = [e for e in train if same_prompt(e.prompt) not in held_out]
    first, prefix = repeats[0], f"task.path={path} "
    was = held_out[same_prompt(first.prompt)].where.removeprefix(prefix)
    said = f"{first.where.removeprefix(prefix)} repeats held-out {was}"
    if not kept:
        raise ValueError(f"path={path}: every training row repeats a held-out prompt ({said})")
    logging.getLogger("align_lab").warning(
        f"align_lab: warning: task.path={path}: {len(repeats)} training rows repeat a held-out prompt "
        f"({said}); left out of training, which keeps {len(kept)} rows, so evaluation scores only "
        "questions the run never trained on"
    )
    return kept


def distinct(evaluation: list[Example], path: str) -> list[Example]:
    """The held-out rows less the repeats of a prompt (same_prompt) among them, said in one warning: four
    rows of one question were scored, and compared, as four held-out questions (thirty-first hunt, case
    32)."""
    first: dict[str, Example] = {}
    repeats = [e for e in evaluation if first.setdefault(same_prompt(e.prompt), e) is not e]
    if not repeats:
        return evaluation
    prefix = f"task.path={path} "
    was = first[same_prompt(repeats[0].prompt)].where.removeprefix(prefix)
    logging.getLogger("align_lab").warning(
        f"align_lab: warning: task.path={path}: {len(repeats)} held-out rows repeat another held-out "
        f"prompt ({repeats[0].where.removeprefix(prefix)} repeats {was}); left out, so evaluation scores "
        f"each of its {len(first)} questions once"
    )
    return list(first.values())


@dataclass
class HFData:
    """What both real-text tasks share: where the data is, its splits and sizes."""

    path: str | None = None
    split: str = "train"
    eval_split: str | None = None
    eval_rows: int = 64
    max_rows: int | None = None
    prompt_column: str | None = "prompt"
    sft: bool = False
    skip_invalid: bool = False

    verifiable = False
    has_gold_reward = False

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("path=None: must be a local jsonl/parquet/csv file or a datasets hub name")
        if self.eval_rows < 1:
            raise ValueError(f"eval_rows={self.eval_rows}: must be >= 1")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"max_rows={self.max_rows}: must be >= 1 or null")
        if is_local(self.path) and (self.split != "train" or self.eval_split is not None):
            raise ValueError(
                f"split={self.split}, eval_split={self.eval_split}: a local file is one split; "
                "keep split=train and eval_split=null (the last eval_rows rows are held out)"
            )
        self.skipped = 0
        train = self._examples(self.split, self.max_rows)
        if self.eval_split is None:  # hold out the last eval_rows rows
            if len(train) < 2:
                raise ValueError(f"path={self.path}: {len(train)} valid rows; need >= 2 (train and eval)")
            n_eval = min(self.eval_rows, len(train) // 2)
            if n_eval < self.eval_rows:  # said loudly: a tiny dataset trains on almost nothing
                logging.getLogger("align_lab").warning(
                    f"align_lab: warning: task.path={self.path} has {len(train)} valid rows: task.eval_rows="
                    f"{self.eval_rows} holds out {n_eval} and trains on {len(train) - n_eval}"
                )
            train, evaluation = train[:-n_eval], train[-n_eval:]
        else:
            evaluation = self._examples(self.eval_split, self.eval_rows)
        self._split = {"train": train, "eval": evaluation}
        self.rows_read()
        self._split = {"train": unseen(train, evaluation, self.path), "eval": distinct(evaluation, self.path)}

    def rows_read(self) -> None:
        """What a task checks across all its rows once they are read (verifiable_data: one answer a
        prompt), before the training rows that repeat a held-out prompt are left out."""

    def _examples(self, split: str, limit: int | None) -> list[Example]:
        table = read_table(self.path, split, "path")
        self._fingerprints = getattr(self, "_fingerprints", {}) | {split: table.fingerprint}
        needed = [c for c in self.columns() if c]
        missing = [c for c in needed if c not in table.columns]
        if missing:
            raise ValueError(
                f"path={self.path}: no column {missing[0]!r}; columns: {', '.join(table.columns)}"
            )
        out, dropped = [], []
        for row, where in zip(table.rows, table.where, strict=True):
            place = f"path={self.path} {where}"
            try:
                out.append(self.example(row, place))
            except ValueError as e:
                if not self.skip_invalid:
                    raise
                dropped.append(str(e))
            if limit is not None and len(out) == limit:
                break
        self.skipped += len(dropped)
        if dropped:  # said, and counted in summary.json (forty-first hunt, case 53: in silence)
            logging.getLogger("align_lab").warning(
                f"align_lab: warning: task.skip_invalid=true dropped {len(dropped)} row(s) of split {split}; "
                f"the first: task.{dropped[0]}"
            )
        if not out:
            raise ValueError(f"path={self.path}: no valid rows in split {split}")
        return out

    def columns(self) -> list[str | None]:
        raise NotImplementedError

    def example(self, row: dict, place: str) -> Example:
        raise NotImplementedError

    def fingerprint(self) -> dict:
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return {"task": type(self).__name__, **fields, "data": self._fingerprints}

    def examples(self, split: str) -> list[Example]:
        return self._split[split]

    def where(self, split: str, i: int) -> str:
        return self._split[split][i].where

    def prompts(self, split: str) -> list[str]:
        return [e.prompt for e in self._split[split]]

    def gold_reward(self, prompts, responses, finished) -> list[float]:
        raise ValueError(f"task.path={self.path}: a dataset task has no gold reward")

    def annotate(self, gold_a, gold_b, rng: random.Random) -> bool:
        raise ValueError(f"task.path={self.path}: a dataset task has no annotator")


@dataclass
class HFPrefs(HFData):
    """task=hf_prefs: (prompt, chosen, rejected) rows; SFT (when task.sft) on the chosen responses."""

    chosen_column: str = "chosen"
    rejected_column: str = "rejected"
    prompt_marker: str | None = None  # prompt_column null: split whole transcripts at this marker

    def __post_init__(self) -> None:
        if self.prompt_column is None and not self.prompt_marker:
            raise ValueError(
                "prompt_marker=None: needed when prompt_column is null (e.g. '\\n\\nAssistant:')"
            )
        super().__post_init__()

    def columns(self) -> list[str | None]:
        return [self.prompt_column, self.chosen_column, self.rejected_column]

    def example(self, row: dict, place: str) -> Example:
        chosen = text(row, self.chosen_column, place)
        rejected = text(row, self.rejected_column, place)
        if self.prompt_column is None:
            prompt, chosen, rejected = split_at_marker(chosen, rejected, self.prompt_marker, place)
            for name, value in (("chosen", chosen), ("rejected", rejected)):
                if not value.strip():
                    raise ValueError(f"{place}: column {name!r} has an empty response after the prompt")
        else:
            prompt = text(row, self.prompt_column, place)
        if chosen.strip() == rejected.strip():
            raise ValueError(f"{place}: column {self.chosen_column!r} equals {self.rejected_column!r}")
        return Example(prompt, f"task.{place}", chosen=chosen, rejected=rejected, response=chosen)

    def preference_pairs(self) -> list[Pair]:
        return [Pair(e.prompt, e.chosen, e.rejected) for e in self._split["train"]]

    def demonstrations(self) -> list[tuple[str, str]]:
        return [(e.prompt, e.chosen) for e in self._split["train"]]

    def references(self, split: str) -> list[str]:
        return [e.chosen for e in self._split[split]]


@dataclass
class HFPrompts(HFData):
    """task=hf_prompts: prompts, optionally with reference responses (SFT demonstrations, win-rate refs)."""

    response_column: str | None = None

    def __post_init__(self) -> None:
        if self.sft and not self.response_column:
            raise ValueError("sft=True: needs response_column (the demonstrations to fine-tune on)")
        if self.prompt_column is None:
            raise ValueError("prompt_column=None: must name the prompt column")
        super().__post_init__()

    def columns(self) -> list[str | None]:
        return [self.prompt_column, self.response_column]

    @property
    def demonstrations_missing(self) -> str | None:
        """The key that leaves the task without demonstrations (for algo.ptx_coef, run/fit.py), or None."""
        return None if self.response_column else "task.response_column=null"

    def example(self, row: dict, place: str) -> Example:
        prompt = text(row, self.prompt_column, place)
        response = text(row, self.response_column, place) if self.response_column else None
        return Example(prompt, f"task.{place}", response=response)

    def preference_pairs(self) -> None:
        return None  # no pairs: the world cannot annotate without a gold reward (check_combination)

    def demonstrations(self) -> list[tuple[str, str]]:
        if not self.response_column:
            raise ValueError("task.response_column=None: SFT needs demonstrations")
        return [(e.prompt, e.response) for e in self._split["train"]]

    def references(self, split: str) -> list[str] | None:
        return [e.response for e in self._split[split]] if self.response_column else None
