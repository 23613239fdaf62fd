"""The command line's overrides as Hydra's override grammar reads them: a value written so that it reads back
exactly (`written`: in Hydra's quotes where it must be), the line for one it cannot read as typed
(`unreadable`), a number with a leading zero (`leading_zero`), and a key given twice (`given_twice`)."""

from __future__ import annotations

import os
import re
import shlex


def _value(override: str):
    """What Hydra's parser reads `override` as (its value), or the parser's exception."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(override).value()


def reads_back(key: str, form: str, value: str) -> bool:
    try:
        return _value(f"{key}={form}") == value
    except Exception:  # Hydra's grammar errors (HydraException, the lexer's)
        return False


def written(key: str, value: str) -> str:
    """`key=value` so that Hydra reads back `value` exactly: plain where it does, else in Hydra's single
    quotes (a quote or the backslashes before one escaped): a non-ASCII character, `=`, `'`, `#`, a bracket
    or a comma (a sweep) are read only there (fortieth hunt, case 30: the resume printed for a run in
    `/tmp/ü dir` failed in Hydra's lexer); as it is where neither reads back."""
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    for form in (value, f"'{escaped}'"):
        if reads_back(key, form, value):
            return f"{key}={form}"
    return f"{key}={value}"


def unreadable(arg: str) -> str | None:
    """The line for an override Hydra's grammar cannot read as typed but can quoted (`hydra.run.dir=/tmp/
    a=b`, `task.path=qü.jsonl`: Hydra's `mismatched input '='` or `LexerNoViableAltException`, naming
    neither the key nor the fix: fortieth hunt, cases 23 and 31); None for anything else."""
    key, sep, value = arg.partition("=")
    if not sep or not key or key.startswith("-"):
        return None
    if value.startswith("~"):  # Hydra's lexer: `LexerNoViableAltException`, no key named
        return (
            f"{arg}: an override's value cannot start with ~ (the shell expands it only unquoted); "
            f"write the path out: {key}={os.path.expanduser(value)}"
        )
    if key.lstrip("+") in FOLDERS and not value.strip():  # "$OUT" unset: the run went in the working folder
        return f"{arg}: an empty folder (a shell variable not set?); name the folder (. for this one)"
    if line := escaped_close(key, value):
        return f"{arg}: {line}"
    try:
        read = _value(arg)
    except Exception:
        read = None  # Hydra cannot read it as typed
    else:  # it reads: as Hydra means it, but for a comma in a folder, a sweep's list to Hydra, which
        if not (key.lstrip("+") in FOLDERS and is_sweep(read)):  # sweeps no folder ("Ambiguous value":
            return None  # forty-first hunt, case 44; a comma list of task.path files is a sweep's)
    quoted = written(key, value)
    if quoted == arg:  # quoting does not help: Hydra's own error
        return None
    at = next((i for i in range(1, len(value) + 1) if not reads_back(key, value[:i], value[:i])), 1)
    return (
        f"{arg}: Hydra reads {value[at - 1]!r} in a value only inside its quotes; quote the value for Hydra "
        f"within the shell's: {for_the_shell(quoted)}"
    )


def for_the_shell(override: str) -> str:
    """`override` in the shell's quotes: double ones where nothing in it is special inside them."""
    return f'"{override}"' if not set('$`"\\!') & set(override) else shlex.quote(override)


def escaped_close(key: str, value: str) -> str | None:
    """The line for a value in Hydra's quotes whose closing quote an odd run of backslashes escapes
    (`task.path='C:\\data\\'`: Hydra's lexer error, and the fix first said kept the quotes as part of the
    name: forty-first hunt, case 35); None otherwise."""
    closing = re.search(r"(\\+)(['\"])$", value)
    if len(value) < 3 or not closing or closing[2] != value[0] or len(closing[1]) % 2 == 0:
        return None
    meant = written(key, value[1:-1])
    return (
        "the backslash before its closing quote escapes that quote (in Hydra's quotes a backslash that "
        f"ends the value is written twice); write {for_the_shell(meant)}"
    )


FOLDERS = ("hydra.run.dir", "hydra.sweep.dir")


def is_sweep(read) -> bool:
    from hydra.core.override_parser.types import ChoiceSweep

    return isinstance(read, ChoiceSweep)


def given_twice(args: list[str], groups: tuple[str, ...]) -> str | None:
    """The line for a config group's choice given twice with two values (`algo=ppo algo=rloo`): Hydra takes
    the last without a word, and the run's algorithm (compare's group) followed the order of the arguments
    (fortieth hunt, case 24), or a key swept twice (`-m seed=0,1 seed=1,2` dropped seed 0: forty-first, 39);
    None otherwise. A plain key set again (`train.steps=3 ... train.steps=5`, or `... train.steps=2,3`)
    is a script's override of its base command, as argparse's last value wins."""
    seen: dict[str, list[str]] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key and not key.startswith("-"):
            seen.setdefault(key.lstrip("+~"), []).append(value)
    said = {k for k, v in seen.items() if k in groups or sum(map(sweeps, v)) > 1}
    twice = [f"{k}={', '.join(v)}" for k, v in seen.items() if len(set(v)) > 1 and k in said]
    if not twice:
        return None
    return f"align_lab: warning: given more than once: {'; '.join(twice)}: Hydra takes the last of each"


def sweeps(value: str) -> bool:
    """A value written as a sweep's: a list, a range, a choice or a glob (`-m 'seed=glob(*)' seed=1,2`
    took the last without a line: forty-second hunt, case 32)."""
    return "," in value or any(f in value for f in ("range(", "choice(", "glob("))


def repeated(arg: str) -> str | None:
    """The line for a sweep's list that names one value twice (`seed=0,1,1`, `seed=1,01`, `seed=1,1.0`,
    `seed=1,'1'`: read as one value): its two runs are one config trained twice, the same numbers, which
    compare then read as two seeds (fortieth hunt, case 41; forty-first, 20); or that puts a range in a
    list (`seed=range(0,3),1`: Hydra's "tags: Unexpected type annotation: Set[str]", case 22)."""
    from hydra.core.override_parser.types import QuotedString, RangeSweep

    key, sep, _ = arg.partition("=")
    try:
        sweep = _value(arg) if sep and not key.startswith("-") else None
    except Exception:  # unreadable's, or Hydra's own
        return None
    values = sweep.list if is_sweep(sweep) else []
    if any(isinstance(v, RangeSweep) for v in values):
        return f"{arg}: a range cannot stand in a list of values; write every value out ({key}=0,1,2,...)"
    said = [_read(v.text if isinstance(v, QuotedString) else v) for v in values]
    twice = sorted({v for v in said if said.count(v) > 1})
    if not twice:
        return None
    once = ",".join(dict.fromkeys(said))
    return (
        f"{arg}: {', '.join(twice)} given twice, whose runs would be one config trained twice (the same "
        f"numbers, read as two runs); give each once: {key}={once}"
    )


LEADING_ZERO = re.compile(r"[-+]?0\d+")


def leading_zero(arg: str) -> str | None:
    """The line for a number written with a leading zero (`seed=01`, `train.steps=03`, a sweep's `1,02`):
    Hydra reads it as the text '01', which the run's config records, while the typed key reads 1; asked
    again as `seed=1`, the run it had completed was "another config" (forty-first hunt, cases 46-47). A
    folder's name is left as written, and a quoted '01' is a text as meant."""
    key, sep, value = arg.partition("=")
    if not sep or key.startswith("-") or key.lstrip("+~") in FOLDERS:
        return None
    pieces = [p.strip() for p in value.split(",")]
    zeros = [p for p in pieces if LEADING_ZERO.fullmatch(p)]
    if not zeros:
        return None
    meant = ",".join(str(int(p)) if p in zeros else p for p in pieces)
    return (
        f"{arg}: Hydra reads {zeros[0]} (a leading zero) as the text {zeros[0]!r}, which the run's config "
        f"would record (another config than {key}={int(zeros[0])}); write {key}={meant}, or quote it for "
        "Hydra where a text is meant"
    )


def _read(value) -> str:
    """A swept value as the config reads it: a number whatever its spelling (01, 1.0, '1': 1)."""
    try:
        number = float(str(value))
    except ValueError:
        return str(value)
    return str(int(number)) if number.is_integer() else str(number)


def run_dir_in_a_sweep(args: list[str]) -> str | None:
    """The line for `-m ... hydra.run.dir=X`: a sweep writes its runs under hydra.sweep.dir and reads no
    hydra.run.dir, which Hydra drops without a word (issue 73 fifth hunt); None otherwise."""
    typed = [a for a in args if a.lstrip("+").startswith("hydra.run.dir=")]
    if not typed or not any(a in ("-m", "--multirun") for a in args):
        return None
    folder = typed[-1].split("=", 1)[1]
    there = (
        f"for this folder: {shlex.quote(f'hydra.sweep.dir={folder}')}"
        if folder.strip()
        else "hydra.sweep.dir=<folder> names it"
    )
    return (
        f"align_lab: note: {typed[-1]} is one run's folder and a sweep (-m) does not read it; its runs go "
        f"under hydra.sweep.dir ({there})"
    )


def sweep_dir_without_a_sweep(args: list[str]) -> str | None:
    """The note for `hydra.sweep.dir=X` without -m: one run, made in hydra.run.dir, the folder typed never
    made and nothing said (fortieth hunt, case 58; the converse: run_dir_in_a_sweep)."""
    typed = [a for a in args if a.lstrip("+").startswith("hydra.sweep.dir=")]
    if not typed or multirun_asked(args):
        return None
    folder = typed[-1].split("=", 1)[1]
    return (
        f"align_lab: note: {typed[-1]} is a sweep's folder and this command (no -m) runs one run, which "
        f"goes in hydra.run.dir (for this folder: {shlex.quote(f'hydra.run.dir={folder}')})"
    )


def multirun_asked(args: list[str]) -> bool:
    """A sweep: -m (--multirun), `hydra.mode=MULTIRUN`, or a primary config named on the command line
    (`--config-dir sweeps --config-name X`) whose hydra.mode is MULTIRUN, as sweeps/*.yaml's ("no -m
    needed"): a note said such a tuned study ran one run (fifth hunt of 2026-12-04)."""
    import yaml

    if any(a in ("-m", "--multirun", "hydra.mode=MULTIRUN") for a in args):
        return True
    name, folder = flag_value(args, "--config-name", "-cn"), flag_value(args, "--config-dir", "-cd")
    conf = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")
    try:
        with open(os.path.join(folder or conf, name if name.endswith(".yaml") else f"{name}.yaml")) as f:
            mode = yaml.safe_load(f)["hydra"]["mode"]
    except (OSError, TypeError, KeyError, AttributeError, yaml.YAMLError):  # no name (None), no mode
        return False
    return str(mode).upper() == "MULTIRUN"


def flag_value(args: list[str], *names: str) -> str | None:
    """The value of a flag of Hydra's given as `--flag value` or `--flag=value`; None: not given."""
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(f"{n}="):
                return a.split("=", 1)[1]
    return None


# conf/'s groups no command line chooses: an algorithm's keys on one model, chosen by algo and model (conf/
# config.yaml's `optional algo_on_model: ${algo}_${model}`), and the algorithms' shared nodes; --help
# listed them as choices, and `algo=ppo algo_on_model=sdpo_tiny_llama` was refused naming a key the user
# never typed (forty-second hunt, case 30)
INTERNAL_GROUPS = {
    "algo_on_model": "chosen by algo and model (conf/algo_on_model/<algo>_<model>.yaml)",
    "algo_shared": "the algorithms' shared settings, each under its algo key (algo.correction.*)",
}


def internal_group(arg: str) -> str | None:
    """The line for a command line's choice of an internal group; None otherwise."""
    key, sep, value = arg.partition("=")
    group = key.lstrip("+~")
    if not sep or group not in INTERNAL_GROUPS:
        return None
    return f"{arg}: not a choice of yours: {INTERNAL_GROUPS[group]}; set algo=, model= or their keys instead"


def without_internal_groups(help_text: str) -> str:
    """--help's text less the internal groups' lines."""
    lines = help_text.splitlines(keepends=True)
    return "".join(x for x in lines if x.partition(":")[0] not in INTERNAL_GROUPS)
