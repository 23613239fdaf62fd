"""Progress of long work: tqdm bars on a terminal, a log line at every tenth of the work elsewhere."""

from __future__ import annotations

import logging
import math
import sys

log = logging.getLogger("align_lab")


class LogProgress:
    """Progress as a log line at every tenth of the work: what a run shows when stderr is not a
    terminal (a log file, a scheduler's output), instead of thousands of progress-bar redraws."""

    def __init__(self, total: int | None = None, initial: int = 0, desc: str = "", **_) -> None:
        self.total, self.n, self.desc, self.postfix = total, initial, desc, ""
        self.every = max(1, (total or 0) // 10)
        self.next = initial - initial % self.every + self.every

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total and self.n >= self.next:
            self.next = self.n - self.n % self.every + self.every
            log.info(f"{self.desc}: {self.n}/{self.total} {self.postfix}".rstrip())

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        pass

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Silent(LogProgress):
    """Progress that shows nothing: the other ranks of a data-parallel run (rank 0 shows it). Not a
    disabled tqdm, whose class makes a multiprocessing lock that a worker's hard exit leaks."""

    def update(self, n: int = 1) -> None:
        self.n += n


def progress_factory(enabled: bool = True):
    """tqdm bars on a terminal, one per stage with live reward and KL; elsewhere a log line at every
    tenth of each stage (LogProgress); nothing when not `enabled`."""
    from tqdm.auto import tqdm
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight loading/saving bars of tiny models are noise
    if not enabled:
        return Silent
    if not sys.stderr.isatty():
        return LogProgress
    return lambda **kw: tqdm(dynamic_ncols=True, mininterval=0.5, **kw)


# a drop in gold reward "far below" SFT: at least half a pooled standard deviation of the two policies'
# per-sample gold rewards (Cohen's medium effect: a change a reader sees in the samples), and paired over
# the same prompts and draws with t <= -3 (one-sided p ~ 0.001 for the 64+ samples of an evaluation), so
# the evaluation's own noise almost never says it
FAR_BELOW_SD, FAR_BELOW_T = 0.5, -3.0
# or, for a score of 0 and up (a pass rate), half of SFT's lost: 0/1 samples spread wide, so pass@1 from
# 0.159 to 0.028 was 0.46 SD, not said (hunt of 2026-12-04, c52: cispo on toy_arith)
HALVED = 0.5


def below_sft_line(
    samples: list[dict], reversed_rewards: list[str] | tuple = (), teacher: str | None = None
) -> str | None:
    """One line when the last evaluation's gold reward fell far below the SFT policy's on the same
    prompts and draws (eval_samples.jsonl records: gold_reward, sft_gold_reward, kl), else None; none
    where the drop is more than a policy that close to SFT can lose (Pinsker: |E_pi r - E_sft r| <= the
    rewards' range x sqrt(KL / 2)): the draws' noise, not training (fifty-first hunt, case 41: KL -0.009,
    "training moved it the wrong way"). `reversed_rewards`: the keys of negative reward weights that may
    have trained it the wrong way (case 40: reward.components.rm.weight=-1, said as algo.lr's); `teacher`,
    what a distilled teacher ended at where it too fell below its SFT (52nd hunt, case 40)."""
    import statistics

    last = max((r["step"] for r in samples), default=None)
    rows = [r for r in samples if r["step"] == last]
    pairs = [(r.get("gold_reward"), r.get("sft_gold_reward")) for r in rows]
    pairs = [(g, s) for g, s in pairs if isinstance(g, int | float) and isinstance(s, int | float)]
    if len(pairs) < 8:  # no gold reward (a reward model's task), or too few samples to say
        return None
    diffs = [g - s for g, s in pairs]  # (n,) policy minus SFT, paired
    mean, n = statistics.fmean(diffs), len(diffs)
    pooled = (
        (statistics.variance([g for g, _ in pairs]) + statistics.variance([s for _, s in pairs])) / 2
    ) ** 0.5
    spread = statistics.stdev(diffs)
    t = mean / (spread / n**0.5) if spread > 0 else (-math.inf if mean < 0 else 0.0)
    gold, sft = statistics.fmean(g for g, _ in pairs), statistics.fmean(s for _, s in pairs)
    values = [v for pair in pairs for v in pair]
    halved = sft > 0 and min(values) >= 0 and gold <= sft * HALVED  # a rate (pass@1 0.159 to 0.028: 0.46 SD)
    if not (mean < 0 and (mean <= -FAR_BELOW_SD * pooled or halved) and t <= FAR_BELOW_T):
        return None
    kl = [r["kl"] for r in rows if isinstance(r.get("kl"), int | float)]
    if kl and -mean > (max(values) - min(values)) * math.sqrt(max(statistics.fmean(kl), 0.0) / 2):
        return None
    far = f"{-mean / pooled:.1f} SD" if pooled > 0 else "every sample"
    far = far if mean <= -FAR_BELOW_SD * pooled else f"{1 - gold / sft:.0%}"
    hold = "a lower algo.lr, a KL term or fewer train.steps hold it"
    if reversed_rewards:
        hold = f"{', '.join(reversed_rewards)} trains against that source's score; else {hold}"
    if teacher:
        hold = f"{teacher}: a student learns what its teacher does; else {hold}"
    return (
        f"warning: the policy ended far below SFT: gold reward {gold:.3f} against SFT's {sft:.3f} on the "
        f"same {n} held-out samples ({far} lower, paired t {max(t, -999):.1f})"
        + (f", KL to SFT {statistics.fmean(kl):.1f} nats" if kl else "")
        + f"; training moved it the wrong way ({hold})"
    )


def reversed_weights(reward) -> list[str]:
    """`reward.components.<name>.weight=<w>` of each negative weight of a combined reward at least a tenth of
    its largest (a source trained against, as brevity at -0.65 beside rm's 1: 52nd hunt, case 36; not the
    default's small penalty, -0.01)."""
    components = getattr(reward, "components", None)
    if not isinstance(components, dict):
        return []
    weights = {n: c.get("weight") for n, c in components.items() if isinstance(c, dict)}
    weights = {n: w for n, w in weights.items() if isinstance(w, int | float)}
    largest = max((abs(w) for w in weights.values()), default=0.0)
    return [f"reward.components.{n}.weight={w:g}" for n, w in weights.items() if w < 0 and -w >= largest / 10]


UNMOVED_KL = (
    1e-5  # nats: a policy trained by any update is further on some held-out sample (52nd, 34: 1.2e-6)
)


def unmoved_line(
    samples: list[dict],
    grad_norms: list | tuple = (),
    reward_spread: float = 0.0,
    cold: bool = True,
    clamped: float = 0.0,
) -> str | None:
    """One line when the last evaluation's policy is where SFT started (every held-out sample's KL to SFT
    below UNMOVED_KL, or every step's gradient 0: `grad_norms`, metrics.jsonl's train/grad_norm): no
    update moved it, so its figures are SFT's (issue 73 fifth hunt: constant or subnormal scores trained
    nothing, rc 0, and said nothing; seventeenth hunt: float noise put a constant reward's KL at 1.4e-6).
    None otherwise, or with no KL recorded. Every gradient 0 though the rewards spread (`reward_spread`, the
    largest train/reward_std): a sampling temperature near 0, each sampled token certain, its log-prob 0
    (thirty-ninth hunt, case 30: `rollout.temperature=1e-9` was said as the rewards' or algo.lr's), where
    the run sampled `cold`; its reward clip flattening them where it clamped most of a step's scores
    (`clamped`, the share: fortieth hunt, case 13, a length reward under reward_clip=10 said as a
    temperature near 0 at temperature 1)."""
    last = max((r["step"] for r in samples), default=None)
    kl = [r.get("kl") for r in samples if r["step"] == last]
    kl = [x for x in kl if isinstance(x, int | float)]
    norms = [g for g in grad_norms if isinstance(g, int | float)]
    if not last or not kl:
        return None
    if max(abs(x) for x in kl) < UNMOVED_KL:
        why = f"KL to SFT below {UNMOVED_KL:g} nats on all {len(kl)} held-out samples after {last} steps"
    elif norms and not any(norms):
        why = f"a gradient of 0 at every one of its {len(norms)} steps (train/grad_norm)"
    else:
        return None
    if norms and not any(norms) and reward_spread > 0 and clamped > 0:
        return (
            f"warning: the policy ended where SFT started ({why}) though the rewards differed "
            f"(train/reward_std up to {reward_spread:.3g}): algo.reward_clip clamped {clamped:.0%} of a "
            "step's scores to its bound, so their differences never reached it; scale the reward into the "
            "clip's range, or set algo.reward_clip=null"
        )
    if norms and not any(norms) and reward_spread > 0 and cold:
        return (
            f"warning: the policy ended where SFT started ({why}) though the rewards differed "
            f"(train/reward_std up to {reward_spread:.3g}): each sampled token was certain, its log-prob 0, "
            "as a rollout.temperature near 0 makes them (1.0 samples the policy as it is)"
        )
    return (
        f"warning: the policy ended where SFT started ({why}): no update moved it; the rewards gave no "
        "signal (every score equal within a group, or too small to train on) or algo.lr is too small"
    )
