"""align_lab vs TRL, side by side: seconds per step and reward after N steps, GRPO and RLOO.

    bash benchmarks/setup_trl.sh                                  # once: benchmarks/.venv-trl
    benchmarks/.venv-trl/bin/python -m benchmarks run trl_vs_align_lab

Both sides get the same things, built here once: one tiny Qwen2 (2 layers, hidden 64, head_dim 32,
~85k parameters, saved to a temporary folder that both load), the embedded toy world's word-level
tokenizer, its train prompts and its gold reward (toy_prefs with a 16-token response limit), fp32 on
CPU with one torch thread. Each round trains a fresh copy for --steps steps with each implementation,
in the order TRL GRPO, align_lab GRPO, TRL RLOO, align_lab RLOO, with the round's seed, so the two
implementations alternate under the same machine load. align_lab runs its real loop
(align_lab.train.online.train_online with its HFGenerate engine); nothing of the loop is copied here.

Seconds per step is the wall time between consecutive step ends (TRL: on_step_end; align_lab: the
tracker's log call), averaged over the steps after --warmup and before the last one (align_lab's last
step also runs its final evaluation); the figure reported is the median over rounds of those means.
Reward after N steps: mean gold reward of the trained policy on the held-out prompts (4 samples each,
one sampling seed, the same code for both), averaged over rounds.

Matched settings (TRL 1.16 defaults unless marked *):
  both   lr 1e-3* (TRL default 1e-6 does not move a toy model in 40 steps), constant schedule*
         (TRL default linear decay), no warm-up, AdamW weight decay 0, grad-norm clip 1.0,
         8 completions per step = 2 prompts x 4, one optimiser step per rollout (one minibatch of 8,
         num_iterations 1), max 16 new tokens, temperature 1, top_k 0, top_p 1, fp32: bf16=False*,
         gradient_checkpointing=False* (TRL turns both on by default), use_cpu=True*.
  GRPO   TRL: beta 0, loss_type dapo, scale_rewards group (std ddof 1), eps 1e-4, epsilon 0.2.
         align_lab: kl_coef 0, loss_aggregation token_mean (= dapo on one process), scale_by_std,
         std_unbiased, eps 1e-4, clip 0.2.
  RLOO   TRL: beta 0.05 (k1 KL summed per sequence, in the reward), leave-one-out baseline, one
         clipped ratio per sequence (epsilon 0.2), mean over sequences, no advantage normalisation.
         align_lab: kl_coef 0.05, kl_estimator k1, token_level_kl false, ratio sequence, clip 0.2.
The ratio line printed last is `ratio align_lab/trl s/step: grpo <r> rloo <r>`.
"""

from __future__ import annotations

import copy
import os
import random
import statistics
import tempfile
import threading
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from align_lab.algorithms.grpo import GRPO  # noqa: E402
from align_lab.algorithms.rloo import RLOO  # noqa: E402
from align_lab.models.tiny import TinyLM  # noqa: E402
from align_lab.models.tokenizer import train_tokenizer  # noqa: E402
from align_lab.rollout.hf import HFGenerate  # noqa: E402
from align_lab.tasks.toy_prefs import ToyPrefs  # noqa: E402
from align_lab.train.common import TrainConfig  # noqa: E402
from align_lab.train.context import Context, Models  # noqa: E402
from align_lab.train.online import train_online  # noqa: E402
from benchmarks.harness import Clock, arguments, machine, machine_line, report  # noqa: E402
from benchmarks.options import at_least

NEEDS = ("trl",)
SMOKE = ("--steps", "2", "--rounds", "1", "--warmup", "0", "--algos", "grpo")
GROUP, BATCH, NEW_TOKENS, LR = 4, 8, 16, 1e-3


class Baton:
    """Two runs in two threads that take turns one step at a time, so that both see the same machine
    load; each keeps its own global RNG state across the hand-overs, as if it ran alone."""

    def __init__(self, names: list[str], seed: int) -> None:
        self.cond = threading.Condition()
        self.names, self.turn, self.done, self.seed = names, names[0], set(), seed
        self.rng: dict[str, tuple] = {}
        self.times: dict[str, list[float]] = {n: [] for n in names}
        self.since: dict[str, float] = {}

    def _acquire(self, name: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.turn == name)
        if name in self.rng:
            torch.set_rng_state(self.rng[name][0])
            random.setstate(self.rng[name][1])
        else:  # a run starts from the round's seed whatever ran before it
            torch.manual_seed(self.seed)
            random.seed(self.seed)
        self.since[name] = time.perf_counter()

    def _release(self, name: str) -> None:
        self.rng[name] = (torch.get_rng_state(), random.getstate())
        with self.cond:
            others = [n for n in self.names if n != name and n not in self.done]
            self.turn = others[0] if others else name
            self.cond.notify_all()

    def start(self, name: str) -> None:
        self._acquire(name)

    def step_end(self, name: str) -> None:
        self.times[name].append(time.perf_counter() - self.since[name])
        self._release(name)
        self._acquire(name)

    def finish(self, name: str) -> None:
        self.done.add(name)
        self._release(name)


def world(folder: Path):
    """The task, tokenizer and initial model folder both implementations start from."""
    task = ToyPrefs(max_response_tokens=NEW_TOKENS)
    tok = train_tokenizer(task.corpus(), folder / "tokenizer")
    torch.manual_seed(0)
    model = TinyLM(arch="qwen2").init_policy(tok)
    model.save_pretrained(folder / "model")
    tok.save_pretrained(folder / "model")
    return task, tok, sum(p.numel() for p in model.parameters())


def load(folder: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder / "model"), dtype=torch.float32)


def evaluate(model, tok, task, seed: int = 1234) -> float:
    """Mean gold reward on the held-out prompts, 4 samples each, one sampling seed for every policy."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        s = HFGenerate().sample(model, tok, task.prompts("eval"), 4, NEW_TOKENS, task.max_prompt_tokens)
    return sum(task.gold_reward(s.prompts, s.responses, s.finished)) / len(s.responses)


def align_lab_run(kind: str, folder: Path, task, tok, steps: int, seed: int, baton: Baton):
    """align_lab's real online loop, built as a user's run builds it; returns (train, results)."""
    from tqdm import tqdm

    algo = (
        GRPO(lr=LR, group_size=GROUP, kl_coef=0.0, loss_aggregation="token_mean")
        if kind == "grpo"
        else RLOO(lr=LR, group_size=GROUP, kl_coef=0.05, kl_estimator="k1", ratio="sequence")
    )
    policy = load(folder).train()
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    clock = Clock(on_log=lambda metrics, step: baton.step_end("align_lab"))  # hands the baton over
    ctx = Context.build(
        task=task,
        tokenizer=tok,
        models=Models(policy, reference),
        scorer=lambda p, r, f: torch.tensor(task.gold_reward(p, r, f), dtype=torch.float32),
        engine=HFGenerate(temperature=1.0, top_k=0, top_p=1.0),
        train=TrainConfig(
            steps=steps, rollout_size=BATCH, minibatch_size=BATCH, eval_every=0, checkpoint_every=0
        ),
        tracker=clock,
        checkpoint_dir=Path(tempfile.mkdtemp(dir=folder)),
        seed=seed,
        progress=lambda **kw: tqdm(disable=True, **kw),
    )

    def results():
        rows = clock.rows[:-1]  # the last row also timed the final evaluation
        phases = {k: statistics.mean(r[k] for r in rows) for k in rows[0] if k.startswith("time/")}
        return [r["train/reward"] for r in clock.rows], evaluate(policy, tok, task), phases

    return lambda: train_online(algo, ctx), results


def trl_config(
    kind: str,
    output_dir: str,
    steps: int,
    seed: int,
    batch: int,
    group: int,
    new_tokens: int,
    lr,
    use_cpu: bool = True,
):
    """TRL's GRPO or RLOO trainer class and its config with the matched settings (module docstring);
    use_cpu=False: on the GPU (real_model_vs_trl.py --device cuda)."""
    common = dict(
        output_dir=output_dir,
        max_steps=steps,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        num_generations=group,
        max_completion_length=new_tokens,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=use_cpu,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
    )
    if kind == "grpo":
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer

        return Trainer, Config(**common, beta=0.0, loss_type="dapo", scale_rewards="group", epsilon=0.2)
    from trl import RLOOConfig as Config
    from trl import RLOOTrainer as Trainer

    return Trainer, Config(**common, beta=0.05, epsilon=0.2, normalize_advantages=False)


def trl_run(kind: str, folder: Path, task, tok, steps: int, seed: int, baton: Baton):
    """TRL's GRPOTrainer / RLOOTrainer with the matched settings; returns (train, results)."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback

    eos = tok.eos_token_id

    def gold(prompts, completions, completion_ids, **_):
        return task.gold_reward(prompts, completions, [eos in ids for ids in completion_ids])

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            baton.step_end("trl")

    Trainer, args = trl_config(
        kind, str(Path(tempfile.mkdtemp(dir=folder))), steps, seed, BATCH, GROUP, NEW_TOKENS, LR
    )
    trainer = Trainer(
        model=str(folder / "model"),
        reward_funcs=gold,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": task.prompts("train")}),
        processing_class=tok,
        callbacks=[Clock()],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log line when tqdm is off

    def results():
        rewards = [r["reward"] for r in trainer.state.log_history if "reward" in r]
        return rewards, evaluate(trainer.model.eval(), tok, task), {}

    return trainer.train, results


def side_by_side(kind: str, folder: Path, task, tok, steps: int, seed: int, first: str):
    """One round of one algorithm: both implementations, alternating step by step from `first`."""
    builders = {"trl": trl_run, "align_lab": align_lab_run}
    names = [first, *[n for n in builders if n != first]]
    baton = Baton(names, seed)
    runs = {n: builders[n](kind, folder, task, tok, steps, seed, baton) for n in names}
    errors = []

    def worker(name: str) -> None:
        baton.start(name)
        try:
            runs[name][0]()
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)
        finally:
            baton.finish(name)

    threads = [threading.Thread(target=worker, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return {n: (baton.times[n], *runs[n][1]()) for n in names}


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__, rounds=3)
    parser.add_argument("--steps", type=at_least(1), default=40, help="training steps per run (N)")
    parser.add_argument(
        "--warmup", type=at_least(0), default=3, help="first steps of a run left out of s/step"
    )
    parser.add_argument("--algos", default="grpo,rloo")
    a = parser.parse_args(argv)
    print(machine_line(machine()), flush=True)
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(1)
    import transformers
    import trl

    algos, impls = a.algos.split(","), ["trl", "align_lab"]
    kept = {(k, i): [] for k in algos for i in impls}  # per-step seconds after warm-up, before the last step
    finals = {(k, i): [] for k in algos for i in impls}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        task, tok, n_params = world(folder)
        with torch.random.fork_rng():
            initial = evaluate(load(folder).eval(), tok, task)
        print(
            f"# {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} thread), "
            f"transformers {transformers.__version__}, trl {trl.__version__}; Qwen2 {n_params} parameters, "
            f"{BATCH} completions/step ({BATCH // GROUP} prompts x {GROUP}), {NEW_TOKENS} new tokens, fp32; "
            f"{a.steps} steps x {a.rounds} rounds; eval gold of the initial model {initial:+.3f}",
            flush=True,
        )
        for r in range(a.rounds):
            for kind in algos:
                out = side_by_side(kind, folder, task, tok, a.steps, r, impls[r % 2])
                for impl in impls:
                    times, rewards, final, phases = out[impl]
                    kept[kind, impl] += times[a.warmup : -1]
                    finals[kind, impl].append(final)
                    phase = " ".join(
                        f"{k[5:-2]} {v * 1e3:.1f}ms" for k, v in phases.items() if not k.endswith("per_s")
                    )
                    print(
                        f"round {r} {kind:4s} {impl:9s} {statistics.mean(times[a.warmup : -1]):.4f} s/step  "
                        f"train reward first/last {rewards[0]:+.3f}/{rewards[-1]:+.3f}  "
                        f"eval gold {final:+.3f}  {phase}",
                        flush=True,
                    )
    rows, ratio = [], {}
    for kind in algos:
        means = {}
        for impl in impls:
            times, fin = kept[kind, impl], finals[kind, impl]
            means[impl] = statistics.mean(times)
            spread = statistics.stdev(fin) / len(fin) ** 0.5 if len(fin) > 1 else 0.0
            rows.append(
                {
                    "algo": kind,
                    "impl": impl,
                    "s/step (mean)": means[impl],
                    "s/step (median)": statistics.median(times),
                    "eval gold after N steps": f"{statistics.mean(fin):+.3f} +- {spread:.3f}",
                }
            )
        ratio[kind] = means["align_lab"] / means["trl"]
    report(
        "trl_vs_align_lab",
        a,
        rows,
        ratio={"align_lab/trl s/step": ratio},
        notes={"initial eval gold": initial},
    )


if __name__ == "__main__":
    main()
