"""Tracking: metrics.jsonl contract and resume, W&B offline files read back with our reader.

The W&B tests run the real wandb (0.31.0, whose .wandb format tests/wandb_files.py follows)
offline, with HOME in tmp_path so no real credentials are seen; nothing goes online.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from align_lab.tracking import (
    JsonlTracker,
    MultiTracker,
    WandbTracker,
    make_tracker,
    read_metrics,
)
from align_lab.tracking.wandb_reader import is_complete
from align_lab.tracking.wandb_tracker import RUN_ID_FILE, choose_mode, users_init
from tests.wandb_files import (
    find_wandb_files,
    read_wandb_records,
    wandb_config,
    wandb_history,
    wandb_run_info,
    wandb_summary,
)

CONFIG = {"algo": {"name": "ppo", "clip": 0.2}}


def _log_steps(tracker: JsonlTracker, steps: range) -> None:
    for step in steps:
        tracker.log({"train/kl": step / 4}, step=step)


# --- metrics.jsonl ---------------------------------------------------------------------


def test_jsonl_line_is_flat_sorted_and_flushed_before_close(tmp_path: Path) -> None:
    tracker = JsonlTracker(tmp_path)
    tracker.log(
        {
            "train/kl": 0.5,
            "time/rollout_s": torch.tensor(1.5),  # 0-d tensor -> .item()
            "eval/gold_reward": np.float32(0.25),  # numpy scalar -> .item()
            "train/tokens": np.int64(3),
            "train/clipped": True,
        },
        step=7,
    )
    # Read before close: the line must already be on disk.
    text = (tmp_path / "metrics.jsonl").read_text()
    tracker.close()
    assert text == (
        '{"eval/gold_reward": 0.25, "step": 7, "time/rollout_s": 1.5, '
        '"train/clipped": 1, "train/kl": 0.5, "train/tokens": 3}\n'
    )
    assert type(json.loads(text)["train/tokens"]) is int


@pytest.mark.parametrize("value", [torch.tensor([1.0, 2.0]), "0.5", None])
def test_jsonl_rejects_non_scalar_metric_naming_its_key(tmp_path: Path, value: object) -> None:
    tracker = JsonlTracker(tmp_path)
    with pytest.raises(TypeError, match="train/kl"):
        tracker.log({"train/kl": value}, step=0)
    tracker.close()


def test_resume_cuts_steps_from_start_step_and_torn_last_line(tmp_path: Path) -> None:
    # A run logged steps 0..7, was killed mid-line at step 8, and checkpointed at step 5.
    tracker = JsonlTracker(tmp_path)
    _log_steps(tracker, range(8))
    tracker.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 8, "train/k')

    before = (tmp_path / "metrics.jsonl").read_text()
    resumed = JsonlTracker(tmp_path, start_step=5)
    assert (tmp_path / "metrics.jsonl").read_text() == before  # a resume refused before its first step
    _log_steps(resumed, range(5, 7))
    resumed.close()

    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4, 5, 6]
    assert records[5] == {"step": 5, "train/kl": 1.25}  # 5 / 4


def test_start_step_zero_starts_the_file_afresh_at_its_first_line(tmp_path: Path) -> None:
    tracker = JsonlTracker(tmp_path)
    _log_steps(tracker, range(3))
    tracker.close()
    JsonlTracker(tmp_path).close()  # nothing logged (refused, or failed before step 1): file as it was
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 2]
    again = JsonlTracker(tmp_path)
    _log_steps(again, range(1))
    again.close()
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0]


def test_read_metrics_drops_torn_tail_but_rejects_corrupt_middle_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}\n{"step": 2, "tr')
    assert read_metrics(path) == [{"step": 0}, {"step": 1}]
    path.write_text('{"step": 0}\n{"step": 1, "tr\n{"step": 2}\n')
    with pytest.raises(ValueError, match=":2:"):
        read_metrics(path)


# --- choosing the W&B mode -------------------------------------------------------------


def _netrc(tmp_path: Path, machine: str) -> Path:
    path = tmp_path / ".netrc"
    path.write_text(f"machine {machine}\n  login user\n  password secret\n")
    return path


def test_auto_mode_is_online_only_when_credentials_are_configured(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    assert choose_mode("auto", home) == "offline"
    assert choose_mode("auto", {**home, "WANDB_API_KEY": "k"}) == "online"
    _netrc(tmp_path, "example.com")
    assert choose_mode("auto", home) == "offline"
    _netrc(tmp_path, "api.wandb.ai")
    assert choose_mode("auto", home) == "online"
    # A self-hosted server: the netrc entry must be for WANDB_BASE_URL's host.
    assert choose_mode("auto", {**home, "WANDB_BASE_URL": "https://wb.corp:8443"}) == "offline"
    # wandb's own variable, checked where align_lab reads it (bogus: pydantic's 61 lines, hunt of 2026-12-04)
    assert choose_mode("auto", {"WANDB_MODE": "disabled"}) == "disabled"
    with pytest.raises(ValueError, match=r"^WANDB_MODE=bogus: must be online, offline or disabled, or unset"):
        choose_mode("auto", {"WANDB_MODE": "bogus"})


def test_auto_mode_reads_the_netrc_named_by_NETRC(tmp_path: Path) -> None:
    netrc = _netrc(tmp_path, "api.wandb.ai")
    empty_home = tmp_path / "home"
    empty_home.mkdir()
    assert choose_mode("auto", {"HOME": str(empty_home)}) == "offline"
    assert choose_mode("auto", {"HOME": str(empty_home), "NETRC": str(netrc)}) == "online"


def test_wandb_mode_env_beats_auto_and_explicit_mode_beats_both(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "WANDB_API_KEY": "k", "WANDB_MODE": "disabled"}
    assert choose_mode("auto", env) == "disabled"
    assert choose_mode("offline", env) == "offline"
    assert choose_mode("online", {"HOME": str(tmp_path)}) == "online"
    with pytest.raises(ValueError, match="auto, online, offline, disabled"):
        choose_mode("cloud", env)


# --- W&B offline files -----------------------------------------------------------------


@pytest.fixture
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials anywhere, WANDB_MODE=offline: wandb cannot go online. The test's folder is the working
    one, so a `wandb.init` without `dir` writes there, not into the repository (where test_compare's check
    that nothing wrote ./wandb then failed, CI of cb495d6)."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("WANDB_API_KEY", "NETRC", "WANDB_BASE_URL", "WANDB_DIR", "WANDB_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")


def _wandb_tracker(run_dir: Path, config: dict = CONFIG) -> WandbTracker:
    return WandbTracker(
        run_dir, "align_lab_test", group="study1", job_type="ppo", tags=["toy"], config=config
    )


def test_wandb_offline_file_holds_what_was_logged(tmp_path: Path, offline_wandb: None) -> None:
    run_dir = tmp_path / "run"
    tracker = _wandb_tracker(run_dir)
    assert tracker.mode == "offline"
    for step in range(3):
        tracker.log({"train/kl": step / 2, "eval/gold_reward": torch.tensor(0.25)}, step=step)
    tracker.summary({"eval/final": 0.75})
    tracker.close()

    (path,) = find_wandb_files(run_dir)
    assert path.name == f"run-{tracker.run_id}.wandb"
    history = wandb_history(path)
    assert [h["_step"] for h in history] == [0, 1, 2]
    assert [h["train/kl"] for h in history] == [0.0, 0.5, 1.0]
    assert [h["eval/gold_reward"] for h in history] == [0.25] * 3
    assert wandb_config(path) == CONFIG  # nested, wandb's "_wandb" key left out
    assert wandb_summary(path)["eval/final"] == 0.75
    info = wandb_run_info(path)
    assert (info["group"], info["job_type"], info["tags"]) == ("study1", "ppo", ["toy"])
    assert (info["run_id"], info["project"]) == (tracker.run_id, "align_lab_test")


def test_resumed_wandb_tracker_continues_the_same_run(tmp_path: Path, offline_wandb: None) -> None:
    run_dir = tmp_path / "run"
    first = _wandb_tracker(run_dir)
    first.log({"train/kl": 1.0}, step=0)
    first.close()
    second = _wandb_tracker(run_dir)
    second.log({"train/kl": 2.0}, step=1)
    second.close()

    assert second.run_id == first.run_id
    assert (run_dir / RUN_ID_FILE).read_text().strip() == first.run_id
    files = find_wandb_files(run_dir)
    assert [p.name for p in files] == [f"run-{first.run_id}.wandb"] * 2
    assert [h["_step"] for f in files for h in wandb_history(f)] == [0, 1]
    assert {wandb_run_info(f)["run_id"] for f in files} == {first.run_id}


def test_reader_joins_records_split_across_32k_blocks(tmp_path: Path, offline_wandb: None) -> None:
    blob = "x" * 100_000  # the run record spans four 32 KiB blocks: first/middle/last chunks
    tracker = _wandb_tracker(tmp_path / "run", config={"blob": blob})
    tracker.log({"train/kl": 0.5}, step=0)
    tracker.close()
    (path,) = find_wandb_files(tmp_path / "run")
    assert path.stat().st_size > 3 * 32 * 1024
    assert wandb_config(path) == {"blob": blob}
    assert wandb_history(path)[0]["train/kl"] == 0.5


def test_reader_checks_crc_and_stops_at_a_torn_tail(tmp_path: Path, offline_wandb: None) -> None:
    tracker = _wandb_tracker(tmp_path / "run")
    tracker.log({"train/kl": 0.5}, step=0)
    tracker.close()
    (path,) = find_wandb_files(tmp_path / "run")
    data = path.read_bytes()
    n_records = len(read_wandb_records(path))
    assert is_complete(path)  # close() waited for wandb-core to finish the file

    torn = tmp_path / "torn.wandb"
    torn.write_bytes(data[:-5])  # a killed writer: the last record is cut short
    assert len(read_wandb_records(torn)) == n_records - 1
    assert not is_complete(torn)

    flipped = bytearray(data)
    flipped[-3] ^= 0xFF  # inside the last record's payload
    corrupt = tmp_path / "corrupt.wandb"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksum"):
        read_wandb_records(corrupt)


# --- make_tracker ----------------------------------------------------------------------


def test_make_tracker_rejects_unknown_kind_naming_allowed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="wandb, none"):
        make_tracker("tensorboard", tmp_path, project="p", group=None, job_type=None, tags=[], config={})
    assert not (tmp_path / "metrics.jsonl").exists()


def test_make_tracker_none_writes_jsonl_only(tmp_path: Path) -> None:
    tracker = make_tracker("none", tmp_path, project="p", group=None, job_type=None, tags=[], config={})
    tracker.log({"train/kl": 0.5}, step=0)
    tracker.close()
    assert read_metrics(tmp_path / "metrics.jsonl") == [{"step": 0, "train/kl": 0.5}]
    assert not (tmp_path / "wandb").exists()


def test_make_tracker_wandb_fans_out_to_jsonl_and_wandb(tmp_path: Path, offline_wandb: None) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "train/kl": 9.0}\n{"step": 1}\n')
    tracker = make_tracker(
        "wandb",
        tmp_path,
        project="p",
        group="g",
        job_type="ppo",
        tags=["toy"],
        config=CONFIG,
        start_step=1,
    )
    assert isinstance(tracker, MultiTracker)
    tracker.log({"train/kl": 0.5}, step=1)
    tracker.close()
    assert read_metrics(tmp_path / "metrics.jsonl") == [
        {"step": 0, "train/kl": 9.0},
        {"step": 1, "train/kl": 0.5},
    ]
    (path,) = find_wandb_files(tmp_path)
    assert [(h["_step"], h["train/kl"]) for h in wandb_history(path)] == [(1, 0.5)]


def test_a_runs_w_and_b_config_carries_its_config_choices(tmp_path: Path, offline_wandb: None) -> None:
    from align_lab.tracking import TrackerConfig

    names = {"algo": "rloo", "arm": "stale2", "task": "toy_prefs", "model": "tiny", "reward": "rm"}
    tracker = TrackerConfig(kind="wandb", project="p", mode="offline", group="s").make(
        tmp_path, names, CONFIG, 0
    )
    tracker.close()
    (path,) = find_wandb_files(tmp_path)
    # the compare dashboard groups an arm's runs by choices.arm (algo also by the job type)
    assert wandb_config(path) == {**CONFIG, "choices": names}
    assert wandb_run_info(path)["job_type"] == "rloo"


def test_a_first_wandb_run_of_a_resumed_run_holds_its_earlier_steps(
    tmp_path: Path, offline_wandb: None
) -> None:
    """Eighteenth hunt: a run killed under tracker=none and resumed with tracker=wandb had a W&B run of its
    resumed steps alone (compare --wandb builds its dashboard from it), without a word; its earlier steps
    are logged to it from metrics.jsonl. A W&B run that went on from before is not given them twice."""
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/kl": 0.1}\n{"step": 2, "train/kl": 0.2}\n')
    tracker = make_tracker(
        "wandb", tmp_path, project="p", group=None, job_type=None, tags=[], config={}, start_step=3
    )
    tracker.log({"train/kl": 0.3}, step=3)
    tracker.close()
    (path,) = find_wandb_files(tmp_path)
    assert [(h["_step"], h["train/kl"]) for h in wandb_history(path)] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    again = make_tracker(
        "wandb", tmp_path, project="p", group=None, job_type=None, tags=[], config={}, start_step=4
    )
    again.log({"train/kl": 0.4}, step=4)
    again.close()
    later = find_wandb_files(tmp_path)[-1]
    assert [(h["_step"], h["train/kl"]) for h in wandb_history(later)] == [(4, 0.4)]


def test_the_users_own_wandb_init_gets_a_run_of_its_own_not_the_trackers(tmp_path: Path, offline_wandb: None):
    """Thirty-third hunt, case 79: a reward's own `wandb.init()` under tracker=wandb got align_lab's run back
    (its `log` into the run's own metrics, its `finish` ending it) and `wandb.log` failed "call wandb.init()
    first". The user's code gets a run of its own, the global one; the tracker's goes on."""
    import wandb

    tracker = _wandb_tracker(tmp_path / "run")
    theirs = wandb.init(project="theirs", dir=str(tmp_path), mode="offline")
    try:
        assert theirs is not tracker._run and wandb.run is theirs
        wandb.log({"mine": 1.0})  # the module's log: the user's run
        # called again, as wandb hands back the global run (with dir: without, wandb's settings of this
        # process, made where an earlier test's wandb ran, put its debug.log in the checkout's ./wandb)
        assert wandb.init(project="theirs", dir=str(tmp_path)) is theirs
    finally:
        theirs.finish()
    tracker.log({"train/kl": 0.5}, step=0)  # the tracker's run was not finished by theirs
    tracker.close()
    assert wandb.init is not users_init  # wandb's own once the tracker's run is over


def test_metrics_whose_descriptor_code_of_the_users_closed_are_written_on(tmp_path, caplog):
    """A reward's thread calling os.closerange(3, 4096) after its call returned took metrics.jsonl's
    descriptor: the next log a 63-line traceback (thirty-ninth hunt, cases 39-40). The file is opened
    again, said once; a file that took the number meanwhile is neither written nor closed."""
    import os

    tracker = JsonlTracker(tmp_path)
    tracker.log({"a": 1.0}, step=0)
    os.close(tracker._file.fileno())
    theirs = os.open(tmp_path / "theirs.txt", os.O_WRONLY | os.O_CREAT)  # the number's next file
    tracker.log({"a": 2.0}, step=1)
    tracker.close()
    assert [json.loads(x)["a"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1.0, 2.0]
    assert (tmp_path / "theirs.txt").read_text() == "" and os.fstat(theirs)  # untouched, still open
    os.close(theirs)
    assert [r.getMessage() for r in caplog.records if "opened again" in r.getMessage()] == [
        f"warning: {tmp_path / 'metrics.jsonl'}: its descriptor was closed by code not the run's (your "
        "code's thread?); opened again to append"
    ]


def test_metrics_written_or_cut_by_code_not_the_runs_are_said_once(tmp_path, caplog):
    """Forty-third hunt, case 13: a reward appending lines to metrics.jsonl (compare then plotted them)
    went unsaid; the next line's write says the file changed under the run."""
    tracker = JsonlTracker(tmp_path)
    tracker.log({"a": 1.0}, step=1)
    size = (tmp_path / "metrics.jsonl").stat().st_size
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 1000, "a": 9}\n')
    tracker.log({"a": 2.0}, step=2)
    tracker.log({"a": 3.0}, step=3)
    tracker.close()
    said = [r.getMessage() for r in caplog.records if "changed by code not the run's" in r.getMessage()]
    assert said == [
        f"warning: {tmp_path / 'metrics.jsonl'}: changed by code not the run's since its last line "
        f"({size} -> {size + 23} bytes); the run's lines go on after it, compare reads what is there"
    ]


def test_an_online_run_wandb_cannot_start_is_one_line_or_offline_said_when_not_asked_for(
    tmp_path: Path, offline_wandb: None, monkeypatch, caplog
) -> None:
    """Hunt of 2026-12-04 (env/cwd, c28-c30): WANDB_MODE=online without a key was wandb's 61-line UsageError
    traceback; a logged-in user with no network (tracker.mode auto: online) waited 93 s, then a 62-line
    CommError and no run. Asked for online: one line naming what to do. Not asked for: offline, said."""
    import socket

    from align_lab.value_checks import ConfigError

    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "1")  # read as wandb first sets up in this process
    monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.raises(ConfigError, match=r"^tracker=wandb: W&B could not start the online run \(No API key"):
        _wandb_tracker(tmp_path / "asked")
    with socket.socket() as s:  # a port nothing listens on: the server does not answer
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    with caplog.at_level("WARNING"):
        tracker = _wandb_tracker(tmp_path / "auto")
    assert tracker.mode == "offline"
    assert any(
        "W&B could not start an online run (" in r.message and "logs offline to" in r.message
        for r in caplog.records
    )
    tracker.log({"train/kl": 0.5}, step=1)
    tracker.close()
    assert len(find_wandb_files(tmp_path / "auto")) == 1


@pytest.mark.parametrize("where", ["no_home", "unwritable"])
def test_wandbs_service_log_goes_to_the_run_folder_not_the_terminal(where, tmp_path: Path) -> None:
    """Hunt of 2026-12-04, c27, c32: with HOME unset, or W&B's folders unmakeable, wandb-core could not make
    its log file and wrote 19 lines of INFO and ERROR to the terminal around the run's own. A fresh process:
    wandb starts its service once a process."""
    import os
    import subprocess
    import sys

    # no WANDB_SERVICE: this process's service (an earlier test's), which the child would connect to
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_CACHE_HOME") and k[:6] != "WANDB_"}
    env |= {"WANDB_MODE": "offline", "PYTHONPATH": str(Path(__file__).parents[3])}
    if where == "unwritable":
        env |= {"HOME": str(tmp_path), "WANDB_CACHE_DIR": "/proc/nope", "WANDB_CONFIG_DIR": "/proc/nope3"}
    script = (
        "import sys; from pathlib import Path; from align_lab.tracking.wandb_tracker import WandbTracker\n"
        "t = WandbTracker(Path(sys.argv[1]), 'p', group=None, job_type=None, tags=[], config={})\n"
        "t.log({'train/kl': 0.5}, step=1); t.close()\n"
    )
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", script, str(run)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "failed to get logger path" in (run / "wandb" / "wandb-core.log").read_text()
    assert len(find_wandb_files(run)) == 1


def test_wandbs_service_log_is_removed_where_it_said_nothing(tmp_path: Path, offline_wandb: None) -> None:
    tracker = _wandb_tracker(tmp_path / "run")
    tracker.close()
    assert not (tmp_path / "run" / "wandb" / "wandb-core.log").exists()
