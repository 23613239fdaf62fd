"""Bad input and faults as a user meets them (docs/faults.md): each case asserts the
exit code, the one line the user reads, and that nothing written before is lost.

Bad input: `python -m align_lab ...` must stop before any compute with exactly one line on stderr and
exit code 2, leaving no run folder and no cache behind. Faults: a damaged checkpoint, a damaged stage
cache, SIGTERM / SIGINT, a full disk, torn metrics, a rerun of a finished run.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from align_lab.rerun import shell_command
from tests.conftest import FULL, ROOT, SMALL, full_but, run_cli, run_in_process
from tests.integration.test_studies import slurm  # noqa: F401 (the fixture: the test Slurm cluster)


def one_line_error(result, *needles: str, code: int = 2) -> str:
    """The process exited with `code`, and stderr is exactly one line holding every needle."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr[-3000:]
    assert len(lines) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with ends


# ---------------------------------------------------------------- bad input: one line, nothing made
BAD_INPUT = [
    (["seed=abc"], "seed=abc: must be an integer"),
    (["seed=1.5"], "seed=1.5: must be an integer"),
    (["reward=verifier"], "reward=verifier: task=toy_prefs has no verifiable answers"),
    (["cache_dir=/proc/no_such_dir"], "cache_dir=/proc/no_such_dir: cannot write there"),
    (["hardware.num_threads=-1"], "hardware.num_threads=-1: must be >= 0"),
    (["hardware.num_threads=two"], "hardware.num_threads=two: must be an integer"),
    (["hardware.max_parallel=0"], "hardware.max_parallel=0: must be >= 1 or null"),
    (["task.n_pairs=-1"], "n_pairs=-1: must be >= 1"),
    (["train.steps=0"], "train.steps=0: must be >= 1"),
    (
        ["train.micro_batch_size=0"],
        "train.micro_batch_size=0: must be auto (from the memory budget), an integer >= 1, or null",
    ),
    (["train.minibatch_size=7"], "train.minibatch_size=7: must be a divisor of train.rollout_size=64"),
    (["algo=nope"], "algo=nope: unknown choice; allowed: "),
    (["algo.lr=abc"], "algo.lr=abc: must be a number"),
    (["algo.lr=inf"], "algo.lr=inf: must be a finite number"),
    (["rollout.temperature=inf"], "rollout.temperature=inf: must be a finite number"),
    (["sft.lr=nan"], "sft.lr=nan: must be a finite number"),
    # issue 25: AdamW at lr=1e6 ran to a finite, collapsed policy; no AdamW lr of 1 or more can train
    (["algo.lr=1e6"], "algo.lr=1000000.0: must be in (0, 1): AdamW moves each weight by about lr per step"),
    (["train.warmup_steps=300"], "train.warmup_steps=300: must be < the run's 300 optimiser steps"),
    (["algo=grpo", "algo.use_kl_loss=maybe"], "algo.use_kl_loss=maybe: must be true or false"),
    (["+algo.bogus=1"], "algo.bogus: unknown key"),
    (["train.bogus=1"], "train.bogus: unknown key"),
    (["hardware.dtype=fp8"], "hardware.dtype=fp8: must be one of fp32, bf16"),
    (["algo.kl_clamp=0"], "kl_clamp=0.0: must be > 0 or null"),
    (["algo=grpo", "algo.clip.dual=1"], "algo.clip.dual=1.0: must be > 1 or null"),
    (
        ["algo=rloo", "algo.token_level_kl=true", "algo.normalize_advantages=true"],
        "normalize_advantages=true",
    ),
    (["algo=ppo_max", "reward=gold"], "algo.critic_init=reward_model: needs reward=learned_rm"),
    (["algo=ppo_max", "train.steps=10"], "algo.critic_pretrain_steps=10: must be < train.steps=10 (the"),
    (["lora.enabled=true", "lora.r=0"], "lora.r=0: must be >= 1"),
    (["model.hidden_size=0"], "model.hidden_size=0: must be >= 1"),
    # combinations that cannot train (issue 25 item 3): each completed before, learning nothing
    (["rollout.temperature=1e6"], "rollout.temperature=1000000.0: sampling is near uniform"),
    (["reward=learned_rm", "task.n_pairs=1"], "1 preference pair(s) leave none to train on"),
    (["model.max_positions=8"], "model.max_positions=8: task=toy_prefs needs 16 positions"),
    (["task.max_response_tokens=2"], "task.max_response_tokens=2: must be > task.target_len=6"),
    # issue 73: inf trained on -inf/NaN rewards, nan read as "diverged ... lower algo.lr", all-zero
    # weights trained nothing with rc 0, and a weight that is not a number was a traceback
    (["reward=combined", "reward.components.brevity.weight=inf"], "brevity.weight=inf: must be a finite"),
    (
        ["reward=combined", "reward.components.rm.weight=nan"],
        "reward.components.rm.weight=nan: must be a finite",
    ),
    (
        ["reward=combined", "reward.components.rm.weight=0", "reward.components.brevity.weight=0.0"],
        "reward.components: every weight is 0 (rm=0, brevity=0.0), so every response scores 0 and nothing",
    ),
    (
        ["reward=combined", "reward.components.rm.weight=abc"],
        "reward.components.rm.weight=abc: must be a number",
    ),
    # third fresh hunt: 1e-320 is 0 in the float32 rewards (rm=0: nothing trained, rc 0), 1e308 infinity
    # (read as "diverged ... lower algo.lr")
    (
        ["reward=combined", "reward.components.rm.weight=0", "reward.components.brevity.weight=1e-320"],
        "reward.components.brevity.weight=1e-320: out of range (training scores in float32",
    ),
    (
        ["reward=combined", "reward.components.rm.weight=1e308"],
        "reward.components.rm.weight=1e+308: out of range (training scores in float32",
    ),
    # hunt of 2026-12-04, c28: 2e-38 and -2e-38 passed float32's smallest normal number, trained nothing
    (
        ["reward=combined", "reward.components.rm.weight=2e-38", "reward.components.brevity.weight=-2e-38"],
        "reward.components.rm.weight=2e-38: out of range (training scores in float32, whose squares a "
        "group's advantages take: |w| in [1e-18, 1e+18], or 0)",
    ),
    # thirty-second hunt, case 62: "cannot import /tmp/w/rglob.py (No module named '/tmp/w/rglob')"
    (
        ["reward=function", "reward.path=/tmp/w/rglob.py:plain"],
        "reward.path=/tmp/w/rglob.py:plain: a module's name, not a file's path: rglob:plain, run from",
    ),
    # thirty-second hunt, case 42: admitted, stages built, then "diverged ... lower algo.lr"
    (["algo.kl_coef=1e300"], "algo.kl_coef=1e+300: must be <= 1e+18 (past it the loss overflows float32)"),
    (["algo=dpo", "algo.beta=1e19"], "algo.beta=1e+19: must be <= 1e+18 (past it the loss overflows"),
    # thirty-second hunt, case 15: said as model.model.gguf_file, a key the command line refuses
    (
        ["model=hf", "model.gguf_file=pkg:no_such_pkg/x.gguf"],
        "error: model.gguf_file=pkg:no_such_pkg/x.gguf: the package 'no_such_pkg' is not installed; "
        "install: pip install no-such-pkg",
    ),
    # thirty-first hunt, case 45: admitted with a predicted peak of 552 MiB, it grew past 11 GB. Each of
    # the 18 x 100000 rows holds 2304 + 32 x 4 + 44 x 12 = 2,960 bytes (kept.py): 5.0 GiB; half of 4 GiB
    # holds 2,147,483,648 // (18 x 2,960) = 40305 a prompt
    (
        ["train.eval_samples=100000", "hardware.memory_gb=4"],
        "train.eval_samples=100000: an evaluation keeps each of its 1,800,000 samples (18 held-out prompts "
        "x 100000) and the reference's until it ends, ~5.0 GiB, more than half of hardware.memory_gb=4 "
        "(4.0 GiB); at most 40305 samples a prompt fit",
    ),
]


@pytest.mark.parametrize("overrides,message", BAD_INPUT, ids=[" ".join(o) for o, _ in BAD_INPUT])
def test_bad_input_is_one_line_before_any_compute(overrides, message, tmp_path, forked_cli):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    own_cache = any(o.startswith("cache_dir=") for o in overrides)
    result = forked_cli(
        [*overrides, f"hydra.run.dir={run_dir}", *([] if own_cache else [f"cache_dir={cache}"])], cwd=ROOT
    )
    one_line_error(result, "align_lab: error: ", message)
    assert not run_dir.exists(), "a refused run leaves no folder"
    assert not cache.exists(), "nothing was computed"


@pytest.mark.fast
def test_a_refused_run_in_the_default_folder_leaves_no_outputs_folder(tmp_path, forked_cli):
    """Issue 73 fifth hunt: `python -m align_lab algo.clip.low=1.5` in an empty folder was refused in one
    line, but left an empty `outputs/<date>/` behind (the docs: a refused run leaves no folder)."""
    result = forked_cli(["algo.clip.low=1.5", f"cache_dir={tmp_path / 'cache'}"], cwd=tmp_path)
    one_line_error(result, "align_lab: error: algo.clip.low=1.5: must be in (0, 1)")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "outputs" / "mine").mkdir(parents=True)  # outputs/ holding anything else stays
    result = forked_cli(["algo.clip.low=1.5", f"cache_dir={tmp_path / 'cache'}"], cwd=tmp_path)
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["mine"]


def test_a_cache_dir_that_is_a_file_is_one_line(tmp_path, forked_cli):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    result = forked_cli([f"cache_dir={afile}", f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT)
    one_line_error(result, f"cache_dir={afile}: is a file")
    assert afile.read_text() == "mine"


def test_an_empty_model_folder_is_one_line_naming_it(tmp_path, forked_cli):
    empty = tmp_path / "empty_model"
    empty.mkdir()
    result = forked_cli(
        ["model=hf", f"model.name_or_path={empty}", f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT
    )
    one_line_error(result, f"name_or_path={empty}: the folder holds no checkpoint")


def test_a_remote_reward_at_a_closed_port_is_one_line_before_any_compute(tmp_path, forked_cli):
    url = f"http://127.0.0.1:{_closed_port()}/score"
    cache = tmp_path / "cache"
    result = forked_cli(
        ["reward=remote", f"reward.url={url}", f"cache_dir={cache}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
    )
    one_line_error(result, f"reward.url={url}: cannot connect to 127.0.0.1")
    assert not cache.exists()


def test_a_slurm_sweep_without_slurm_is_one_line_and_submits_nothing(tmp_path, forked_cli):
    bin_dir = tmp_path / "bin"  # a PATH with python but without sbatch/srun
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python")
    result = forked_cli(
        ["-m", "hardware=slurm_cpu", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=ROOT,
        env={"PATH": str(bin_dir)},
    )
    one_line_error(result, "sbatch is not on PATH", "hardware=submitit_local")
    assert not (tmp_path / "sweep" / "study.json").exists()


def test_a_slurm_sweep_slurm_does_not_answer_or_refuses_is_one_line_and_queues_nothing(
    slurm,  # noqa: F811 (the fixture)
    tmp_path,
    forked_cli,
):
    """Twenty-third hunt, case 6: from a shell without the cluster's SLURM_CONF (a fresh login shell),
    sbatch's failure was a 62-line traceback (its lines, CalledProcessError, submitit's FailedJobError).
    Slurm is now asked before admission (`sinfo`), and sbatch's own refusal of a job array (a partition
    that does not exist) is one line too."""
    sweep = tmp_path / "sweep"
    args = ["-m", "hardware=slurm_cpu", "seed=0,1", "tracker=none", f"hydra.sweep.dir={sweep}"]
    (tmp_path / "slurm.conf").write_text(
        ""
    )  # a configuration Slurm cannot use (a missing one: 60 s of retries)
    unreachable = forked_cli(args, cwd=ROOT, env={**slurm, "SLURM_CONF": str(tmp_path / "slurm.conf")})
    line = one_line_error(
        unreachable, "hydra/launcher=align_lab_slurm: Slurm does not answer from this shell"
    )
    assert "(`sinfo`: " in line and "check that `sinfo` works here (SLURM_CONF" in line, line
    refused = forked_cli([*args, "hydra.launcher.partition=no_such_partition"], cwd=ROOT, env=slurm)
    line = one_line_error(
        refused, "hydra/launcher=align_lab_slurm: sbatch refused the sweep's jobs (sbatch: "
    )
    assert "no_such_partition" in line.lower() or "partition" in line.lower(), line
    assert not (sweep / "study.json").exists()
    queued = subprocess.run(
        ["squeue", "-h", "-o", "%o"], env={**os.environ, **slurm}, capture_output=True, text=True
    )
    assert str(sweep) not in queued.stdout, queued.stdout


@pytest.mark.parametrize("hardware", ["cpu", "cpu_ddp"])
def test_a_bad_run_after_a_good_one_in_a_default_sweep_is_one_line_before_any_compute(
    hardware, tmp_path, forked_cli
):
    # the basic sweeper's order: (ppo, lr 1e-3), (ppo, lr -1), (rloo, 1e-3), (rloo, -1); the good run
    # comes first. Every run is checked before the first trains: no run folder, no stage built.
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    args = ["-m", "algo=ppo,rloo", "algo.lr=1e-3,-1", f"hardware={hardware}", "hardware.num_threads=1"]
    result = forked_cli([*args, f"cache_dir={cache}", f"hydra.sweep.dir={sweep}"], cwd=ROOT)
    one_line_error(
        result,
        "align_lab: error: algo.lr=-1.0: must be in (0, 1)",
    )
    assert not sweep.exists(), "a refused sweep leaves no folder (not even multirun.yaml)"
    assert not cache.exists(), "nothing was computed"


def test_a_good_default_sweep_runs_every_run_in_this_process(tmp_path, cache_dir, forked_cli):
    sweep = tmp_path / "sweep"
    args = ["-m", *SMALL, "train.steps=1", "seed=0,1", "hardware.num_threads=1"]
    result = forked_cli([*args, f"cache_dir={cache_dir}", f"hydra.sweep.dir={sweep}"], cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    statuses = [
        json.loads((sweep / f"{i}_reinforce_pp_seed{i}" / "summary.json").read_text()) for i in (0, 1)
    ]
    assert [s["status"] for s in statuses] == ["completed", "completed"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--claim", "rloo beats ppo"], "claim 'rloo beats ppo': not understood"),
        (["--claim", "rloo > nonesuch on eval/kl"], "no algorithm 'nonesuch'"),
        (["/no/such/folder"], "no such folder: /no/such/folder"),
        ([str(ROOT / "README.md")], f"{ROOT / 'README.md'}: a file, not a folder; give run or study folders"),
    ],
)
def test_compare_refuses_bad_input_in_one_line(args, message, tmp_path):
    cmd = [sys.executable, "-m", "align_lab.compare", str(tmp_path), *args]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    one_line_error(result, "align_lab.compare: error: ", message)


def test_an_empty_jsonl_is_reported_as_empty(tmp_path):
    from align_lab.tasks.data_files import read_local

    empty = tmp_path / "prefs.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match=r"path=.*prefs.jsonl: the file is empty \(no rows\)$"):
        read_local(str(empty), "path")


# ---------------------------------------------------------------- faults on a finished run
@pytest.fixture(scope="module")
def finished(tmp_path_factory, forked_cli) -> tuple[Path, list[str]]:
    """A small completed CLI run with checkpoints every step: (folder, its command's arguments)."""
    root = tmp_path_factory.mktemp("finished")
    args = [*SMALL, f"cache_dir={root / 'cache'}", f"hydra.run.dir={root / 'run'}"]
    result = forked_cli(args, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run", args


def copy_of(finished, tmp_path) -> tuple[Path, list[str]]:
    run_dir, args = finished
    mine = tmp_path / "run"
    shutil.copytree(run_dir, mine)
    return mine, [a if not a.startswith("hydra.run.dir=") else f"hydra.run.dir={mine}" for a in args]


def test_a_run_ends_by_saying_what_it_found_and_where(finished):
    run_dir, _ = finished
    log = (run_dir / "app.log").read_text()
    assert "completed in" in log and "gold reward" in log and "(SFT " in log and "KL to SFT" in log
    assert f"run folder: {run_dir}" in log and "python -m align_lab.compare" in log
    assert "\r" not in log  # no progress-bar redraws in a log


@pytest.mark.parametrize("size", [0, 1000, -100])
def test_a_damaged_checkpoint_of_a_completed_run_loses_nothing(finished, tmp_path, size, forked_cli):
    run_dir, args = copy_of(finished, tmp_path)
    state = next((run_dir / "checkpoints").glob("state-*.pt"))
    data = state.read_bytes()
    state.write_bytes(data[:size] if size >= 0 else data[:size])
    before = {f: (run_dir / f).read_bytes() for f in ("summary.json", "metrics.jsonl")}
    result = forked_cli(args, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already completed" in result.stderr
    assert {f: (run_dir / f).read_bytes() for f in before} == before


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing", "empty"])
def test_a_damaged_checkpoint_of_an_unfinished_run_is_one_line_and_keeps_the_metrics(
    finished, tmp_path, damage, forked_cli
):
    run_dir, args = copy_of(finished, tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    state = next((run_dir / "checkpoints").glob("state-*.pt"))
    if damage == "truncate":
        state.write_bytes(state.read_bytes()[:1000])
    elif damage == "garbage":
        state.write_bytes(b"not a checkpoint" * 100)
    elif damage == "missing":
        state.unlink()
    else:
        state.write_bytes(b"")
    metrics = (run_dir / "metrics.jsonl").read_bytes()
    result = forked_cli(args, cwd=ROOT)
    line = one_line_error(
        result, "align_lab: error: checkpoint ", str(state), f"delete {run_dir / 'checkpoints'}"
    )
    assert "Traceback" not in line
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics


@pytest.mark.parametrize("damage", ["empty", "garbage", "folder"])
def test_a_damaged_checkpoint_pointer_is_one_line_naming_it_and_its_hint_resumes(
    finished, tmp_path, damage, forked_cli
):
    """checkpoints/last empty, holding another name, or a folder: admitted, then a traceback at the resume's
    first step before (issue 73 hunt); now one line naming the pointer, and writing the checkpoint's name
    into it, as the line says, resumes the run."""
    run_dir, args = copy_of(finished, tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    pointer = run_dir / "checkpoints" / "last"
    state = next((run_dir / "checkpoints").glob("state-*.pt"))
    pointer.unlink()
    if damage == "folder":
        pointer.mkdir()
    else:
        pointer.write_text("" if damage == "empty" else "../../etc/passwd")
    metrics = (run_dir / "metrics.jsonl").read_bytes()
    result = forked_cli(args, cwd=ROOT)
    line = one_line_error(result, f"align_lab: error: checkpoint pointer {pointer} is ")
    assert "Traceback" not in result.stderr
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics
    if damage == "folder":  # its only hint deleted the checkpoint beside it (second done-when hunt, f8)
        assert f"it sits beside {state.name}: put a file holding that name in its place" in line, line
        pointer.rmdir()
    else:
        assert "write that name into it" in line and state.name in line, line
    pointer.write_text(state.name)
    result = forked_cli([*args, "train.steps=4"], cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_state_file_replaced_by_a_folder_is_one_line_before_compute_naming_a_whole_one_beside(
    finished, tmp_path, forked_cli
):
    """Hunt of 2026-12-04, f9: the state file `last` names replaced by a folder was admitted, its stages
    looked up, then "checkpoint ... is unreadable (IsADirectoryError ...)" with no way out, and summary.json
    said failed. Now one line at admission, the whole state file beside it named, every file as it was."""
    run_dir, args = copy_of(finished, tmp_path)
    summary = {**json.loads((run_dir / "summary.json").read_text()), "status": "interrupted"}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    state = next((run_dir / "checkpoints").glob("state-*.pt"))
    older = state.with_name("state-00000001.pt")
    shutil.copy(state, older)
    state.unlink()
    state.mkdir()
    before = (run_dir / "summary.json").read_bytes(), (run_dir / "metrics.jsonl").read_bytes()
    line = one_line_error(forked_cli(args, cwd=ROOT), f"align_lab: error: checkpoint {state} (named by ")
    assert line.endswith(
        f"is a folder, not a file; it sits beside {older.name}, whole: write that name into "
        f"{run_dir / 'checkpoints' / 'last'} to resume from it, or delete {run_dir / 'checkpoints'} to start "
        "the run again from step 0"
    ), line
    assert ((run_dir / "summary.json").read_bytes(), (run_dir / "metrics.jsonl").read_bytes()) == before


def test_a_removed_pointer_beside_a_whole_checkpoint_resumes_from_it_in_one_line(
    finished, tmp_path, forked_cli
):
    """Twenty-seventh hunt, case 11: `checkpoints/last` removed (by hand, a sync tool, or a kill between a
    first checkpoint and its pointer) beside a whole state file: the run started again from step 0 with no
    word, its steps lost. It resumes from that file, said in one warning line."""
    run_dir, args = copy_of(finished, tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    state = next((run_dir / "checkpoints").glob("state-*.pt"))
    (run_dir / "checkpoints" / "last").unlink()
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    result = forked_cli([*args, f"train.steps={len(rows) + 1}"], cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    said = (
        f"warning: {run_dir / 'checkpoints' / 'last'} is missing beside {state.name}: the run resumes from it"
    )
    assert said in result.stderr, result.stderr[-3000:]
    segments = json.loads((run_dir / "summary.json").read_text())["segments_s"]
    assert len(segments) == len(summary["segments_s"]) + 1, segments  # resumed: not a fresh start
    assert (run_dir / "metrics.jsonl").read_text().splitlines()[: len(rows)] == rows


def test_a_pointer_naming_a_removed_checkpoint_says_the_one_beside_it(finished, tmp_path, forked_cli):
    """Twenty-sixth hunt, case 40: `last` naming a state file that is gone (removed by hand, a sync tool)
    beside a whole one: the only hint was to delete the checkpoints, 15 steps of them. The line names the
    one beside it, and writing its name into the pointer, as the line says, resumes the run."""
    run_dir, args = copy_of(finished, tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    pointer, state = run_dir / "checkpoints" / "last", next((run_dir / "checkpoints").glob("state-*.pt"))
    pointer.write_text("state-00000099.pt")
    result = forked_cli(args, cwd=ROOT)
    line = one_line_error(
        result, f"align_lab: error: checkpoint {run_dir / 'checkpoints' / 'state-00000099.pt'}"
    )
    assert (
        f"is missing; it sits beside {state.name}: write that name into it to resume from there, or " in line
    )
    pointer.write_text(state.name)
    assert forked_cli([*args, "train.steps=4"], cwd=ROOT).returncode == 0


@pytest.mark.parametrize(
    "change, message",
    [
        ("seed=1", "seed=1: the run in {run} to resume has seed=0"),
        ("algo.kl_coef=0.5", "algo.kl_coef=0.5: the checkpoint in {run}/checkpoints was trained with"),
        ("sft.lr=0.001", "sft.lr=0.001: the run in {run} to resume has sft.lr=0.003"),
        # eighteenth hunt: another dtype trained the rest of the run in it, saying nothing; another backend
        # (or ZeRO stage) met a checkpoint it cannot read: a 53-91-line traceback
        ("hardware.dtype=bf16", "hardware.dtype=bf16: the run in {run} to resume has hardware.dtype=fp32"),
        (
            "hardware.backend=deepspeed",
            "hardware.backend=deepspeed: the run in {run} to resume has hardware.backend=torch",
        ),
        (
            "hardware.zero_stage=3",
            "hardware.zero_stage=3: the run in {run} to resume has hardware.zero_stage=2",
        ),
        # eleventh hunt: hardware.processes=2 asked for it, then this refusal said "the same config"
        (
            "rollout.seed_per_sample=true",
            "rollout.seed_per_sample=true: the run in {run} to resume sampled with "
            "rollout.seed_per_sample=false, as one process does; it goes on as it started, on "
            "hardware.processes=1",
        ),
    ],
)
def test_a_resume_with_another_config_is_one_line_and_touches_nothing(
    finished, tmp_path, change, message, forked_cli
):
    """A run stopped before it completed (here: its summary says interrupted) resumes only with the
    config that made its checkpoint; steps, cadences, hardware and tracker may change."""
    run_dir, args = copy_of(finished, tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = forked_cli([*args, change], cwd=ROOT)
    one_line_error(result, message.format(run=run_dir))
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("how", ["link", "copy"])
def test_another_runs_checkpoint_in_a_runs_folder_is_named_as_another_runs(
    finished, tmp_path, how, forked_cli
):
    """Eighteenth hunt: a run's state file replaced by a link to another run's (of seed 1) said "resume with
    seed=1", and that command then blamed config.resolved.yaml as edited; a link out of the checkpoints
    folder is refused naming it, and a checkpoint whose seed differs from its folder's record is named as
    another run's."""
    import torch

    run_dir, args = copy_of(finished, tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    (state,) = (run_dir / "checkpoints").glob("state-*.pt")
    other = tmp_path / "other" / state.name
    other.parent.mkdir()
    saved = torch.load(state, weights_only=False)
    torch.save({**saved, "identity": {**saved["identity"], "seed": 1}}, other)
    state.unlink()
    if how == "link":
        state.symlink_to(other)
        said = f"checkpoint {state} is a link to {other}, outside this run's checkpoints folder"
    else:
        shutil.copy(other, state)
        said = "was trained by a run of seed=1, but this folder's record"
    one_line_error(forked_cli(args, cwd=ROOT), said, "the run again from step 0")


def test_a_checkpoint_holding_another_step_than_its_name_is_one_line(finished, tmp_path, forked_cli):
    """Nineteenth hunt: a file copied in under the name of step 2 held step 4: the run "completed" with
    steps 3-4 neither trained nor logged."""
    import torch

    run_dir, args = copy_of(finished, tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    (state,) = (run_dir / "checkpoints").glob("state-*.pt")
    earlier = state.with_name("state-00000002.pt")
    torch.save(torch.load(state, weights_only=False), earlier)  # the last step's state, named step 2
    state.unlink()
    (run_dir / "checkpoints" / "last").write_text(earlier.name)
    one_line_error(forked_cli(args, cwd=ROOT), f"checkpoint {earlier} holds step 3, not the 2 its name says")


def test_a_run_recorded_before_the_clip_node_resumes_from_its_flat_keys(finished, tmp_path, forked_cli):
    """A run folder written before algo.clip became a node (its records hold clip, clip_high, dual_clip,
    log_ratio_clamp flat) resumes: the same config under the old names, not "another config"."""
    import yaml

    from align_lab.aliases import flat

    run_dir, args = copy_of(finished, tmp_path)
    for name in ("config.resolved.yaml", ".hydra/config.yaml"):
        config = yaml.safe_load((run_dir / name).read_text())
        assert isinstance(config["algo"]["clip"], dict), name  # this code records the node
        (run_dir / name).write_text(yaml.safe_dump({**config, "algo": flat(config["algo"])}, sort_keys=False))
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    result = forked_cli(args, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_a_completed_run_of_another_config_is_never_overwritten(finished, tmp_path, forked_cli):
    run_dir, args = copy_of(finished, tmp_path)
    before = (run_dir / "summary.json").read_bytes()
    result = forked_cli([*args, "algo.kl_coef=0.5"], cwd=ROOT)
    one_line_error(result, f"hydra.run.dir={run_dir}: holds a completed run of another config")
    assert (run_dir / "summary.json").read_bytes() == before
    assert (run_dir / "metrics.jsonl").exists() and (run_dir / "checkpoints").exists()
    assert (run_dir / ".hydra" / "overrides.yaml").read_text().count("kl_coef") == 0  # .hydra/ untouched


@pytest.mark.parametrize("damage", ["truncate", "manifest", "missing"])
def test_a_damaged_stage_cache_entry_is_rebuilt_with_one_line(finished, tmp_path, damage, forked_cli):
    run_dir, args = finished
    cache = tmp_path / "cache"
    shutil.copytree(run_dir.parent / "cache", cache)
    sft = next(p for p in (cache / "sft").iterdir() if p.is_dir())
    weights = sft / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "manifest":
        (sft / ".done").write_text("{not json")
    else:
        weights.unlink()
    args = [a for a in args if not a.startswith(("cache_dir=", "hydra.run.dir="))]
    result = forked_cli([*args, f"cache_dir={cache}", f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    said = [line for line in result.stderr.splitlines() if "stage cache" in line]
    assert len(said) == 1 and f"{sft} is damaged" in said[0] and "rebuilding it" in said[0], said
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"


def test_a_torn_last_metrics_line_is_reported_by_compare(finished, tmp_path, forked_cli):
    run_dir, _ = copy_of(finished, tmp_path)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "train/rew')
    result = forked_cli([str(tmp_path), "--out", str(tmp_path / "out")], module="align_lab.compare")
    assert result.returncode == 0, result.stderr
    assert "metrics.jsonl: its last line is half-written (left out)" in result.stdout


# ---------------------------------------------------------------- signals: interrupted, resumable
def _as_in_a_terminal() -> None:
    """SIGINT as a foreground command gets it: a test suite started in the background (`cmd &`, nohup)
    hands its children SIGINT ignored, and a run keeps an ignored SIGINT ignored, as it should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    "signum,code", full_but([(signal.SIGTERM, 143), (signal.SIGINT, 130)], {(signal.SIGTERM, 143)})
)
def test_a_signal_marks_the_run_interrupted_and_a_rerun_resumes_it(tmp_path, cache_dir, signum, code):
    run_dir = tmp_path / "run"
    args = [*SMALL, "train.steps=400", f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "align_lab", *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_in_a_terminal,
    )
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "last").exists():  # training has begun
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.2)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.startswith("align_lab:")]
    assert proc.returncode == code, err[-3000:]
    # the exact command that resumes it: the same arguments with this run's folder (a plain rerun would
    # start over in a new timestamped one)
    step = (run_dir / "checkpoints" / "last").read_text().split("-")[1].split(".")[0]
    resume = shell_command("align_lab", *args, cwd=ROOT)  # the interpreter's absolute path, in ROOT
    name = signal.Signals(signum).name
    assert lines[-1] == f"align_lab: interrupted by {name}; resume from step {int(step)} with: {resume}"
    assert "Traceback" not in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["error"] == lines[-1].removeprefix("align_lab: ")
    assert (run_dir / "metrics.jsonl").read_text().count("\n") >= 1  # what was logged stays


def test_an_interrupted_run_resumes_to_the_same_metrics_as_an_uninterrupted_one(
    tmp_path, cache_dir, forked_cli
):
    args = [*SMALL, "train.steps=40", f"cache_dir={cache_dir}"]
    straight = tmp_path / "straight"
    assert forked_cli([*args, f"hydra.run.dir={straight}"], cwd=ROOT).returncode == 0
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "align_lab", *args, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    while not (run_dir / "checkpoints" / "last").exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 143
    said = [line for line in err.splitlines() if line.startswith("align_lab: interrupted by SIGTERM")]
    command = said[-1].split(" with: ", 1)[1]  # the command the line names, typed as printed, from `/`
    assert subprocess.run(["bash", "-c", command], cwd="/", capture_output=True, timeout=600).returncode == 0

    def without_time(path: Path) -> list[dict]:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/", "memory/"))} for r in rows]

    assert without_time(run_dir / "metrics.jsonl") == without_time(straight / "metrics.jsonl")


# ---------------------------------------------------------------- a full disk, an unwritable folder
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "checkpoints/state-00000001.pt.tmp")


def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_no_tmp(tmp_path, cache_dir, monkeypatch):
    import align_lab.train.checkpoint_io as checkpoint_io
    from align_lab.run.summary import RunStopped

    monkeypatch.setattr(checkpoint_io.torch, "save", _enospc)
    with pytest.raises(RunStopped) as e:
        run_in_process([], tmp_path, cache_dir)
    assert str(e.value).startswith(
        "error: no space left on the device writing checkpoints/state-00000001.pt.tmp"
    )
    assert "\n" not in str(e.value) and e.value.exit_code == 2
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "no space left" in summary["error"]
    assert not list(tmp_path.rglob("*.tmp")), list(tmp_path.rglob("*.tmp"))
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") >= 1  # the step before was logged


def test_save_checkpoint_leaves_no_half_file_when_interrupted(tmp_path, monkeypatch):
    import align_lab.train.checkpoint_io as checkpoint_io

    checkpoint_io.save_checkpoint(tmp_path, {"step": 1})
    monkeypatch.setattr(checkpoint_io.torch, "save", _enospc)
    with pytest.raises(OSError):
        checkpoint_io.save_checkpoint(tmp_path, {"step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last", "state-00000001.pt"]
    assert checkpoint_io.checkpoint_step(tmp_path) == 1


def test_an_unwritable_run_folder_is_one_line(tmp_path, cache_dir, monkeypatch):
    from align_lab.run.run_folder import RunFolder
    from align_lab.run.summary import RunStopped

    def refuse(folder, summary):
        raise PermissionError(errno.EACCES, "Permission denied", str(folder.path / "summary.json.tmp"))

    monkeypatch.setattr(RunFolder, "write_summary", refuse)
    with pytest.raises(RunStopped, match=r"^error: cannot write .*summary.json.tmp \(Permission denied\)$"):
        run_in_process([], tmp_path, cache_dir)


def _read_only_mounts_work() -> bool:
    """A real read-only folder (a read-only bind mount in a private mount namespace): the tests run as
    root, for whom chmod 555 does not stop writes."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "mount", "--bind", "/", "/"], capture_output=True)
    return probe.returncode == 0


def _run_cli_read_only(folder, args: list[str]):
    """`python -m align_lab <args>` with `folder` mounted read-only for that process only."""
    import shlex
    import subprocess
    import sys

    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "align_lab", *args])
    script = f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} && exec {command}"
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
@pytest.mark.parametrize("completed", [False, True])
def test_a_read_only_run_folder_is_one_line_and_loses_nothing(completed, tmp_path, cache_dir, forked_cli):
    run_dir = tmp_path / "run"
    args = [*SMALL, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "hardware.num_threads=1"]
    if completed:  # a finished run's folder, later read-only (an archive, a full quota)
        assert forked_cli(args, cwd=ROOT).returncode == 0
    else:
        run_dir.mkdir()
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = _run_cli_read_only(run_dir, args)
    one_line_error(result, f"cannot write {run_dir}", "Read-only file system", "hydra.run.dir")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_a_run_refused_as_the_folder_is_in_use_leaves_the_live_runs_files(tmp_path):
    """Two commands in one second into one default folder: the second, refused (`in use by a run of pid N`),
    removed the folder's run.lock and app.log where the first had not yet written its .hydra/: the live
    run's lock file gone, its holder unnamed to a third command (hunt of 2026-12-04, c80's)."""
    import subprocess
    import sys

    from align_lab.folder import holder
    from align_lab.run.refused import remove_unused_run_dir

    live = tmp_path / "live"
    (live / ".hydra").mkdir(parents=True)
    (live / "app.log").write_text("")
    code = "import sys, time; from align_lab.folder import claim; lock = claim(sys.argv[1]); print('held')"
    code += "; sys.stdout.flush(); time.sleep(60)"
    first = subprocess.Popen([sys.executable, "-c", code, str(live)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline() == "held\n"
        remove_unused_run_dir(live)  # the second command's refusal
        assert (live / "run.lock").is_file() and (live / "app.log").is_file()
        assert holder(live) == f"pid {first.pid} on {__import__('socket').gethostname()}"
    finally:
        first.kill()
        first.wait()


def test_a_refused_run_keeps_a_folder_that_already_held_files(tmp_path):
    import logging

    from align_lab.run.refused import remove_unused_run_dir

    made = tmp_path / "made"
    (made / ".hydra").mkdir(parents=True)
    (made / "app.log").write_text("")
    (made / "run.lock").write_text("")  # the run's own lock, taken before it was refused
    hydras = logging.FileHandler(made / "app.log", delay=True)  # as Hydra's job logging writes app.log
    logging.getLogger().addHandler(hydras)
    try:
        remove_unused_run_dir(made)
        logging.getLogger("torch").warning(
            "FakeTensor cache stats:"
        )  # at exit (seventeenth hunt: a traceback)
    finally:
        logging.getLogger().removeHandler(hydras)
    assert not made.exists() and hydras.stream is None
    kept = tmp_path / "kept"
    (kept / ".hydra").mkdir(parents=True)
    (kept / "metrics.jsonl").write_text("{}\n")
    remove_unused_run_dir(kept)
    assert (kept / "metrics.jsonl").exists()
    # issue 73 hunt: a folder holding only a .hydra/ of its own (another Hydra app's output, or a user's
    # file in it) was deleted whole by a refused run; align_lab writes .hydra/ only once a run is admitted
    for name, theirs in (("theirs", ".hydra/config.yaml"), ("file", ".hydra"), ("nested", ".hydra/a/b.txt")):
        folder = tmp_path / name
        (folder / theirs).parent.mkdir(parents=True, exist_ok=True)
        (folder / theirs).write_text("mine\n")
        (folder / "app.log").write_text("")
        remove_unused_run_dir(folder)
        assert (folder / theirs).read_text() == "mine\n", name


@pytest.mark.fast
@pytest.mark.parametrize("value", [".", ""])
def test_a_refused_run_in_the_folder_it_runs_in_leaves_that_folder_as_it_was(tmp_path, forked_cli, value):
    """Issue 73 sixth hunt: `hydra.run.dir=.` (or empty: an unset $RUN) in an empty folder, refused: the
    folder the user was in was removed with Hydra's empty app.log, and their shell's next command failed."""
    here = tmp_path / "here"
    here.mkdir()
    args = [f"hydra.run.dir={value}", "algo.clip.low=1.5", f"cache_dir={tmp_path / 'cache'}"]
    result = forked_cli(args, cwd=here)
    said = "algo.clip.low=1.5" if value else "hydra.run.dir=: an empty folder"  # 41st hunt, 34: before Hydra
    assert result.returncode == 2 and said in result.stderr, result.stderr[-2000:]
    assert here.is_dir() and list(here.iterdir()) == []


def test_a_reward_function_that_returns_nan_stops_in_one_line_naming_it(tmp_path):
    """A NaN score would reach the gradient as NaN: the run stops at the first step, in one line naming
    reward.path; the summary says failed."""
    (tmp_path / "nan_reward.py").write_text(
        "def score(prompts, responses):\n    return [float('nan')] * len(responses)\n"
    )
    run_dir = tmp_path / "run"
    small = [o for o in SMALL if not o.startswith("reward.")]
    args = [*small, "reward=function", "reward.path=nan_reward:score", f"hydra.run.dir={run_dir}"]
    result = run_cli([*args, f"cache_dir={tmp_path / 'cache'}"], cwd=ROOT, env={"PYTHONPATH": str(tmp_path)})
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # stage progress, then the error
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    head = (
        "align_lab: error: reward.path=nan_reward:score: score 0 is nan: must be finite; fix it, then resume"
    )
    assert lines[-1].startswith(head + " from step 0 with: ")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


def _inject(tmp_path, code: str) -> dict:
    """The environment of a CLI run whose Python first runs `code` (a sitecustomize module): a fault
    put inside the real command, since no learning rate AdamW accepts (0 < lr < 1) makes the toy world
    non-finite."""
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(code)
    return {"PYTHONPATH": str(tmp_path / "inject")}


SFT_NAN_AT_STEP_2 = """
import align_lab.train.sft as sft

term, calls = sft.nll_term, []


def nll_term(model, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # the second SFT batch: its forward overflows
        model.lm_head.weight.data.fill_(float("inf"))
    return term(model, *args, **kwargs)


sft.nll_term = nll_term
"""


def test_a_diverging_sft_stage_stops_in_one_line_and_caches_nothing(tmp_path):
    """An SFT loss that stops being finite (here the weights overflow before the second batch) stops
    the stage at that step with one line naming the key to lower, and no SFT entry (a NaN model) is
    left in the cache."""
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    args = [*SMALL, f"hydra.run.dir={run_dir}", f"cache_dir={cache}"]
    result = run_cli(args, cwd=ROOT, env=_inject(tmp_path, SFT_NAN_AT_STEP_2))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[-1] == "align_lab: error: sft diverged at step 2 (loss nan): lower sft.lr", lines[-1]
    assert not [p for p in (cache / "sft").iterdir() if p.is_dir()]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


POLICY_GRADIENT_NAN_AT_UPDATE_2 = """
from align_lab.train.backend import TorchUpdater

backward = TorchUpdater.backward


def nan_at_second_update(self, loss):
    backward(self, loss)
    if self.updates == 1:  # one optimiser step taken: the next gradient is not finite
        next(p for p in self.model.parameters() if p.grad is not None).grad.fill_(float("nan"))


TorchUpdater.backward = nan_at_second_update
"""


def test_a_diverging_policy_stops_in_one_line_naming_algo_lr(tmp_path):
    """A policy gradient that stops being finite stops the run in one line naming the optimiser step
    and algo.lr; the weights were not stepped into NaN and the summary says failed."""
    run_dir = tmp_path / "run"
    args = [*SMALL, f"hydra.run.dir={run_dir}", f"cache_dir={tmp_path / 'cache'}"]
    result = run_cli(args, cwd=ROOT, env=_inject(tmp_path, POLICY_GRADIENT_NAN_AT_UPDATE_2))
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # stage progress, then the error
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    expected = (
        "policy optimisation diverged at optimiser step 2 (gradient norm nan): lower algo.lr (now 0.001)"
    )
    assert lines[-1] == f"align_lab: error: {expected}", lines[-1]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


@pytest.mark.parametrize(
    "engine",
    [[], ["rollout.use_generate=true"], ["rollout.dtype=bfloat16"]],
    ids=["kv_cache_loop", "generate", "bfloat16_copy"],
)
def test_weights_that_overflow_stop_the_next_rollout_in_one_line_naming_algo_lr(
    engine, tmp_path, cache_dir, monkeypatch
):
    """An update with a finite gradient can still leave weights whose logits are not finite (issue 25:
    algo.lr=1e6, refused now, ended in torch's 'probability tensor contains either inf, nan or element
    < 0' from inside the sampler). Here the first optimiser step overflows one row of the LM head; the next
    rollout stops the run in one line naming the step and algo.lr, status failed."""
    import torch

    from align_lab.run.summary import RunStopped
    from align_lab.train.backend import TorchUpdater

    step = TorchUpdater.step

    def step_into_overflow(self, apply=True):
        norm = step(self, apply)  # finite: the gradient check passes
        with torch.no_grad():
            self.model.lm_head.weight[5].fill_(float("inf"))  # logits of token 5: inf or nan
        return norm

    monkeypatch.setattr(TorchUpdater, "step", step_into_overflow)
    one_update_per_step = ["train.minibatch_size=16"]  # the next forward after an update is a rollout
    with pytest.raises(RunStopped) as e:
        run_in_process([*one_update_per_step, *engine], tmp_path, cache_dir)
    message = str(e.value)
    expected = "error: policy optimisation diverged at step 2 (non-finite logits while sampling)"
    assert message == f"{expected}: lower algo.lr (now 0.001)", message
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "non-finite logits" in summary["error"]
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 1  # step 1 was logged, step 2 not


@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
def test_a_really_full_disk_while_checkpointing_is_enospc_naming_the_file(tmp_path):
    """A real full file system (a 2 MB tmpfs in a private mount namespace): torch.save raises a
    RuntimeError ("unexpected pos"), which save_checkpoint turns into the ENOSPC naming the file that
    the run reports in one line; no half-written file stays."""
    folder = tmp_path / "small"
    folder.mkdir()
    code = (
        "import errno, sys, torch; from pathlib import Path; "
        "from align_lab.train.checkpoint_io import save_checkpoint\n"
        "try:\n"
        f"    save_checkpoint(Path('{folder}') / 'checkpoints', {{'step': 1, 'w': torch.zeros(1 << 20)}})\n"
        "except OSError as e:\n"
        "    print('ENOSPC' if e.errno == errno.ENOSPC else e.errno, e.filename)\n"
    )
    script = f'mount -t tmpfs -o size=2m tmpfs {folder} && exec {sys.executable} -c "{code}"'
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.split() == ["ENOSPC", f"{folder}/checkpoints/state-00000001.pt.tmp"], result.stderr


@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
def test_a_full_disk_in_the_stage_cache_is_one_line_and_keeps_the_other_entries(tmp_path):
    """cache_dir on a real 256 KB tmpfs (a private mount namespace): the tokenizer entry fits, the SFT
    model's save_pretrained does not (safetensors raises its own error for it, not an OSError). One line
    names the entry being written; that entry is cleaned, the tokenizer's kept, the run says failed."""
    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    cache.mkdir()
    overrides = [*SMALL, f"cache_dir={cache}", f"hydra.run.dir={run_dir}"]
    app = " ".join([sys.executable, "-m", "align_lab", *overrides])
    script = (
        f"mount -t tmpfs -o size=256k tmpfs {cache} || exit 9; {app}; echo RC=$? >&2; "
        f"find {cache} -mindepth 2 -maxdepth 2 -not -name '*.lock' -printf '%P\\n'"
    )
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT)
    errors = [line for line in result.stderr.splitlines() if line.startswith(("align_lab:", "RC=", "Trace"))]
    assert errors[-1] == "RC=2", result.stderr[-3000:]
    assert errors[:-1] == [errors[0]] and "no space left on the device writing" in errors[0], errors
    assert f"{cache}/sft/" in errors[0] and ".tmp-" in errors[0]
    entries = result.stdout.split()
    assert len(entries) == 1 and entries[0].startswith("tokenizer/"), entries  # no half-built sft entry
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "no space left" in summary["error"]


@FULL
@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
def test_a_disk_that_fills_as_the_run_starts_is_at_most_two_lines_naming_the_file(tmp_path, cache_dir):
    """Twentieth hunt, case 10: the run folder's disk with 24 KB left: 412 lines, each logged line's
    40-frame `--- Logging error ---` traceback (app.log could not be written), then "no space left on the
    device writing a file". Now app.log's failure is said once, and the stop names the file. The write
    that fails first moves with the space left: 8 KiB (the .hydra record: case 11, Hydra's `Error
    executing job` line first, the folder left), 20 to 32 KiB (config.resolved.yaml, summary.json), and
    without checkpoints 36 and 44 KiB (eval_samples.jsonl, case 30: "a file"), each run on its own."""
    small, run_dir = tmp_path / "small", tmp_path / "small" / "run"
    small.mkdir()
    overrides = [*SMALL, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"]
    app = " ".join([sys.executable, "-m", "align_lab", *overrides])
    cases = [(8, 1), (20, 1), (24, 1), (28, 1), (32, 1), (36, 0), (44, 0)]  # KiB left, checkpoint_every
    runs = "; ".join(
        f"rm -rf {run_dir} {small}/filler; head -c {1024 * (1024 - kib)} /dev/zero > {small}/filler; "
        f"{app} train.checkpoint_every={every}; echo RC=$? >&2"
        for kib, every in cases
    )
    script = f"mount -t tmpfs -o size=1m tmpfs {small} || exit 9; {runs}"
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert "Logging error" not in result.stderr and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Error executing job" not in result.stderr, result.stderr[-3000:]  # case 11: Hydra's line too
    said = [line for line in result.stderr.splitlines() if line.startswith(("align_lab:", "RC="))]
    warning = (
        f"align_lab: warning: cannot write {run_dir}/app.log (No space left on device): the run's log lines "
        "reach this terminal only"
    )
    assert warning in said, said
    ends = [n for n, line in enumerate(said) if line.startswith("RC=")]
    assert [said[n] for n in ends] == ["RC=2"] * len(cases), said
    for n in ends:
        error = said[n - 1]
        assert error.startswith("align_lab: error: ") and f"{run_dir}/" in error.split("; ")[0], said
        assert "a file" not in error, said
        assert said[n - 2] in (warning, "RC=2") if n >= 2 else True, said
    assert any(f"writing {run_dir}/eval_samples.jsonl;" in line for line in said), said


@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
def test_compare_on_a_full_disk_is_one_line_naming_the_file_and_leaves_no_half_written_file(
    finished, tmp_path
):
    """Twentieth hunt, case 34: `compare --out` on a disk with 40 KB left: a 55-62-line traceback
    through PIL and matplotlib, rc 1, a 0-byte .png left. Twenty-first hunt, case 6: with more left, a
    report.html cut mid-image stayed beside the line. Each space left fails another file."""
    small = tmp_path / "small"
    small.mkdir()
    run_dir, _ = finished
    command = f"{sys.executable} -m align_lab.compare {run_dir} --out {small}/rep"
    runs = "; ".join(
        f"rm -rf {small}/rep {small}/filler; head -c {1024 * (1024 - kib)} /dev/zero > {small}/filler; "
        f"{command} >/dev/null; echo RC=$? >&2; tail -c 7 {small}/rep/report.html 2>/dev/null; "
        f"find {small}/rep -size 0 -type f -o -name '.*.tmp'"
        for kib in (40, 150, 250, 400)
    )
    script = f"mount -t tmpfs -o size=1m tmpfs {small} || exit 9; {runs}"
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT)
    said = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for error, code in zip(said[::2], said[1::2], strict=True):
        assert code == "RC=2", said
        assert error.startswith(f"align_lab.compare: error: cannot write {small}/rep/"), said
        assert error.endswith(" (No space left on device); free space there, or choose another --out"), said
    assert result.stdout.replace("</html>", "").strip() == "", result.stdout  # whole, or not there


@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
def test_a_sweep_on_a_full_disk_names_each_runs_folder(tmp_path, cache_dir):
    """Twenty-first hunt, case 18: a `-m` sweep into a folder on a disk with 8 KB left: "run #0 (seed=0):
    failed: cannot write the run folder (No space left on device)", no path (a single run names it)."""
    small = tmp_path / "small"
    small.mkdir()
    args = ["-m", *SMALL, "seed=0,1", f"cache_dir={cache_dir}", f"hydra.sweep.dir={small}/sw"]
    app = " ".join([sys.executable, "-m", "align_lab", *args])
    script = (
        f"mount -t tmpfs -o size=1m tmpfs {small} || exit 9; "
        f"head -c {1024 * 1016} /dev/zero > {small}/filler; {app}; echo RC=$? >&2"
    )
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT)
    failed = [line for line in result.stdout.splitlines() if ": failed: " in line]
    assert len(failed) == 2, result.stdout[-3000:] + result.stderr[-3000:]
    for num, line in enumerate(failed):
        assert f"failed: cannot write {small}/sw/{num}_" in line and "No space left on device" in line, line


@FULL
@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
def test_a_local_sweep_on_a_full_disk_says_each_runs_own_line(tmp_path, cache_dir):
    """Twenty-first hunt, case 22: a `hardware=submitit_local` sweep whose disk fills at a checkpoint: the
    job could not write its result either (the same disk), and the line was "RuntimeError: job 31699
    ended without a result: OSError: [Errno 28] No space left on device": no file, no resume step."""
    small = tmp_path / "small"
    small.mkdir()
    args = ["-m", "hardware=submitit_local", "hardware.max_parallel=1", *SMALL, "seed=0,1"]
    app = " ".join(
        [sys.executable, "-m", "align_lab", *args, f"cache_dir={cache_dir}", f"hydra.sweep.dir={small}/sw"]
    )
    fill = f"head -c 6000000 /dev/zero > {small}/filler"  # room for run 0's first checkpoint, not its second
    script = f"mount -t tmpfs -o size=8m tmpfs {small} || exit 9; {fill}; {app}"
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT)
    failed = [line for line in result.stdout.splitlines() if ": failed: " in line]
    assert result.returncode == 1 and len(failed) == 2, result.stdout[-3000:] + result.stderr[-3000:]
    for line in failed:  # in the order the runs ended
        num = line.split("run #")[1][0]
        # the disk fills as the runs write (a checkpoint: the line resumes it) or, the other run having
        # taken the last blocks first, as this one makes its folder (nothing to resume: rerun)
        written = f"failed: no space left on the device writing {small}/sw/{num}_" in line
        made = (
            f"failed: cannot write {small}/sw/{num}_" in line
            and "(No space left on device); free space" in line
        )
        # or, the disk full before the run could write even its job's log: the job's folder named
        held = f"failed: no space left on the device holding {small}/sw/.submitit/" in line
        assert written or made or held, line
        assert ("resume from step" in line or made or held) and "ended without a result" not in line, line
    assert sorted(line.split("run #")[1][0] for line in failed) == ["0", "1"], failed


@FULL
@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
def test_a_local_sweep_refused_on_a_full_disk_names_what_and_keeps_the_earlier_record(tmp_path, cache_dir):
    """Twenty-second hunt, cases 17-18: a `submitit_local` sweep into a folder on a disk with 8-48 KB left:
    "cannot write the run folder" (there was none: submitit's job pickle), and a refused `seed=0,1` into
    the folder of a completed `seed=0` sweep left multirun.yaml the refused sweep's."""
    small = tmp_path / "small"
    small.mkdir()
    sweep = small / "sw"
    app = " ".join([sys.executable, "-m", "align_lab", "-m", "hardware=submitit_local", *SMALL])
    app += f" cache_dir={cache_dir} hydra.sweep.dir={sweep}"
    script = (
        f"mount -t tmpfs -o size=8m tmpfs {small} || exit 9; {app} seed=0 > /dev/null 2>&1 || exit 8; "
        f"cp {sweep}/multirun.yaml {tmp_path}/before.yaml; "
        f"head -c $(( $(df -k --output=avail {small} | tail -1) * 1024 - 16384 )) /dev/zero > {small}/fill; "
        f"{app} seed=0,1; echo RC=$?; cmp {sweep}/multirun.yaml {tmp_path}/before.yaml && echo KEPT"
    )
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert "RC=2" in result.stdout and "KEPT" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(f"align_lab: error: cannot write {sweep}/"), line
    assert "the run folder" not in line and "No space left on device" in line, line


@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
@pytest.mark.parametrize("free_kb,named", [(0, "multirun.yaml"), (16, ".submitit/")])
def test_a_new_sweep_on_a_full_disk_names_the_file_and_leaves_none_half_written(
    free_kb, named, tmp_path, cache_dir
):
    """Twenty-third hunt, case 24: a `submitit_local` sweep into a new folder on a disk with 0-4 KB left
    said "cannot write the run folder" (Hydra's multirun.yaml, whose write names no file) and left it
    truncated; with 8-48 KB left the line named the `.submitit` folder and a truncated job pickle stayed."""
    small = tmp_path / "small"
    small.mkdir()
    sweep = small / "sw"
    app = " ".join([sys.executable, "-m", "align_lab", "-m", "hardware=submitit_local", *SMALL])
    app += f" cache_dir={cache_dir} seed=0,1 hydra.sweep.dir={sweep}"
    script = (
        f"mount -t tmpfs -o size=8m tmpfs {small} || exit 9; "
        f"head -c $(( $(df -k --output=avail {small} | tail -1) * 1024 - {free_kb * 1024} )) /dev/zero "
        f"> {small}/fill; {app}; echo RC=$?; find {small} -type f ! -name fill"
    )
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT)
    out = result.stdout.splitlines()
    assert "RC=2" in out and out[-1] == "RC=2", result.stdout[-3000:] + result.stderr[-3000:]  # no file left
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(f"align_lab: error: cannot write {sweep}/{named}"), line
    assert "(No space left on device)" in line, line


FILLING_REWARD = """
import os

CALLS = []

def score(prompts, responses):
    CALLS.append(1)
    if len(CALLS) == 7:  # another writer fills the run folder's disk, between checkpoints 6 and 9
        try:
            with open(os.environ["FILL"], "wb") as f:
                f.write(bytes(64 << 20))
        except OSError:
            pass
    return [float(len(r)) for r in responses]
"""


@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
def test_a_disk_filled_between_checkpoints_is_the_metrics_files_line_with_the_resume_command(
    tmp_path, cache_dir
):
    """Twentieth hunt, case 41: the disk filled by another writer between checkpoints: Hydra's `Error
    executing job` line, then "cannot write the run folder ...; choose a writable hydra.run.dir" (the way to
    a new run): the tracker's close, flushing metrics.jsonl, replaced the stop's line."""
    (tmp_path / "fill_reward.py").write_text(FILLING_REWARD)
    small, run_dir = tmp_path / "small", tmp_path / "small" / "run"
    small.mkdir()
    args = [a for a in SMALL if not a.startswith(("reward.", "train.steps"))]
    args += ["reward=function", "reward.path=fill_reward:score", "train.steps=12", "train.checkpoint_every=3"]
    app = " ".join(
        [sys.executable, "-m", "align_lab", *args, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"]
    )
    script = f"mount -t tmpfs -o size=8m tmpfs {small} || exit 9; {app}; echo RC=$? >&2"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "FILL": str(small / "filler")}
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT, env=env
    )
    said = [line for line in result.stderr.splitlines() if line.startswith(("align_lab:", "RC=", "Error"))]
    assert said[-1] == "RC=2" and len(said) == 2, result.stderr[-3000:]
    assert said[0].startswith(
        f"align_lab: error: no space left on the device writing {run_dir}/metrics.jsonl; free space, then "
        "resume from step 6 with: "
    ), said


def test_a_refusal_in_a_sweep_names_the_sweeps_folder_key(tmp_path, cache_dir, forked_cli):
    """Twentieth hunt, case 23: a sweep's run refused at admission said "choose another hydra.run.dir",
    a key a `-m` command does not read: its folder is hydra.sweep.dir."""
    sweep = tmp_path / "sweep"
    args = ["-m", *SMALL, f"cache_dir={cache_dir}", "seed=0", f"hydra.sweep.dir={sweep}"]
    assert forked_cli(args, cwd=ROOT).returncode == 0
    line = one_line_error(forked_cli([*args, "train.steps=4"], cwd=ROOT), "choose another hydra.sweep.dir")
    assert "hydra.run.dir" not in line and f"the run folder {sweep}/0_" in line, line


def test_a_resolved_config_edited_by_hand_is_named_not_the_command(finished, tmp_path, forked_cli):
    """Eleventh hunt: a killed run's config.resolved.yaml edited (algo.lr 0.001 -> 0.5), then the same
    command: "algo.lr=0.001: the run ... to resume has algo.lr=0.5; resume it with the same config"; with
    algo.lr=0.5 as told, "the checkpoint ... was trained with algo.lr=0.001". The file is named."""
    import yaml

    run_dir, args = copy_of(finished, tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    config = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    lr = config["algo"]["lr"]
    config["algo"]["lr"] = 0.5
    (run_dir / "config.resolved.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = forked_cli(args, cwd=ROOT)
    one_line_error(
        result,
        f"{run_dir / 'config.resolved.yaml'}: says algo.lr=0.5, but the checkpoint beside it was trained "
        f"with algo.lr={lr}, as this command runs it: the file was edited since",
    )


def test_a_full_disk_that_refuses_summary_json_too_keeps_the_checkpoints_line(
    tmp_path, cache_dir, monkeypatch
):
    """Seventeenth hunt, a real full disk: summary.json's write after the checkpoint's failed too, and its
    OSError replaced the stop: `cannot write the run folder (No space left on device); choose a writable
    hydra.run.dir` (the way to a new run, not the resume), no file named."""
    import align_lab.train.checkpoint_io as checkpoint_io
    from align_lab.run.run_folder import RunFolder
    from align_lab.run.summary import RunStopped

    full, write = [], RunFolder.write_summary

    def save(*args, **kwargs):
        full.append(True)
        _enospc()

    def write_summary(self, summary):
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.summary_path))
        write(self, summary)

    monkeypatch.setattr(checkpoint_io.torch, "save", save)
    monkeypatch.setattr(RunFolder, "write_summary", write_summary)
    with pytest.raises(RunStopped) as e:
        run_in_process([], tmp_path, cache_dir)
    assert str(e.value).startswith(
        "error: no space left on the device writing checkpoints/state-00000001.pt.tmp"
    )
    assert " resume " in str(e.value) or "then" in str(e.value), e.value
