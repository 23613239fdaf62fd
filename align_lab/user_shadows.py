"""A file of the user's named as a module the command imports, found before Python's own or an installed
one (`python -m` puts the folder it runs in first on sys.path, PYTHONPATH its folders before the installed
packages): the one line that names it. Standard library only, as user_code.py."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from align_lab.user_code import installed, module_path, working_folder


def shadowing() -> str | None:
    """The line for a file of the user's named as a module the command imported in its place, Python's own
    (a module signal or random of the user's beside the reward) or an installed package's (numpy, yaml,
    tqdm): `python -m` puts the folder it runs in first on sys.path, and PYTHONPATH its folders before the
    installed packages, and the command failed inside align_lab's, Hydra's or torch's imports, a
    13-82-line traceback that named their code, not the file (twenty-eighth hunt, case 37; thirtieth, case
    3; a <lib>/yaml.py on PYTHONPATH, hunt of 2026-12-04). None where none was."""
    for index, first in users_paths():
        line = imported_shadow(index, first) or not_yet_shadowing(first, index)
        if line is not None:
            return line
    return None


def users_paths() -> list[tuple[int, str]]:
    """(index in sys.path, real folder) of the folders of the user's that Python searches before the
    installed packages: where `python -m` runs (sys.path[0], not under PYTHONSAFEPATH) and PYTHONPATH's."""
    named = {os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    found = []
    for index, entry in enumerate(sys.path):
        folder = os.path.realpath(os.path.join(working_folder(), entry))  # '', relative ones too
        if (index == 0 and not sys.flags.safe_path) or folder in named:
            found.append((index, folder))
    return found


def why_first(index: int) -> str:
    """Why Python found a file of `sys.path[index]` before the installed one, in the user's words."""
    if index == 0 and not sys.flags.safe_path:
        return "python -m puts the folder it runs in first on sys.path"
    return f"PYTHONPATH puts {sys.path[index] or '.'} before the installed packages on sys.path"


def imported_shadow(index: int, first: str) -> str | None:
    """The line for a module the command imported from `first` (sys.path[index]) that Python's own or an
    installed one of the same name would have been; None where none was."""
    import importlib.machinery

    for name in sorted(n for n in list(sys.modules) if "." not in n):  # top-level ones (a tenth in a run)
        file = getattr(sys.modules.get(name), "__file__", None) or ""
        if not isinstance(file, str) or not file or not module_path(file).startswith(os.path.join(first, "")):
            continue
        if installed(Path(module_path(file))):  # the README's .venv inside the checkout it runs in:
            continue  # setuptools' distutils shim under it is no file of the user's
        own = name in sys.stdlib_module_names
        other = None if own else importlib.machinery.PathFinder.find_spec(name, sys.path[index + 1 :])
        elsewhere = other is not None and os.path.realpath(other.origin or file) != module_path(file)
        if own or elsewhere:  # (align_lab itself, run from its checkout, is the same file both ways)
            whose = "Python's own module" if own else "the installed module"
            return (
                f"{file}: named as {whose} {name}, which the command imports: Python found yours first "
                f"({why_first(index)}); rename it (and a key that names it, where one does)"
            )  # thirty-fourth hunt, case 66: no key names a helper module
    return None


def pythons_own(path: Path) -> bool:
    """A file of the standard library's (not of a site-packages under it)."""
    stdlib = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib")}
    under = any(path.is_relative_to(p) for p in stdlib)
    return under and not {"site-packages", "dist-packages"} & set(path.parts)


def not_yet_shadowing(first: str, index: int = 0) -> str | None:
    """The line for a file of the user's in `first` (where `python -m` runs) named as an installed package's
    module that nothing has imported yet: align_lab or a library that imports it later gets the user's.
    A `./math_verify.py` beside the data made task.verifier=auto refuse the file's LaTeX answers as "math
    Math-Verify cannot parse" (fifty-third hunt's session); one whose verify said True scored every response
    right. Python's own names are left to the modules that import them (a `./test.py` harms nothing)."""
    import importlib.machinery

    try:
        entries = sorted(os.listdir(first))
    except OSError:
        return None
    for entry in entries:
        name = entry.removesuffix(".py")
        file = os.path.join(first, entry if entry.endswith(".py") else os.path.join(entry, "__init__.py"))
        if name in sys.modules or not name.isidentifier() or not os.path.isfile(file):
            continue
        if name in sys.stdlib_module_names or installed(Path(os.path.realpath(file))):
            continue
        other = importlib.machinery.PathFinder.find_spec(name, sys.path[index + 1 :])
        origin = Path(os.path.realpath(other.origin)) if other is not None and other.origin else None
        if origin is not None and pythons_own(origin):  # `test`, not in stdlib_module_names
            continue
        if origin is not None and origin != Path(os.path.realpath(file)):
            return (
                f"{file}: named as the installed module {name} ({other.origin}), which align_lab or a "
                f"library may import later: Python would find yours first ({why_first(index)}); rename it "
                "(and a key that names it, where one does)"
            )
    return None
