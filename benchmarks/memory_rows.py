"""Where each MB of an align_lab SmolLM2 step goes: resident and live memory by phase, against its rows.

    .venv/bin/python -m benchmarks run memory_rows --algos grpo,rloo --tokens 16,32,64

Runs `benchmarks/real_model_vs_trl.py`'s align_lab worker (the same model, prompts, reward, batch and
default keys; its own process, started as that benchmark starts it: tcmalloc where installed) with a
thread that reads, every 2 ms, the process's resident memory (/proc/self/status: VmRSS, its anonymous
and file-backed parts) and the allocator's live bytes (tcmalloc's `generic.current_allocated_bytes`, or
glibc's mallinfo2 in-use bytes), each kept as the largest seen in the phase it fell in: sampling
(`HFGenerate.sample`), step 3's forward (`Learner.forward`), the backward (`TorchUpdater.backward`) and
AdamW's step (`TorchUpdater.step`), per step. Beside them the rows of the memory model, counted from
the tensors themselves: parameters, gradients (at the backward's end), AdamW's state (after its step),
one fp32 copy of the logits at the full vocabulary (rows x (prompt + response) x V x 4, and at the
T + 1 positions the LM head runs at), and Python's own objects (tracemalloc's peak). `ru_maxrss` is
what real_model_vs_trl reports as the peak.
"""

from __future__ import annotations

import ctypes
import json
import resource
import subprocess
import sys
import threading
import time
import tracemalloc

from benchmarks.harness import ROOT, arguments, machine, machine_line, report
from benchmarks.options import at_least

NEEDS = ("smollm2",)
SMOKE = ("--steps", "2", "--algos", "grpo", "--tokens", "4", "--batch", "4")
MIB = 2**20
PHASES = ("sampling", "forward", "backward", "adamw")


def status() -> dict[str, float]:
    """VmRSS, RssAnon, RssFile of this process, MiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) / 1024
    return out


def live_reader():
    """A function giving the C allocator's live bytes in MiB: tcmalloc's where it is loaded, else glibc's
    mallinfo2 (in-use heap plus mmapped blocks)."""
    process = ctypes.CDLL(None)
    try:
        get = process.MallocExtension_GetNumericProperty
        value = ctypes.c_size_t()

        def tcmalloc() -> float:
            get(b"generic.current_allocated_bytes", ctypes.byref(value))
            return value.value / MIB

        return "tcmalloc", tcmalloc
    except AttributeError:

        class Mallinfo2(ctypes.Structure):
            _fields_ = [
                (n, ctypes.c_size_t)
                for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks")
                + ("uordblks", "fordblks", "keepcost")
            ]

        process.mallinfo2.restype = Mallinfo2

        def glibc() -> float:
            info = process.mallinfo2()
            return (info.uordblks + info.hblkhd) / MIB

        return "glibc", glibc


class Probe:
    """The largest resident and live memory seen in each (step, phase), read by a thread every 2 ms."""

    def __init__(self) -> None:
        self.step, self.phase = 1, "other"
        self.kind, self.live = live_reader()
        self.seen: dict[tuple[int, str], dict[str, float]] = {}
        self.rows: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def read(self) -> None:
        now = status() | {"live": self.live()}
        kept = self.seen.setdefault((self.step, self.phase), {})
        for k, v in now.items():
            kept[k] = max(kept.get(k, 0.0), v)

    def run(self) -> None:
        while not self.stop.is_set():
            self.read()
            time.sleep(0.002)

    def within(self, phase: str, fn):
        def wrapped(*args, **kwargs):
            self.read()
            self.phase = phase
            try:
                return fn(*args, **kwargs)
            finally:
                self.read()
                self.phase = "other"

        return wrapped


def tensor_mib(tensors) -> float:
    seen, total = set(), 0
    for t in tensors:
        if t is not None and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total += t.untyped_storage().nbytes()
    return total / MIB


def worker(kind: str, path: str, steps: int, tokens: int, batch: int) -> None:
    import align_lab  # noqa: F401, I001  (as `python -m align_lab`: its OpenMP policy before torch)
    import torch

    from align_lab.rollout.hf import HFGenerate
    from align_lab.run.hardware import Hardware
    from align_lab.train import backend
    from align_lab.train.learner import Learner
    from benchmarks import real_model_vs_trl as bench

    bench.NEW_TOKENS, bench.BATCH = tokens, batch
    Hardware(device="cpu").use(0)
    tracemalloc.start()
    probe = Probe()
    probe.thread.start()
    rows = probe.rows

    sample = HFGenerate.sample

    def sampled(self, model, *args, **kwargs):
        out = probe.within("sampling", sample)(self, model, *args, **kwargs)
        if "parameters" not in rows:
            rows["parameters"] = tensor_mib(model.parameters())
        if len(out.response_ids) == batch:  # the rollout, not the last step's evaluation
            width = out.prompt_ids.shape[1] + out.response_ids.shape[1]  # positions the forward reads
            head = out.response_ids.shape[1] + 1  # positions the LM head runs at (logits_to_keep)
            rows["logits at every position (fp32)"] = batch * width * model.config.vocab_size * 4 / MIB
            rows["logits at the response's (fp32)"] = batch * head * model.config.vocab_size * 4 / MIB
        return out

    forward = Learner.forward

    def forwarded(self, *args, **kwargs):
        return probe.within("forward", forward)(self, *args, **kwargs)

    back = backend.TorchUpdater.backward

    def backward(self, loss):
        probe.within("backward", back)(self, loss)
        rows["gradients"] = tensor_mib(p.grad for p in self.model.parameters())

    step = backend.TorchUpdater.step

    def stepped(self, apply: bool = True):
        out = probe.within("adamw", step)(self, apply)
        state = [t for s in self.optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
        rows["AdamW state"] = tensor_mib(state)
        probe.step += 1
        return out

    HFGenerate.sample, Learner.forward = sampled, forwarded
    backend.TorchUpdater.backward, backend.TorchUpdater.step = backward, stepped
    bench.run_align_lab(kind, path, steps, 0)
    probe.stop.set()
    probe.thread.join()
    rows["python objects (tracemalloc peak)"] = tracemalloc.get_traced_memory()[1] / MIB
    seen = [{"step": s, "phase": p, **v} for (s, p), v in probe.seen.items() if p != "other"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "phases": seen, "ru_maxrss": peak, "malloc": probe.kind}), flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:
        i = argv.index("--worker")
        kind, path, steps, tokens, batch = argv[i + 1 : i + 6]
        return worker(kind, path, int(steps), int(tokens), int(batch))
    from benchmarks.real_model_vs_trl import checkpoint, lengths, worker_env

    parser = arguments(__doc__, rounds=1)
    parser.add_argument(
        "--steps", type=at_least(1), default=3, help="training steps per run (the peak: step 2's)"
    )
    parser.add_argument("--algos", default="grpo,rloo")
    parser.add_argument("--tokens", type=lengths, default=[32], help="new tokens; a list runs each")
    parser.add_argument("--batch", type=at_least(1), default=8, help="completions per step (4 per prompt)")
    parser.add_argument("--cache", default=None, help="stage cache for the converted checkpoint")
    a = parser.parse_args(argv)
    print(machine_line(machine()), flush=True)
    from pathlib import Path

    from align_lab.cache import default_cache_dir

    path = checkpoint(Path(a.cache) if a.cache else default_cache_dir())
    table = []
    for n in a.tokens:
        for kind in a.algos.split(","):
            args = [sys.executable, "-m", "benchmarks.memory_rows", "--worker", kind, path, str(a.steps)]
            done = subprocess.run(
                [*args, str(n), str(a.batch)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=worker_env("align_lab"),
            )
            if done.returncode != 0:
                raise SystemExit(f"{kind} {n} failed:\n{done.stderr[-3000:]}")
            out = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"== {kind}, {n} new tokens: ru_maxrss {out['ru_maxrss']:.0f} MiB, malloc {out['malloc']}")
            for name, mib in out["rows"].items():
                print(f"   {name:36s} {mib:8.1f} MiB")
            print("   step phase     VmRSS  RssAnon  RssFile  live (MiB, the largest in the phase)")
            for r in out["phases"]:
                print(
                    f"   {r['step']:4d} {r['phase']:8s} {r['VmRSS']:7.0f} {r['RssAnon']:8.0f} "
                    f"{r['RssFile']:8.0f} {r['live']:6.0f}"
                )
            peak = max(out["phases"], key=lambda r: r["VmRSS"])
            table.append(
                {"algo": kind, "tokens": n, "ru_maxrss MiB": round(out["ru_maxrss"])}
                | {k: round(v) for k, v in out["rows"].items()}
                | {"peak phase": f"step {peak['step']} {peak['phase']}", "live there": round(peak["live"])}
            )
    report("memory_rows", a, table)


if __name__ == "__main__":
    main()
