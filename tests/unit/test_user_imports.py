"""user_timeouts.py imported: a module of the user's that exits or hangs as it is imported is said in one
line naming it (twenty-eighth hunt, cases 24-26: `sys.exit(3)` at import ended the command with rc 3 and
no output; argparse at import printed "__main__.py: error: unrecognized arguments: reward=function ...";
an import that never finished was waited for with no line)."""

from __future__ import annotations

import os
import sys

import pytest

from align_lab.rewards.function import FunctionReward
from align_lab.tasks.verifiers import checker


@pytest.fixture
def modules(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(name: str, code: str):
        (tmp_path / f"{name}.py").write_text(code)
        written.append(name)
        return tmp_path / f"{name}.py"

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_a_reward_module_that_exits_as_it_is_imported_is_one_line_naming_it(modules):
    file = modules("guarded", "import sys\nif True:\n    sys.exit(3)\n")
    with pytest.raises(ValueError) as e:
        FunctionReward(path="guarded:f")
    assert str(e.value) == (
        f"path=guarded:f: importing guarded called sys.exit(3) at {file}:3; a module the run imports must "
        "not end the process as it is imported"
    )


def test_a_module_whose_argparse_reads_the_command_line_at_import_is_named(modules, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["-m", "reward=function", "reward.path=flags:score"])
    file = modules("flags", "import argparse\np = argparse.ArgumentParser()\nARGS = p.parse_args()\n")
    with pytest.raises(ValueError) as e:
        checker("flags:score", 5.0)
    assert str(e.value) == (
        f"verifier=flags:score: importing flags called sys.exit(2) at {file}:3 (argparse there read the "
        "command line it was given: align_lab's); a module the run imports must not end the process as it "
        "is imported"
    )


def test_an_import_that_does_not_finish_is_stopped_at_the_bound_of_the_modules_calls(modules):
    file = modules("waits", "import time\ntime.sleep(30)\n")
    with pytest.raises(ValueError) as e:
        FunctionReward(path="waits:f", timeout_s=0.5)
    assert str(e.value) == (
        f"path=waits:f: importing waits did not finish in timeout_s=0.5 s, stopped at {file}:2; fix the "
        "import, or set timeout_s=<seconds> if it needs longer"
    )
    with pytest.raises(ValueError) as e:
        checker("waits:check", 0.5)
    assert "importing waits did not finish in verifier_timeout_s=0.5 s, stopped at " in str(e.value)


def test_a_module_that_calls_os_exit_as_it_is_imported_is_one_line_naming_it(modules):
    """Twenty-ninth hunt, case 7: os._exit(3) at import ended the command with rc 3 and not a byte said;
    os._exit is the process's own again after the import."""
    import os

    file = modules("hard_guard", "import os\nos._exit(3)\n")
    real = os._exit
    with pytest.raises(ValueError) as e:
        FunctionReward(path="hard_guard:f")
    assert str(e.value) == (
        f"path=hard_guard:f: importing hard_guard called os._exit(3) at {file}:2; a module the run imports "
        "must not end the process as it is imported"
    )
    assert os._exit is real


def test_a_file_named_as_a_module_of_pythons_not_yet_imported_is_refused_before_it_stands_in(
    tmp_path, monkeypatch
):
    """Fifty-first hunt, case 36: a reward module `./statistics.py` was imported as the user's (Python had not
    imported its own yet), trained the whole run, and the run's end, which imports statistics, got it:
    `error: ... rename it`, rc 2, after "completed"."""
    (tmp_path / "statistics.py").write_text("def fn(p, r):\n    return [0.0] * len(r)\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path[1:]])
    monkeypatch.delitem(sys.modules, "statistics", raising=False)
    with pytest.raises(ValueError) as e:
        FunctionReward(path="statistics:fn")
    assert str(e.value) == (
        f"path=statistics:fn: {tmp_path / 'statistics.py'} is named as Python's own module statistics, which "
        "align_lab or a library may import later: yours would stand in for it there; rename it, and the key "
        "that names it"
    )
    assert "statistics" not in sys.modules  # never imported


def test_a_package_named_as_a_module_of_pythons_and_a_helper_so_named_are_refused_before_any_compute(
    tmp_path, monkeypatch
):
    """Fifty-second hunt, cases 9 and 10: `task.verifier=statistics.mine:check` (a package statistics/ of the
    user's: the check read the dotted name whole), and a verifier whose helper module is a `./statistics.py`
    (the key's module is another name): each trained the whole run, then its end failed, rc 2."""
    import types

    from align_lab.config import ConfigError
    from align_lab.run.admission import admit_spec, spec_from_config
    from tests.conftest import compose

    (tmp_path / "statistics").mkdir()
    (tmp_path / "statistics" / "__init__.py").write_text("")
    (tmp_path / "statistics" / "mine.py").write_text("def fn(p, r):\n    return [0.0] * len(r)\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path[1:]])
    monkeypatch.delitem(sys.modules, "statistics", raising=False)
    with pytest.raises(
        ValueError, match=r"statistics/__init__.py is named as Python's own module statistics,"
    ):
        FunctionReward(path="statistics.mine:fn")
    # a helper as the verifier's import left it in sys.modules: refused at admission, before the folder
    spec = spec_from_config(*compose(["tracker=none"]))
    helper = types.ModuleType("statistics")
    helper.__file__ = str(tmp_path / "statistics" / "__init__.py")
    monkeypatch.setitem(sys.modules, "statistics", helper)
    said = r"named as Python's own module statistics, which the command imports"
    with pytest.raises(ConfigError, match=said):
        admit_spec(spec, tmp_path / "run")
    with pytest.raises(ConfigError, match=said):  # and before the build, where it was imported before it
        spec_from_config(*compose(["tracker=none"]))
    assert not (tmp_path / "run").exists()


def test_an_installed_module_under_the_first_path_is_no_file_of_the_users(tmp_path, monkeypatch):
    """The README's .venv lives inside the checkout, the folder `python -m pytest` puts first on sys.path:
    setuptools' distutils shim under its site-packages was refused at admission as a file of the user's
    named as Python's distutils (CI at f8242326: 29 tests)."""
    import types

    from align_lab.user_shadows import shadowing

    file = tmp_path / ".venv/lib/python3.11/site-packages/setuptools/_distutils/__init__.py"
    file.parent.mkdir(parents=True)
    file.write_text("")
    shim = types.ModuleType("distutils")
    shim.__file__ = str(file)
    monkeypatch.setitem(sys.modules, "distutils", shim)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert shadowing() is None
    (tmp_path / "distutils.py").write_text("")
    shim.__file__ = str(tmp_path / "distutils.py")
    assert "named as Python's own module distutils" in shadowing()


def test_a_file_named_as_an_installed_module_not_yet_imported_is_refused_before_the_build(
    tmp_path, monkeypatch
):
    """Fifty-third hunt's session: a `./math_verify.py` beside the data, named by no key: task.verifier=auto
    imported it in the installed package's place and refused the file's `\\frac{1}{2}` as math Math-Verify
    cannot parse (a stub whose verify said True would have scored every response right). A file of the
    user's named as no installed module, one named as Python's own and wandb's run folder pass."""
    from align_lab.config import ConfigError
    from align_lab.run.admission import spec_from_config
    from tests.conftest import compose

    for name in ("mymod.py", "test.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "wandb" / "latest-run").mkdir(parents=True)  # wandb's offline runs, no __init__.py
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path[1:]])
    monkeypatch.delitem(sys.modules, "math_verify", raising=False)
    spec_from_config(*compose(["tracker=none"]))  # none of them stands in for anything
    (tmp_path / "math_verify.py").write_text("def verify(*a, **k):\n    return True\n")
    with pytest.raises(ConfigError) as e:
        spec_from_config(*compose(["tracker=none"]))
    assert str(e.value).startswith(
        f"{tmp_path / 'math_verify.py'}: named as the installed module math_verify ("
    ) and str(e.value).endswith(
        "), which align_lab or a library may import later: Python would find yours first (python -m puts the "
        "folder it runs in first on sys.path); rename it (and a key that names it, where one does)"
    )
    assert "math_verify" not in sys.modules  # never imported


def test_a_file_named_as_a_module_python_imported_before_is_named_not_said_to_lack_the_function(
    tmp_path, monkeypatch
):
    """Twenty-ninth hunt, case 8: a reward module `types` (or re, os, abc) in the folder the command runs
    from: Python had imported its own before, so the reward was looked up there, "types has no callable
    score", while the user's file defines it."""
    (tmp_path / "types.py").write_text("def score(p, r):\n    return [0.0] * len(r)\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path[1:]])
    with pytest.raises(ValueError) as e:
        FunctionReward(path="types:score")
    assert str(e.value) == (
        f"path=types:score: {tmp_path / 'types.py'} is named as Python's own module types, which Python had "
        "imported before it looked in your folder; rename it, and the key that names it"
    )


def test_a_file_on_pythonpath_named_as_an_installed_module_is_refused_as_one_in_the_folder_is(
    tmp_path, monkeypatch
):
    """Hunt of 2026-12-04 (env/cwd, c10): a helper `<lib>/yaml.py` on PYTHONPATH stood in for PyYAML:
    omegaconf's `yaml.Dumper` failed in a 23-line traceback; the same file in the folder `python -m` runs
    in got the one line (only sys.path[0] was looked at). Imported, and not yet imported, both said."""
    from types import ModuleType

    from align_lab.user_shadows import shadowing

    lib, here = tmp_path / "lib", tmp_path / "here"
    lib.mkdir(), here.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(lib))
    monkeypatch.setattr(sys, "path", [str(here), str(lib), *sys.path[1:]])
    assert shadowing() is None
    fake = ModuleType("yaml")
    fake.__file__ = str(lib / "yaml.py")
    (lib / "yaml.py").write_text("x = 1\n")
    monkeypatch.setitem(sys.modules, "yaml", fake)
    assert shadowing() == (
        f"{lib / 'yaml.py'}: named as the installed module yaml, which the command imports: Python found "
        f"yours first (PYTHONPATH puts {lib} before the installed packages on sys.path); rename it (and a "
        "key that names it, where one does)"
    )
    monkeypatch.undo()
    monkeypatch.setenv("PYTHONPATH", str(lib))
    monkeypatch.setattr(sys, "path", [str(here), str(lib), *sys.path[1:]])
    (lib / "yaml.py").unlink()
    (lib / "math_verify.py").write_text("def verify(*a, **k):\n    return True\n")
    monkeypatch.delitem(sys.modules, "math_verify", raising=False)
    said = shadowing()
    assert said.startswith(f"{lib / 'math_verify.py'}: named as the installed module math_verify (")
    assert f"(PYTHONPATH puts {lib} before the installed packages on sys.path)" in said


def test_a_module_beside_you_under_pythonsafepath_is_said_to_be_off_the_path(tmp_path):
    """Hunt of 2026-12-04 (c09): with PYTHONSAFEPATH=1, `reward.path=myrew:score` beside ./myrew.py said
    only "cannot import myrew (No module named 'myrew')"; now why: Python does not look in that folder."""
    import subprocess

    (tmp_path / "myrew.py").write_text("def score(p, r, f=None):\n    return [0.0] * len(r)\n")
    code = (
        "import importlib\nfrom align_lab.user_code import why_not_found\n"
        "for name in ('myrew', 'nosuch'):\n"
        "    try:\n        importlib.import_module(name)\n"
        "    except ImportError as e:\n        print(why_not_found(e))\n"
    )
    said = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert said == [
        f"PYTHONSAFEPATH is set, so Python does not look in the folder you run in ({tmp_path}), where "
        "./myrew.py is: unset PYTHONSAFEPATH, or put the folder on PYTHONPATH",
        "No module named 'nosuch'",
    ]


def test_a_plain_folder_named_as_a_package_is_not_that_package_installed(tmp_path, monkeypatch):
    """Hunt of 2026-12-04 (env/cwd, c74): a folder `vllm/` of yours (no __init__.py) beside you passed
    rollout=vllm's check (find_spec takes a plain folder for a namespace package); the run failed 34 s in,
    93 lines: "cannot import name 'LLM' from 'vllm' (unknown location)". Now the check's one line."""
    from align_lab.rollout.vllm import VLLMEngine
    from align_lab.user_code import importable

    installed = importable("vllm")  # in .venv-vllm only
    (tmp_path / "vllm").mkdir()
    (tmp_path / "mymod.py").write_text("x = 1\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    assert importable("mymod") and importable("json") and importable("torch")
    assert not importable("no_such_module_here")
    assert not importable("vllm") or installed
    if not installed:
        with pytest.raises(
            ValueError, match=r"^rollout=vllm: the vllm package is not installed in this Python"
        ):
            VLLMEngine.check_installed(None)
