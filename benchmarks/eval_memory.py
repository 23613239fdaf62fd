"""What an evaluation holds: peak memory against train.eval_samples, per kept row measured and priced.

    .venv/bin/python -m benchmarks run eval_memory                      # toy world, 500 and 4000 samples
    .venv/bin/python -m benchmarks run eval_memory --samples 500,2000 --whole

An evaluation keeps every row it draws (the policy's and the reference's samples, the row's record) until
it ends; the memory model prices them (`align_lab/train/memory/kept.py`: 1,024 + 32 P + 44 T bytes a row
for P prompt and T response tokens) and admission refuses an evaluation that would pass half the
machine's memory (thirty-first hunt, case 45). Each arm is one `python -m align_lab train.steps=1` process
(an SFT evaluation and a final one) at a number of samples a prompt; its peak RSS is the kernel's
ru_maxrss of that child. The measured bytes a kept row are the difference of two arms' peaks over the
difference of their rows (what does not grow with the rows cancels); the priced ones are kept.py's for
the task's token limits, and each arm's predicted peak (summary.json memory/predicted_peak_mb) is printed
beside its measured one. `--whole` adds an arm at the largest count whose learned reward model scores
every row of an evaluation in one forward, as it did before 9377c99 (`train/evaluate.py model_rows`
patched in that child alone), against the planned micro-batch of rows the code scores now.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from benchmarks.harness import ROOT, TINY, align_lab, arguments, report

NEEDS = ()
SMOKE = ("--tiny", "--samples", "1,3", "--whole")
RUN = ["train.steps=1", "train.eval_every=0", "train.keep_checkpoint=false"]
# the scorer over every row at once (before 9377c99): the module's function replaced in this child only
WHOLE = (
    "import runpy, sys; import align_lab.train.evaluate as e; e.model_rows; "
    "e.model_rows = lambda scorer, rows: None; sys.argv[0] = 'align_lab'; "
    "runpy.run_module('align_lab', run_name='__main__', alter_sys=True)"
)


def evaluated_rows(run_dir: Path) -> int:
    """The rows of the run's last evaluation: its prompts x samples (eval_samples.jsonl's records)."""
    records = [json.loads(line) for line in (run_dir / "eval_samples.jsonl").read_text().splitlines()]
    last = max(r.get("step", 0) for r in records)
    return sum(1 for r in records if r.get("step", 0) == last)


def priced_row(run_dir: Path) -> int:
    """kept.py's bytes a row for the run's task's token limits (the toy world's: no pretrained model)."""
    import yaml
    from hydra.utils import instantiate

    from align_lab.train.memory import kept_row_bytes

    task = instantiate(yaml.safe_load((run_dir / "config.resolved.yaml").read_text())["task"])
    return kept_row_bytes(task.max_prompt_tokens, task.max_response_tokens)


def measure(samples: int, whole: bool, tiny: bool, root: Path) -> dict:
    run_dir = Path(tempfile.mkdtemp(prefix=f"evalmem-{samples}-"))
    entry = ("-c", WHOLE) if whole else ("-m", "align_lab")
    sizes = [o for o in TINY if not o.startswith("train.eval_samples=")] if tiny else []
    run = align_lab([*RUN, *sizes, f"train.eval_samples={samples}"], run_dir, None, root, entry)
    return {
        "arm": f"{samples}{' whole' if whole else ''}",
        "samples a prompt": samples,
        "rows": evaluated_rows(run_dir),
        "peak RSS MiB": run.peak_rss_mib,
        "predicted peak MiB": run.summary.get("memory/predicted_peak_mb"),
        "priced B a row": priced_row(run_dir),
        "wall s": run.wall_s,
    }


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__, tiny=True)
    parser.add_argument("--samples", default="500,4000", help="train.eval_samples of each arm (two or more)")
    parser.add_argument(
        "--whole", action="store_true", help="an arm at the largest count scoring every row at once"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree to run (e.g. a git archive)")
    args = parser.parse_args(argv)
    counts = sorted(int(s) for s in args.samples.split(","))
    rows = [measure(n, False, args.tiny, args.root) for n in counts]
    if args.whole:
        rows.append(measure(counts[-1], True, args.tiny, args.root))
    low, high = rows[0], rows[len(counts) - 1]
    grown = (high["peak RSS MiB"] - low["peak RSS MiB"]) * 2**20 / max(1, high["rows"] - low["rows"])
    notes = {"measured B a kept row": round(grown), "priced B a kept row": high["priced B a row"]}
    said = f"measured {grown:,.0f} ({low['arm']} -> {high['arm']}), priced {high['priced B a row']:,}"
    print(f"bytes a kept row: {said}")
    report("eval_memory", args, rows, notes=notes)


if __name__ == "__main__":
    main()
