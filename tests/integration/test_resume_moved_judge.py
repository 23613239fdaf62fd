"""A remote reward's server moved between a kill and the resume (a requeued job's judge on another node or
port): thirteenth hunt, the same command with the new `reward.url` was refused as another config, even
with resume_changed_inputs=true, so the run could not be resumed at all. The address may change on resume
now (run/summary.py MAY_CHANGE_ON_RESUME); what answers at the new one is asked the checkpoint's rows
(user_probes.py): the same scores resume, other scores are refused in one line."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from align_lab.config import ConfigError
from tests.conftest import SMALL, compose, killed_after_step_2


class Judge(BaseHTTPRequestHandler):
    """Scores = the server's weight x characters per response."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls += 1
        if self.server.failing or self.server.calls > self.server.failing_after:  # warming up, or down
            self.send_error(500)
            return
        answer = json.dumps(
            {"scores": [self.server.weight * len(r) / 10 for r in body["responses"]]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def judges():
    """Two judge servers on two ports, weight 1 each (a test sets another)."""
    servers = []
    for _ in range(2):
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
        httpd.weight, httpd.failing, httpd.calls, httpd.failing_after = 1.0, False, 0, float("inf")
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
    yield servers
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def url(httpd) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/score"


def admit(run_dir, cache_dir, judge, *more):
    from align_lab.run.admission import admit_spec, spec_from_config

    keys = [*(k for k in SMALL if not k.startswith("reward.")), "reward=remote", "train.steps=4"]
    cfg, names = compose([*keys, f"reward.url={url(judge)}", f"cache_dir={cache_dir}", *more])
    return admit_spec(spec_from_config(cfg, names), run_dir)


def test_a_judge_that_moved_resumes_where_it_scores_as_before_and_is_refused_where_not(
    judges, tmp_path, cache_dir, monkeypatch
):
    from align_lab.run.execute import run

    old, new = judges
    killed_after_step_2(admit(tmp_path / "run", cache_dir, old))
    new.weight = 10.0  # another judge at the new address
    with pytest.raises(ConfigError) as e:
        admit(tmp_path / "run", cache_dir, new)
    assert str(e.value).startswith(
        "resume_changed_inputs=false: reward.url scores the responses it scored last before the checkpoint "
    ), str(e.value)
    new.failing = True  # fifteenth hunt: one that did not answer was let in, and the 10x judge trained on
    with pytest.raises(ConfigError) as e:
        admit(tmp_path / "run", cache_dir, new, "reward.retries=0")  # how it is waited for may change too
    assert str(e.value).startswith(
        f"resume_changed_inputs=false: reward.url={url(new)}: the judge moved from {url(old)} since the "
    ), str(e.value)
    new.weight, new.failing = 1.0, False  # the same judge, moved
    job = admit(tmp_path / "run", cache_dir, new)
    assert job.changed_inputs == {}
    assert run(job)["status"] == "completed"


@pytest.mark.fast
def test_a_judges_outage_ends_in_a_resume_command_that_still_refuses_another_judge(
    judges, tmp_path, cache_dir
):
    """Twentieth hunt, case 6: a judge's HTTP 500 ended in `fix it, then resume ...
    resume_changed_inputs=true`; run as it said with the judge back on another port but scoring 10x, the
    run went on trained on it (a warning). An outage changes none of the user's files: the command is the
    plain one, and refuses."""
    from align_lab.run.execute import run
    from align_lab.run.summary import RunStopped

    old, new = judges
    job = admit(tmp_path / "run", cache_dir, old, "reward.retries=0", "train.checkpoint_every=1")
    old.failing_after = 2  # answers the first two steps' calls, then HTTP 500
    with pytest.raises(RunStopped) as stop:
        run(job)
    said = str(stop.value)
    assert "reward.url=" in said and "HTTP 500" in said and "resume_changed_inputs" not in said, said
    new.weight = 10.0
    with pytest.raises(ConfigError) as e:
        admit(tmp_path / "run", cache_dir, new)
    assert str(e.value).startswith("resume_changed_inputs=false: reward.url scores the responses"), str(
        e.value
    )
