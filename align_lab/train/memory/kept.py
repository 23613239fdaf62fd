"""What an evaluation keeps of each of its rows until it ends (train/evaluate.py): the policy's and the
reference's samples (token tensors and decoded texts) and the row's record (eval_samples.jsonl's), priced
for the run's predicted peak (planner.py) and checked against this machine's memory before any compute
(thirty-first hunt, case 45: `train.eval_samples=1000000` was admitted with a predicted peak of 552 MiB
and grew past 11 GB in its first evaluation)."""

from __future__ import annotations

GiB = 2**30
# a sampled row's tensors, per token: prompt ids and attention (int64) over the prompt, response ids
# (int64), mask and log-probs (fp32) over the response; an evaluation keeps two (policy, reference)
SAMPLED_PROMPT_BYTES = 2 * (8 + 8)
SAMPLED_RESPONSE_BYTES = 2 * (8 + 4 + 4)
TEXT_BYTES = 2 * 6  # the two decoded responses, ~6 characters a token
# a row's Python objects at the evaluation's peak: its record (a dict of ~17 fields), their numbers, the
# columns' slots, the strings' headers, and what the trackers make of it as they write (W&B's table holds
# a row of every record). Toy world (task=toy_prefs: prompts of 4 tokens, 12 response tokens), the
# default tracker: 2,721 bytes a row at the peak over 9,000 -> 72,000 rows, 2,870 over 9,000 -> 36,000;
# 2,960 priced (`python -m benchmarks run eval_memory`, 2026-12-01, AMD EPYC AVX2: docs/memory.md)
ROW_OBJECTS = 2304
KEPT_SHARE = 0.5  # of the machine's memory at most for them: the rest holds the models and their forwards


def kept_row_bytes(prompt_tokens: int, response_tokens: int) -> int:
    """Bytes an evaluation keeps for one row of `prompt_tokens` + `response_tokens` until it ends."""
    response = (SAMPLED_RESPONSE_BYTES + TEXT_BYTES) * response_tokens
    return ROW_OBJECTS + SAMPLED_PROMPT_BYTES * prompt_tokens + response


def kept_line(n_prompts: int, samples: int, row: int, memory: int, where: str) -> str | None:
    """The one line that refuses `samples` a prompt over `n_prompts` held-out prompts, each row keeping
    `row` bytes, where they hold more than KEPT_SHARE of `memory` (`where` names it); None where they fit."""
    kept, allowed = n_prompts * samples * row, int(KEPT_SHARE * memory)
    if kept <= allowed:
        return None
    fit = max(0, allowed // (n_prompts * row))
    most = f"at most {fit} samples a prompt fit" if fit else f"not one sample a prompt fits in {where}"
    return (
        f"train.eval_samples={samples}: an evaluation keeps each of its {n_prompts * samples:,} samples "
        f"({n_prompts} held-out prompts x {samples}) and the reference's until it ends, "
        f"~{gib(kept)} GiB, more than half of {where} ({gib(memory)} GiB); {most}"
    )


def gib(size: float) -> str:
    """Bytes in GiB as a line says them: one decimal ("5.0"), two significant digits below 0.1 GiB
    ("0.00011", never "0.0" for a size that is not 0)."""
    return f"{size / GiB:.1f}" if size >= 0.1 * GiB or size == 0 else f"{size / GiB:.2g}"
