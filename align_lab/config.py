"""build(): the one place config becomes objects. Types are checked against the target dataclass
before anything is built, and every error is one line naming the key, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import re
import typing
from contextlib import ExitStack
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from align_lab.user_fds import users_own
from align_lab.user_limits import RunLimitsLost, limits_kept
from align_lab.user_modes import modes_kept
from align_lab.user_timeouts import BUILDING, stuck_watched
from align_lab.value_checks import ConfigError, integer_wanted, one_line, written

__all__ = ["ConfigError", "build", "run_choices"]


# OmegaConf's "Value 'abc' of type 'str' could not be converted to Integer", said as what is allowed
WANTED = {"Integer": "must be an integer", "Float": "must be a number", "Boolean": "must be true or false"}


def _strip_targets(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_targets(v) for k, v in node.items() if k != "_target_"}
    return node


def _typed(cls: type, node: DictConfig, key: str):
    """Merges `node` into the structured schema of `cls`; wrong types and unknown keys fail here."""
    try:
        schema = _schema(cls)
    except ValidationError as e:  # a field a config cannot hold (fourteenth hunt: OmegaConf's 3 lines)
        said = getattr(e, "msg", str(e)).split("\n")[0]
        raise ConfigError(
            f"{key}: {cls.__name__}'s field {e.full_key}: {said}; a config's field holds numbers, text, "
            "booleans, lists and dicts of them or dataclasses: annotate it so, or make it in __post_init__ "
            "(field(init=False))"
        ) from None
    data = _strip_targets(OmegaConf.to_container(node, resolve=True))
    try:
        return OmegaConf.merge(schema, data)
    except ConfigKeyError as e:
        where = _node_class(cls, str(e.full_key or e.key))
        allowed = ", ".join(f.name for f in dataclasses.fields(where))
        raise ConfigError(f"{key}.{e.full_key or e.key}: unknown key; allowed: {allowed}") from None
    except ValidationError as e:
        want = getattr(e, "msg", str(e)).split("\n")[0]
        kind = want.rsplit(" ", 1)[-1] if "could not be converted to" in want else None
        kind = "Boolean" if "is not a valid bool" in want else kind
        null = re.fullmatch(r"Incompatible value 'None' for field of type '(\w+)'", want)  # key=null
        kind = {"int": "Integer", "float": "Float", "bool": "Boolean"}.get(null[1], kind) if null else kind
        want = integer_wanted(f"{key}.{e.full_key}", e.value, WANTED.get(kind, want))
        raise ConfigError(f"{key}.{e.full_key}={written(e.value)}: {want}") from None


@functools.lru_cache(maxsize=256)
def _schema(cls: type) -> DictConfig:
    """The structured schema of `cls`, made once a process (4.5 ms for PPO's; a sweep, a study and the
    tests build components hundreds of times): OmegaConf.merge copies it before it merges into it."""
    return _writable(OmegaConf.structured(cls))


def _writable(node: DictConfig) -> DictConfig:
    """The schema with its part nodes writable: a part is a frozen dataclass (parts.RatioClip), which
    OmegaConf makes a read-only node, so the user's values could not merge into it."""
    OmegaConf.set_readonly(node, None)
    for name in node:
        child = node._get_node(name)
        if isinstance(child, DictConfig):
            _writable(child)
    return node


def _node_class(cls: type, full_key: str) -> type:
    """The dataclass whose field `full_key` names (clip.lo: the part node clip's class), else cls."""
    for name in full_key.split(".")[:-1]:
        hint = typing.get_type_hints(cls).get(name)
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            return cls
        cls = hint
    return cls


def _check_finite(node: DictConfig, key: str) -> None:
    """No number of a component is NaN or infinite (`algo.lr=inf`, `rollout.temperature=inf` train
    nothing or diverge, and would only fail steps later): one line naming the key."""
    for name, value in node.items():
        if isinstance(value, DictConfig):
            _check_finite(value, f"{key}.{name}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}.{name}={value}: must be a finite number")


IMPORT_STUCK_S = 600.0  # a component's class whose import holds Python's lock longer: ended, said


def build(node: DictConfig, key: str) -> Any:
    """Builds the component at config key `key` (e.g. "algo") from its `_target_`."""
    from hydra.errors import InstantiationException
    from hydra.utils import get_class, instantiate

    from align_lab.registry import GROUPS

    if key not in GROUPS and not isinstance(node, DictConfig):  # train=null, sft=3: a traceback
        said = f"{key}={written(node)}: a section of settings, not a value"
        raise ConfigError(f"{said}; set its keys ({key}.<key>=...)")
    if not isinstance(node, DictConfig) or "_target_" not in node:
        if key in GROUPS:
            raise ConfigError(f"{key}: has no _target_; pick a choice of the {key} group")
        raise ConfigError(f"{key}: has no _target_; drop the override that replaced the {key} section")
    hydra_log = logging.getLogger("hydra.utils")  # get_class logs its own 3-line error first
    hydra_log.disabled, was = True, hydra_log.disabled
    try:  # an import of the user's stuck in C is ended in one line (thirtieth hunt, case 4: silent for good)
        where = f"{key}._target_={node._target_}"
        with stuck_watched(f"{where}: importing it", "", IMPORT_STUCK_S), ExitStack() as users:
            if not node._target_.startswith("align_lab."):  # autocast turned on as one of the user's is
                users.enter_context(modes_kept(where))  # imported trained the SFT stage broken, and the
                users.enter_context(limits_kept(where))  # cache kept it (thirty-seventh hunt, case 62)
            cls = get_class(node._target_)
    except RunLimitsLost as e:
        raise ConfigError(f"{where}: importing it {e.what}") from None
    except Exception:
        raise ConfigError(f"{key}._target_={node._target_}: {not_importable(node._target_)}") from None
    finally:
        hydra_log.disabled = was
    BUILDING.append(key)  # a module of the user's it imports names its keys from here (user_timeouts.py)
    try:
        if dataclasses.is_dataclass(cls):
            typed = _typed(cls, node, key)
            _check_finite(typed, key)
            return OmegaConf.to_object(typed)
        return users_own(lambda: instantiate(node, _convert_="all"), yours(cls))  # its fds its own
    except ConfigError:
        raise
    except ValueError as e:  # __post_init__ checks: "clip=1.5: must be in (0, 1)"; a class of yours:
        if yours(cls):  # its own words, not a key's (thirty-fourth hunt, case 45: "env.no sandbox quota")
            raise ConfigError(constructor_failed(key, node._target_, e)) from None
        raise ConfigError(f"{key}.{sibling_keys(str(e), cls, key)}") from None
    except InstantiationException as e:  # a class's own check (reward=combined's weights), wrapped
        if (line := nested_failure(e, node, key)) is not None:
            raise ConfigError(line) from None
        if isinstance(e.__cause__, ValueError) and not yours(cls):
            raise ConfigError(f"{raised_at(e, key)}.{e.__cause__}") from None
        if not yours(cls) or not isinstance(e.__cause__, Exception):
            raise
        raise ConfigError(constructor_failed(key, node._target_, e.__cause__)) from None
    except Exception as e:  # your class's constructor (an environment's): one line, not a traceback
        if not yours(cls):
            raise
        raise ConfigError(constructor_failed(key, node._target_, e)) from None
    finally:
        BUILDING.pop()


def nested_failure(e: Exception, node: DictConfig, key: str) -> str | None:
    """The line for a node built inside `key` (reward=combined's source: reward.components.x.source) whose
    `_target_` does not import, or whose class of the user's raised: a 99-line traceback, or its message
    glued to the key as if it were one (thirty-sixth hunt, cases 44 and 51); None for `key`'s own."""
    from hydra.utils import get_class

    where = raised_at(e, key)
    inner = OmegaConf.select(node, where.removeprefix(f"{key}."), default=None) if where != key else None
    target = inner.get("_target_") if isinstance(inner, DictConfig) else None
    if target is None or not isinstance(e.__cause__, Exception):
        return None
    hydra_log = logging.getLogger("hydra.utils")  # get_class logs its own 3-line error first
    hydra_log.disabled, was = True, hydra_log.disabled
    try:
        inner_cls = get_class(target)
    except Exception:
        return f"{where}._target_={target}: {not_importable(target)}"
    finally:
        hydra_log.disabled = was
    return constructor_failed(where, target, e.__cause__) if yours(inner_cls) else None


def raised_at(e: Exception, key: str) -> str:
    """The key of the node whose constructor raised `e` (Hydra's `full_key:` line): `key`, or a node built
    inside it (reward=combined's source: reward.components.brevity.source), so that its check's
    `path=mod:fn: ...` reads as the key typed."""
    last = str(e).rsplit("\n", 1)[-1]
    full = last.removeprefix("full_key: ") if last.startswith("full_key: ") else ""
    if not full or full == key or full.startswith(f"{key}."):
        return full or key
    return f"{key}.{full}"


def yours(cls) -> bool:
    """A class of the user's (or of a package's), not align_lab's: its constructor's failure is one line;
    align_lab's own raising anything but its ValueError checks is a bug, and keeps its traceback."""
    return str(getattr(cls, "__module__", "")).partition(".")[0] != "align_lab"


def constructor_failed(key: str, target: str, e: BaseException) -> str:
    why = one_line(e)
    return f"{key}._target_={target}: building it raised {why}; fix it, or check its keys ({key}.<key>=...)"


def not_importable(path: str) -> str:
    """Why `path` (module.Class) does not import: the longest module of it that imports and the name it
    lacks, the error of a module that fails to import, or that no module of it exists (Hydra's own
    message, logged before ours, guessed at a module named like the class)."""
    import importlib

    parts = str(path).split(".")
    for n in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:n])
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module or module.startswith(f"{e.name}."):
                continue  # no such module: a shorter prefix says more
            return f"not an importable class (importing {module} raised {one_line(e)})"
        except Exception as e:
            return f"not an importable class (importing {module} raised {one_line(e)})"
        missing = ".".join(parts[n:])
        for name in parts[n:]:
            if not hasattr(found, name):
                return f"not an importable class ({module} has no {missing})"
            found = getattr(found, name)
        return "not an importable class"
    if len(parts) < 2:
        return "not an importable class (must be module.Class)"
    return (
        f"not an importable class (no module {parts[0]}; a module of yours must be importable from where "
        "you run, or on PYTHONPATH)"
    )


def sibling_keys(message: str, cls, key: str) -> str:
    """A component's check names its other fields bare ("... with token_level_kl=true"); typed so, the
    override is a new root key. Each `field=` (or a part node's `field.sub=`) after the first ": " becomes
    `key.field=` (algo.token_level_kl, algo.correction.mode), the key the command line takes."""
    if not dataclasses.is_dataclass(cls) or ": " not in message:
        return message
    head, _, tail = message.partition(": ")
    names = "|".join(re.escape(f.name) for f in dataclasses.fields(cls))
    return f"{head}: " + re.sub(rf"(?<![\w.])((?:{names})(?:\.\w+)?)=", rf"{key}.\1=", tail)


def integer(value, key: str, allowed: str = "an integer") -> int:
    """An int from a config value that must be one (not 1.5, not "abc", not true): else a ConfigError."""
    try:
        typed = isinstance(value, int | str | float) and not isinstance(value, bool)
        number = float(value) if typed else math.nan
    except ValueError:  # "abc"
        number = math.nan
    if not number.is_integer():  # null, true, "abc", 1.5, nan, inf
        raise ConfigError(f"{key}={written(value)}: must be {allowed}")
    return int(number)


SPECIALISED = "algo_on_model"  # conf/config.yaml's `optional algo_on_model: ${algo}_${model}`


def specialisation(names: dict):
    """The file of the run's algo_on_model choice (conf/algo_on_model/<algo>_<model>.yaml), or None."""
    from align_lab.registry import CONF

    path = CONF / SPECIALISED / f"{names.get(SPECIALISED)}.yaml"
    return path if SPECIALISED in names and path.exists() else None


def run_choices(choices) -> dict[str, str]:
    """A run's config-group choices as it records them (summary.json `names`): Hydra's own left out, and
    the specialisation `algo_on_model` only where its file exists (Hydra names `<algo>_<model>` always)."""
    names = {str(k): v for k, v in choices.items() if not str(k).startswith("hydra")}
    if SPECIALISED in names and specialisation(names) is None:
        del names[SPECIALISED]
    return names
