"""Every single-run command of README.md and docs/*.md runs as written (issue 59 item 2), on the toy world
at small sizes: the command's own overrides, then the tests' sizes (tests/conftest.py SMALL, each where
the command's config has the key; train.steps=3, above docs/off_policy.md's train.max_staleness=2); then
compare reads the folders they made.

Commands that differ only in sizes or seed run once. A command that needs what the test machine does not give
(a real model, the network, vLLM, DeepSpeed's CPU op build) is left out with its reason in the output
(`-rs`); tests/unit/test_doc_commands.py admits every one of them without compute. Slow: a few minutes."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT, SMALL
from tests.unit.test_doc_commands import composed, distinct_runs, page_modules

# the sizes a command may set that do not change what it runs: dropped from it, the tests' set instead
SIZES = {o.split("=")[0] for o in SMALL}


# a threshold on an eval/ metric needs an evaluation before the last step (train/stop_at.py check_schedule)
EVALUATED = {"train.eval_every=0": "train.eval_every=1"}


def stops_on_eval(cfg) -> bool:
    return str(OmegaConf.select(cfg, "train.stop_at.metric") or "").startswith("eval/")


def why_not_here(choices: dict, cfg) -> str | None:
    """Why a command cannot run on the test machine at small sizes, or None."""
    if choices.get("model") not in ("tiny_llama", "tiny_qwen2"):
        return f"model={choices.get('model')}: a real model (tests/integration/test_real_models.py)"
    if choices.get("rollout") == "vllm":
        return "rollout=vllm: needs .venv-vllm (tests/integration/test_vllm.py)"
    if cfg.hardware.get("backend") == "deepspeed":
        return "hardware.backend=deepspeed: its CPU op build (tests/integration/test_backends.py)"
    return None


def plan() -> tuple[list[tuple[Path, list[str]]], list[str]]:
    """(the commands to run: page and arguments with the sizes, skipped: one line each)."""
    from hydra.types import RunMode

    runs, skipped, seen = [], [], set()
    for page, args in distinct_runs():
        cfg, hydra_node = composed(args)
        if hydra_node.mode != RunMode.RUN:
            continue
        where = f"{page.relative_to(ROOT)}: python -m align_lab {shlex.join(args)}"
        why = why_not_here(dict(hydra_node.runtime.choices), cfg)
        if why:
            skipped.append(f"{where}: {why}")
            continue
        own = [a for a in args if a.split("=")[0].lstrip("+~") not in SIZES]
        same = OmegaConf.to_yaml({**OmegaConf.to_container(cfg), "seed": None})  # another seed: the same run
        if same in seen:
            continue
        seen.add(same)
        small = [o for o in SMALL if OmegaConf.select(cfg, o.split("=")[0]) is not None]
        runs.append((page, [*own, *[EVALUATED.get(o, o) if stops_on_eval(cfg) else o for o in small]]))
    return runs, skipped


@pytest.mark.slow
def test_every_single_run_command_of_the_docs_runs_and_compare_reads_them(
    tmp_path, cache_dir, forked_cli
) -> None:
    runs, skipped = plan()
    print("left out:\n  " + "\n  ".join(skipped))
    assert len(runs) >= 10, runs
    modules = tmp_path / "modules"  # a page's own files (docs/environments.md's my_envs.py)
    modules.mkdir()
    for page in {page for page, _ in runs}:
        for name, code in page_modules(page).items():
            (modules / name).write_text(code)
    failed = []
    for i, (page, args) in enumerate(runs):  # each from the folder of the page's files, which it imports
        run_dir = tmp_path / "runs" / str(i)  # (forked_cli: a process forked, not one that imports again)
        p = forked_cli([*args, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"], cwd=modules)
        summary = run_dir / "summary.json"
        status = json.loads(summary.read_text())["status"] if summary.exists() else None
        if p.returncode != 0 or status != "completed":
            tail = (p.stderr.strip().splitlines() or [""])[-1]
            where = f"{page.relative_to(ROOT)}: {shlex.join(args)}"
            failed.append(f"{where}: exit {p.returncode}, {status}: {tail}")
    assert failed == []
    out = tmp_path / "compare"  # the docs' compare command, on the folders these runs made
    p = forked_cli([str(tmp_path / "runs"), "--out", str(out)], cwd=modules, module="align_lab.compare")
    assert p.returncode == 0, p.stderr[-2000:]
    assert (out / "report.md").exists()
