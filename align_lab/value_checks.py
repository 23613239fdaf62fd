"""The one-line errors every layer raises (bad configuration, diverged training, a saved model gone) and
the value checks; imports nothing of align_lab, so any module can use it."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def say(line: str) -> None:
    """print() to stdout, whose reader may have stopped reading (`| head -1`, `less` quit): from then on
    nothing more is written there, and the command goes on to its end and its own exit code (it read
    "cannot write <the sweep folder> (Broken pipe); make it writable", or a BrokenPipeError traceback:
    twenty-fourth hunt, cases 46-47)."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # its exit's flush too
    except OSError as e:  # stdout on a full disk (`> /dev/full`): said once, never the sweep folder's fault
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (twenty-fifth hunt, cases 4-5)
        print(f"align_lab: cannot write to stdout ({e.strerror}); what it would say is lost", file=sys.stderr)
        LOST.append(e.strerror)


LOST: list[str] = []  # stdout's write errors (not a reader that stopped reading): the command then fails


def said_all(code: int) -> int:
    """A command's exit code: 1 where it ended well but what it had to say was lost (`study status >
    s.txt && ...` on a full disk went on with an empty file, rc 0: twenty-sixth hunt, case 3)."""
    return 1 if LOST and code == 0 else code


class ConfigError(ValueError):
    """A bad configuration, reported as one line before any compute starts."""


class Diverged(RuntimeError):
    """Training produced a non-finite number (a gradient, a loss, the policy's logits): nothing is
    stepped into or cached with it, and the run stops in one line naming the key to lower."""


class TrainsNothing(RuntimeError):
    """Training runs but cannot move the policy (a rollout correction rejected every token for
    algo.correction.max_rejected_steps steps in a row; KTO's samples all on one side of
    algo.desirable_threshold; DAPO's dynamic sampling that never fills a batch): the run stops in one line
    naming the keys."""


class UserCodeError(RuntimeError):
    """A user's own code (reward.path, task.verifier, an environment) raised, or returned something that
    is not a finite number: one line naming the key, its value and what went wrong, never the lr."""

    fixed_in_checked_inputs = True  # its fix edits a file a resume checks: the resume command allows it
    fixed_in_config = False  # its fix changes a config key, which a resume keeps: a new run, not a resume


def timed_out(e) -> UserCodeError:
    """The run's one line for a call of the user's code stopped at its bound (user_timeouts.py
    CallTimedOut): where it was stopped, and that a resume may raise the bound; its command allows a fixed
    module, as a raise's does (the plain one refused the fix it asked for: thirty-second hunt, case 76)."""
    return UserCodeError(f"{e}, stopped at {e.stopped_at()} (raise {e.key} if it needs longer)")


def text_of(error: BaseException) -> str:
    """str(error), or what says it failed: a class of the user's whose __str__ raises (sixteenth hunt: a
    judge's error reading a response it never got was a 23-frame traceback of align_lab's one line)."""
    try:
        return str(error)
    except Exception as e:  # noqa: BLE001 - whatever the user's __str__ raises
        return f"<its text could not be read: {type(e).__name__}>"


def one_line(error: BaseException) -> str:
    """`Type: message` of an exception on one line, its message cut at ONE_LINE_CHARS (seventeenth hunt: a
    reward's 5-million-character message made a 5 MB "line", the resume command at its end)."""
    text = " ".join(text_of(error).split())
    if len(text) > ONE_LINE_CHARS:
        text = f"{text[:ONE_LINE_CHARS]}... (cut: {len(text):,} characters in all)"
    name = getattr(error, "type_name", None) or type(error).__name__  # train/launch.py Untravelled's
    return f"{name}: {text}" if text else name


ONE_LINE_CHARS = 2000  # of an exception's message in one line: a traceback's worth, a screen's at most


def user_score(value, where: str) -> float:
    """A score user code returned, as a finite float (a bool, an int, a numpy or torch scalar), or
    UserCodeError naming `where` (`task.verifier=mod:fn`): a NaN would reach the gradient and read as a
    divergence of the policy."""
    try:
        if isinstance(value, str | bytes) or value is None:
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise UserCodeError(f"{where}: returned {value!r}, not a number") from None
    except OverflowError:  # an int past a float's range
        number = math.inf
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise UserCodeError(f"{where}: returned {beyond(value, number)}; must be a finite number")
    return number


FLOAT32_MAX = 3.4028234663852886e38  # training holds scores as float32: past this, a score is infinity


def callable_as(fn, where: str, call: str, count: int) -> None:
    """A ValueError naming `where` if `fn` cannot be called with `count` positional arguments, as the run
    calls it (`call`): `f(response, answer)` as a verifier failed at its first call, after the stages
    were built, its line align_lab's call site (thirty-ninth hunt, case 58). A builtin's is not read."""
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*range(count))
    except TypeError as e:
        name = getattr(fn, "__name__", "it")
        raise ValueError(
            f"{where}: {name}{signature} cannot be called as the run calls it, {call} ({e})"
        ) from None


def beyond(value, number: float) -> str:
    """What a score that training cannot hold is: `nan`, `inf`, or a finite number past float32's range,
    said so (it would train as infinity and read as a divergence of the policy)."""
    if math.isnan(number) or (math.isinf(number) and not isinstance(value, int)):
        return str(number)
    shown = f"an integer of {value.bit_length()} bits" if isinstance(value, int) else f"{number:g}"
    return f"{shown}, past float32's range (|x| <= 3.4e38), where training holds it as infinity"


class ArtifactMissing(RuntimeError):
    """A saved model or tokenizer a run loads is gone (a stage cache entry deleted while the run used it):
    one line naming it, where transformers would take the path for a Hub repo id."""


def saved_folder(path) -> str:
    """str(path) for from_pretrained; a Path (a folder the run saved or cached) that is gone is one line."""
    if isinstance(path, Path) and not path.is_dir():
        raise ArtifactMissing(
            f"{path}: the saved model is gone (a stage cache entry deleted while the run used it); rerun the "
            "same command: the stage is built again"
        )
    return str(path)


def written(value) -> str:
    """A config value as the command line writes it: `null`, `true`, `false`, not Python's None, True,
    False (a refusal that echoed `algo.lr=None` for `algo.lr=null` named a value the user never typed)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)


def integer_wanted(path: str, value, wanted: str) -> str:
    """`wanted` ("must be an integer"), told how to write a whole number the command line read as a float
    (`train.steps=1e3` is 1000.0: "... written as one (train.steps=1000)"), as `seed=1e0` is told."""
    if wanted == "must be an integer" and isinstance(value, float) and value.is_integer():
        return f"{wanted} written as one ({path}={int(value)})"
    return wanted


def check(ok: bool, name: str, value, allowed: str) -> None:
    """Raises the one-line error every config check uses: `name=value: must be allowed`.

    A ValueError, not a ConfigError: config.build() prefixes the component's key (`algo.clip=...`)."""
    if not ok:
        raise ValueError(f"{name}={written(value)}: must be {allowed}")


COEF_MAX = 1e18  # a KL coefficient or a preference loss's beta past it overflows float32 in the loss


def check_coef(name: str, value: float) -> None:
    """A KL coefficient or a preference loss's beta at most COEF_MAX: `algo.kl_coef=1e300` was admitted, its
    stages built, then said as "diverged ... lower algo.lr" (thirty-second hunt, case 42)."""
    check(value <= COEF_MAX, name, value, f"<= {COEF_MAX:g} (past it the loss overflows float32)")


LR_ALLOWED = "in (0, 1): AdamW moves each weight by about lr per step (language models train at 1e-7 to 1e-3)"


def check_lr(name: str, lr: float) -> None:
    """An AdamW learning rate (every optimiser here is AdamW): in (0, 1). AdamW's step is about lr per
    weight whatever the gradient's scale, so lr >= 1 can only wreck a model; issue 25's algo.lr=1e6
    ran to a finite, collapsed policy (KL ~9 nats) that no check during training could see."""
    check(0 < lr < 1, name, lr, LR_ALLOWED)


# the short names the field's configs use (OpenRLHF --bf16, verl dtype: bf16, DeepSpeed "bf16")
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def canonical_dtype(name: str) -> str:
    """torch's name of a dtype given by its torch name or its short one (bf16 -> bfloat16)."""
    return DTYPE_ALIASES.get(name, name)


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """A failed write's OSError named by the file it was writing: a flush's names none, and a full disk
    said "no space left on the device writing a file" (twentieth hunt, case 30)."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise


def whole(path: Path, write) -> None:
    """`write(tmp)` then tmp renamed to `path`: on a full disk or a kill -9 no half-written report or
    figure stays where a user opens it as the result (twenty-first hunt, case 6: report.html cut
    mid-image; twenty-fourth, case 48: a 0-byte figure); the error names `path`."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with naming(path):
            write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
