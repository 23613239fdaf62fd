"""Reward sources outside the toy world: an HTTP scorer (a real server on loopback), a Python
function, a weighted combination, and the reward-model judge."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import torch

from align_lab.config import ConfigError
from align_lab.rewards.function import Combined, FunctionReward, RewardError, word_count  # noqa: F401 - re-exported: a source
from align_lab.rewards.judge import ScoreJudge
from align_lab.rewards.remote import RemoteReward
from align_lab.run.admission import spec_from_config
from tests.conftest import compose

STAGES = SimpleNamespace(raw_prompt=lambda p: p)  # a toy task: prompts are the task's own


def n_chars(prompts, responses):
    return [float(len(r)) for r in responses]


def n_chars_e30(prompts, responses):
    return [1e30 * len(r) for r in responses]


class Scorer(BaseHTTPRequestHandler):
    """Scores = words per response; fails the first `fail_first` requests with 503; sleeps `delay_s`."""

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.requests.append((body, self.headers))
        time.sleep(server.delay_s)
        if server.mode == "redirect":  # elsewhere, for good
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/score")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if server.mode == "cut":  # an answer cut short: 15 bytes of the 1000 said
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"scores": [1, ')
            self.close_connection = True
            return
        if len(server.requests) <= server.fail_first:
            self.send_error(503)
            return
        scores = [len(r.split()) for r in server.requests[-1][0]["responses"]]
        answer = server.answer(scores) if server.answer else {"scores": scores}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that timed out on purpose has gone: its broken pipe is the test's point, not an
        error to print into the test log."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def server():
    httpd = Server(("127.0.0.1", 0), Scorer)
    httpd.requests, httpd.fail_first, httpd.delay_s, httpd.answer, httpd.mode = [], 0, 0.0, None, None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/score"


def test_remote_retries_a_failed_request_batches_and_sends_the_token(server, monkeypatch):
    monkeypatch.setenv("ALIGN_LAB_REWARD_TOKEN", "s3cret")
    server.fail_first = 1
    score = RemoteReward(url=url(server), batch_size=2, backoff_s=0.0).scorer(STAGES)
    scores = score(["p"] * 3, ["a", "a b", "a b c"], [True] * 3)
    assert scores.tolist() == [1.0, 2.0, 3.0]
    # 1 failed + 2 batches (2 texts, 1 text)
    assert [len(body["responses"]) for body, _ in server.requests] == [2, 2, 1]
    assert server.requests[-1][1]["Authorization"] == "Bearer s3cret"


def test_remote_gives_up_after_its_retries_with_one_line(server):
    server.fail_first = 10
    score = RemoteReward(url=url(server), retries=2, backoff_s=0.0).scorer(STAGES)
    with pytest.raises(RuntimeError) as e:
        score(["p"], ["a"], [True])
    assert str(e.value) == f"reward.url={url(server)}: failed 3 times, last: HTTP 503 Service Unavailable"
    assert len(server.requests) == 3


def test_a_redirect_or_an_answer_cut_short_is_one_line_naming_it(server):
    """Fifth hunt of 2026-12-04: a 302 was followed (as a GET without the body) and the failure named the
    redirect's target as a refused connection of reward.url; an answer cut short (a proxy's reset) was a
    66-line IncompleteRead traceback."""
    server.mode = "redirect"
    score = RemoteReward(url=url(server), retries=2, backoff_s=0.0).scorer(STAGES)
    with pytest.raises(RuntimeError) as e:
        score(["p"], ["a"], [True])
    assert str(e.value) == (
        f"reward.url={url(server)}: HTTP 302 Found, a redirect to http://127.0.0.1:9/score: give that URL "
        "as reward.url"
    )
    assert len(server.requests) == 1  # not retried, not followed
    server.mode = "cut"
    with pytest.raises(RuntimeError) as e:
        score(["p"], ["a"], [True])
    assert str(e.value).startswith(f"reward.url={url(server)}: failed 3 times, last: IncompleteRead: ")


def test_remote_times_out(server):
    server.delay_s = 1.0
    score = RemoteReward(url=url(server), timeout_s=0.2, retries=0).scorer(STAGES)
    with pytest.raises(RuntimeError) as e:
        score(["p"], ["a"], [True])
    assert "failed once, last: " in str(e.value) and "timed out" in str(e.value)  # not "1 times"


@pytest.mark.parametrize(
    "answer,expected",
    [
        (lambda s: {"scores": [float("nan")] * len(s)}, "score 0 is nan: must be finite"),
        (lambda s: {"scores": ["abc"] * len(s)}, "score 0 is 'abc', not a number"),
        (lambda s: {"scores": s[1:]}, "returned 1 scores for 2 responses"),
        (lambda s: {"scores": "12"}, "returned a str, not a list of 2 scores in the responses' order"),
        (lambda s: {"other": s}, 'the answer is not JSON {"scores": [...]}'),
    ],
)
def test_remote_scores_are_checked_as_a_functions_are_one_line_naming_the_url(server, answer, expected):
    """Issue 73 hunt: a scorer answering NaN trained into 'diverged ... lower algo.lr'; a string, a short
    list or another JSON a traceback. Now RewardError (the user's code: one line, the run kept to resume)."""
    from align_lab.rewards.function import RewardError

    server.answer = answer
    score = RemoteReward(url=url(server), retries=0).scorer(STAGES)
    with pytest.raises(RewardError) as e:
        score(["p", "q"], ["a", "a b"], [True, True])
    assert str(e.value) == f"reward.url={url(server)}: {expected}"


def a_dict(prompts, responses):
    return {i: 0.5 for i in range(len(responses))}  # its keys 0, 1 were read as the scores


def a_set(prompts, responses):
    return {0.5, 1.5}


def test_function_reward_calls_module_callable():
    score = FunctionReward(path=f"{__name__}:n_chars").scorer(STAGES)
    assert score(["p", "q"], ["ab", "abcd"], [True, False]).tolist() == [2.0, 4.0]


def nan_scores(prompts, responses):
    return [float("nan")] * len(responses)


def one_score_short(prompts, responses):
    return [1.0] * (len(responses) - 1)


def a_word(prompts, responses):
    return ["good"] * len(responses)


def numbers_as_text(prompts, responses):
    return ["1" for _ in responses]


def no_list(prompts, responses):
    return 3.0


def past_scale(prompts, responses):
    return [1e30, 1.0]  # thirty-seventh hunt, case 17: said as `reward: the step's scores reach ...`


def raises(prompts, responses):
    raise RuntimeError("no\nscore")  # before: a 55-line traceback from the online loop


def raises_at_length(prompts, responses):
    raise RuntimeError("y" * 5_000_000)  # seventeenth hunt: a 5 MB "one line", the resume command at its end


def raise_at(fn) -> str:
    """` at <this file>:<line>` of the raise in `fn`'s first line of body (thirty-sixth hunt, case 21)."""
    return f" at {__file__}:{fn.__code__.co_firstlineno + 1}"


@pytest.mark.parametrize(
    "fn,expected",
    [
        ("nan_scores", "score 0 is nan: must be finite"),
        ("one_score_short", "returned 1 scores for 2 responses"),
        ("a_word", "score 0 is 'good', not a number"),
        ("numbers_as_text", "score 0 is '1', not a number"),  # forty-fourth hunt, case 12: read as 1
        ("no_list", "returned float, not a list of 2 scores"),
        ("raises", "raised RuntimeError: no score" + raise_at(raises)),
        (
            "past_scale",
            "score 0 is 1e+30, past 1e+18, where a group's advantages overflow float32 (their squares "
            "pass its range): scale it down",
        ),
        ("a_dict", "returned a dict, not a list of 2 scores in the responses' order"),
        ("a_set", "returned a set, not a list of 2 scores in the responses' order"),
        (
            "raises_at_length",
            f"raised RuntimeError: {'y' * 2000}... (cut: 5,000,000 characters in all)"
            + raise_at(raises_at_length),
        ),
    ],
)
def test_function_reward_scores_are_checked_with_one_line_naming_the_path(fn, expected):
    from align_lab.rewards.function import RewardError

    score = FunctionReward(path=f"{__name__}:{fn}").scorer(STAGES)
    with pytest.raises(RewardError) as e:
        score(["p", "q"], ["ab", "abcd"], [True, False])
    assert str(e.value) == f"reward.path={__name__}:{fn}: {expected}"


def a_huge_int(prompts, responses):
    return [10**400, 1]  # before: OverflowError, a 56-line traceback


def past_float32(prompts, responses):
    return [1e39, 1.0]  # finite in Python, inf in the float32 rewards: before, "diverged ... lower algo.lr"


def test_a_score_past_float32s_range_is_one_line_naming_the_code_not_the_lr():
    """A function's, a remote scorer's (the same check) and a verifier's score (value_checks.user_score)."""
    from align_lab.rewards.function import RewardError
    from align_lab.value_checks import UserCodeError, user_score

    past = "past float32's range (|x| <= 3.4e38), where training holds it as infinity"
    for fn, shown in [("a_huge_int", "an integer of 1329 bits"), ("past_float32", "1e+39")]:
        score = FunctionReward(path=f"{__name__}:{fn}").scorer(STAGES)
        with pytest.raises(RewardError) as e:
            score(["p", "q"], ["ab", "abcd"], [True, False])
        assert str(e.value) == f"reward.path={__name__}:{fn}: score 0 is {shown}, {past}: must be finite"
    for value, shown in [(10**400, "an integer of 1329 bits"), (-1e39, "-1e+39")]:
        with pytest.raises(UserCodeError) as e:
            user_score(value, "task.verifier=m:f")
        assert str(e.value) == f"task.verifier=m:f: returned {shown}, {past}; must be a finite number"
    assert user_score(3.4e38, "task.verifier=m:f") == 3.4e38  # float32's largest holds


@pytest.mark.parametrize(
    "path,expected",
    [
        ("n_chars", "path=n_chars: must be module:callable"),
        ("no_such_module_x:f", "path=no_such_module_x:f: cannot import no_such_module_x"),
        ("align_lab.rewards.function:nope", "path=align_lab.rewards.function:nope: align_lab.rewards"),
    ],
)
def test_function_reward_bad_path_is_one_line_at_build(path, expected):
    cfg, names = compose(["reward=function", f"reward.path={path}", "cache_dir=/nonexistent"])
    with pytest.raises(ConfigError) as e:
        spec_from_config(cfg, names)
    assert str(e.value).startswith(f"reward.{expected}") and "\n" not in str(e.value)


def test_combined_is_the_weighted_sum_of_its_sources():
    # r = 2 * chars - 0.5 * words: "ab cd" -> 2*5 - 0.5*2 = 9; "x" -> 2*1 - 0.5*1 = 1.5
    combined = Combined(
        {
            "chars": {"weight": 2.0, "source": FunctionReward(path=f"{__name__}:n_chars")},
            "words": {"weight": -0.5, "source": FunctionReward(path="align_lab.rewards.function:word_count")},
        }
    )
    assert combined.scorer(STAGES)(["p", "p"], ["ab cd", "x"], [True, True]).tolist() == [9.0, 1.5]


def test_combined_components_are_edited_on_the_command_line():
    cfg, names = compose(
        [
            "reward=combined",
            "~reward.components.rm",
            "reward.components.brevity.weight=-1.0",
            "+reward.components.chars={weight: 0.5, source: "
            "{_target_: align_lab.rewards.function.FunctionReward, path: '" + __name__ + ":n_chars'}}",
            "cache_dir=/nonexistent",
        ]
    )
    reward = spec_from_config(cfg, names).reward
    assert set(reward.components) == {"brevity", "chars"} and not reward.holds_model
    # -1 * 2 words + 0.5 * 5 chars = 0.5
    assert reward.scorer(STAGES)(["p"], ["ab cd"], [True]).tolist() == [0.5]


def test_score_judge_counts_wins_and_half_ties():
    judge = ScoreJudge(lambda p, r, f: torch.tensor([float(len(x)) for x in r]))
    assert judge.prefers(["p"] * 3, ["aa", "aaa", "a"], ["aa", "a", "aaaa"]) == [0.5, 1.0, 0.0]


def test_a_combined_sources_error_names_the_key_typed_for_it_and_a_quoted_weight_says_so():
    """Issue 73 hunt: reward.components.brevity.source.path=mod:fn returning NaN said 'reward.path=mod:fn:
    ...', a key the user never typed; a weight typed as the string '1' read 'weight=1: must be a number'."""
    from align_lab.rewards.function import RewardError

    source = FunctionReward(path=f"{__name__}:nan_scores")
    combined = Combined(
        {
            "chars": {"weight": 1.0, "source": FunctionReward(path=f"{__name__}:n_chars")},
            "bad": {"weight": 0.5, "source": source},
        }
    )
    with pytest.raises(RewardError) as e:
        combined.scorer(STAGES)(["p"], ["ab"], [True])
    assert (
        str(e.value)
        == f"reward.components.bad.source.path={__name__}:nan_scores: score 0 is nan: must be finite"
    )
    with pytest.raises(ValueError) as e:
        Combined({"rm": {"weight": "1", "source": source}})
    assert (
        str(e.value)
        == "components.rm.weight=1: must be a number (it is the string '1': quoted on the command line?)"
    )


def test_a_combined_sum_past_float32_from_finite_scores_is_one_line_naming_the_weights():
    """Issue 73 sixth hunt: weights of 3e38 (each within float32) times scores of a few: the run trained on
    infinite rewards (reward_std NaN, gradient 0) with only the end's "no signal" warning."""
    from align_lab.rewards.function import RewardError

    combined = Combined(
        {
            "chars": {"weight": 1e9, "source": FunctionReward(path=f"{__name__}:n_chars_e30")},
            "words": {"weight": 1.0, "source": FunctionReward(path="align_lab.rewards.function:word_count")},
        }
    )
    with pytest.raises(RewardError) as e:
        combined.scorer(STAGES)(["p", "p"], ["", "ab cd"], [True, True])
    assert str(e.value) == (
        "reward.components: response 1's weighted score chars.weight=1e+09 x 5e+30 + words.weight=1 x 2 is "
        "inf, past 1e+18, where a group's advantages overflow float32 (their squares pass its range); scale "
        "the weights down"
    )
    assert e.value.fixed_in_config  # a weight: the run's line asks for a new run, not a resume
    # thirty-second hunt, case 66: a weight within the bound (1e18) x a score of 2, finite in float32, is
    # past what a group's advantages hold: the same line, not the run's nameless "scale the reward down"
    near = Combined(
        {"words": {"weight": 1e18, "source": FunctionReward(path="align_lab.rewards.function:word_count")}}
    )
    said = (
        r"^reward\.components: response 1's weighted score words\.weight=1e\+18 x 2 is 2e\+18, past 1e\+18, "
    )
    with pytest.raises(RewardError, match=said):
        near.scorer(STAGES)(["p", "p"], ["", "ab cd"], [True, True])
    assert near.scorer(STAGES)(["p"], ["ab"], [True]).item() == pytest.approx(1e18)  # the bound: trains
    # thirty-first hunt, case 63: a weight of 1e38 was admitted, then stopped at step 1 naming no key
    with pytest.raises(ValueError, match=r"^components\.chars\.weight=1e\+38: out of range \(training"):
        Combined({"chars": {"weight": 1e38, "source": FunctionReward(path=f"{__name__}:n_chars")}})


def test_a_user_module_that_raises_or_does_not_parse_as_it_is_imported_is_one_line(tmp_path, monkeypatch):
    """reward.path=mod:fn and task.verifier=mod:fn whose module raised at import or held a syntax error:
    77-95-line tracebacks (third fresh hunt, issue 73); now one line naming the key and the error."""
    from align_lab.rewards.function import load_callable
    from align_lab.tasks.verifiers import _function

    (tmp_path / "h3_raises.py").write_text("raise RuntimeError('import boom')\ndef f(p, r):\n    return []\n")
    (tmp_path / "h3_syntax.py").write_text("def f(p r):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError) as e:
        load_callable("h3_raises:f")
    assert str(e.value) == "path=h3_raises:f: importing h3_raises raised RuntimeError: import boom"
    with pytest.raises(ValueError, match=r"^path=h3_syntax:f: importing h3_syntax raised SyntaxError: "):
        load_callable("h3_syntax:f")
    with pytest.raises(ValueError, match=r"^verifier=h3_raises:f: importing h3_raises raised RuntimeError"):
        _function("h3_raises:f")


def test_a_combined_source_that_fails_at_import_names_its_own_key(tmp_path, monkeypatch):
    """A reward=combined source whose module raised at import (or is not there, or its path lacks ':')
    said `reward.path=...`, a key the user never typed; reward=function keeps reward.path."""
    from align_lab.config import build

    (tmp_path / "h4_raises.py").write_text("raise RuntimeError('import boom')\ndef f(p, r):\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    key = "reward.components.brevity.source.path"
    said = {
        "h4_raises:f": "importing h4_raises raised RuntimeError: import boom",
        "h4_absent:f": "cannot import h4_absent (No module named 'h4_absent')",
    }
    for path, why in said.items():
        with pytest.raises(ConfigError) as e:
            build(compose(["reward=combined", f"{key}={path}"])[0].reward, "reward")
        assert str(e.value) == f"{key}={path}: {why}"
    with pytest.raises(ConfigError) as e:
        build(compose(["reward=function", "reward.path=h4_raises:f"])[0].reward, "reward")
    assert str(e.value) == f"reward.path=h4_raises:f: {said['h4_raises:f']}"


def test_one_source_whose_weights_cancel_is_refused_naming_them():
    """Issue 73 eighth hunt: `wc` (word_count, 0.01) beside the default `brevity` (word_count, -0.01): every
    response scored 0, rc 0, only the end's "no signal" warning (all-zero weights were refused)."""
    words = "align_lab.rewards.function:word_count"
    with pytest.raises(ValueError) as e:
        Combined(
            {
                "brevity": {"weight": -0.01, "source": FunctionReward(path=words)},
                "wc": {"weight": 0.01, "source": FunctionReward(path=words)},
            }
        )
    assert str(e.value) == (
        "components: brevity and wc are one source whose weights cancel (brevity=-0.01, wc=0.01), so every "
        "response scores 0 and nothing trains; give them weights that do not sum to 0"
    )
    # fifty-second hunt, case 25: the same function through a module of yours that re-exports it
    with pytest.raises(ValueError, match="brevity and wc are one source whose weights cancel"):
        Combined(
            {
                "brevity": {"weight": -0.01, "source": FunctionReward(path=words)},
                "wc": {"weight": 0.01, "source": FunctionReward(path=f"{__name__}:word_count")},
            }
        )
    Combined(  # another source beside them: its scores train
        {
            "brevity": {"weight": -0.01, "source": FunctionReward(path=words)},
            "wc": {"weight": 0.01, "source": FunctionReward(path=words)},
            "chars": {"weight": 1.0, "source": FunctionReward(path=f"{__name__}:n_chars")},
        }
    )


def test_a_function_reward_travels_to_a_spawned_rank_by_its_path(tmp_path, monkeypatch):
    """Fifteenth hunt: reward.path naming a module-level lambda was refused on hardware.processes=2 (pickle
    cannot send a lambda by reference); a rank loads the function again by its path, a combined source
    keeping the key its resume probe is asked under."""
    import pickle

    (tmp_path / "lam15.py").write_text("lam = lambda prompts, responses: [float(len(r)) for r in responses]")
    monkeypatch.syspath_prepend(str(tmp_path))
    reward = FunctionReward(path="lam15:lam")
    again = pickle.loads(pickle.dumps(reward))
    assert again._scores(["p"], ["abc"]) == [3.0] and again.probe_key == "reward.path=lam15:lam"
    reward.probe_key = "reward.components.judge.source.path=lam15:lam"
    assert pickle.loads(pickle.dumps(reward)).probe_key == reward.probe_key


def test_a_reward_or_verifier_named_as_a_classs_static_method_loads(tmp_path, monkeypatch):
    """Sixteenth hunt: reward.path=mod:Judge.score was "mod has no callable Judge.score" (an entry point's
    `module:object.attr` form)."""
    import pickle

    from align_lab.tasks.verifiers import checker

    (tmp_path / "cls16.py").write_text(
        "class Judge:\n    @staticmethod\n    def score(prompts, responses):\n"
        "        return [float(len(r)) for r in responses]\n\n"
        "    @staticmethod\n    def check(response, answer, prompt):\n"
        "        return float(answer in response)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reward = pickle.loads(pickle.dumps(FunctionReward(path="cls16:Judge.score")))
    assert reward._scores(["p"], ["abcd"]) == [4.0]
    assert checker("cls16:Judge.check")("it is 4", "4", "2+2?") == 1.0


class BadText(Exception):
    def __str__(self):  # a judge's error reading a response it never got
        raise AttributeError("'NoneType' object has no attribute 'status'")


def raises_bad_text(prompts, responses):
    raise BadText()


def test_a_users_error_whose_text_cannot_be_read_is_one_line_naming_the_reward():
    """Sixteenth hunt: its __str__ raised inside align_lab's one line: a 23-frame traceback."""
    with pytest.raises(RewardError) as e:
        FunctionReward(path=f"{__name__}:raises_bad_text")._scores(["p"], ["r"])
    assert str(e.value) == (
        f"reward.path={__name__}:raises_bad_text: raised BadText: "
        "<its text could not be read: AttributeError>" + raise_at(raises_bad_text)
    )


def test_a_function_reward_gone_when_a_rank_loads_it_again_is_one_line_at_its_first_call(
    tmp_path, monkeypatch
):
    """Sixteenth hunt: the module moved while rank 0 built the stages: rank 1 died as it started (6
    frames) and rank 0 waited for it to join for 15 minutes."""
    import pickle

    (tmp_path / "gone16.py").write_text("def score(prompts, responses):\n    return [1.0] * len(responses)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sent = pickle.dumps(FunctionReward(path="gone16:score"))
    (tmp_path / "gone16.py").unlink()
    monkeypatch.delitem(sys.modules, "gone16")
    reward = pickle.loads(sent)
    with pytest.raises(RewardError) as e:
        reward._scores(["p"], ["r"])
    assert str(e.value).startswith("reward.path=gone16:score: cannot import gone16 (")
    assert str(e.value).endswith("): this process could not load it again")


def test_an_unpickled_remote_reward_is_asked_again_on_resume(server, monkeypatch):
    """Twenty-fourth hunt, case 41: `study resume` runs the job's pickled spec; its remote reward, unpickled,
    was not the scorer a resume asks again (only building one registered it), so the resumed runs trained
    on a judge now scoring 10x with no refusal. Unpickled, it is asked again, at its address."""
    import pickle

    from align_lab import user_probes

    reward = RemoteReward(url=url(server))
    monkeypatch.setattr(user_probes, "_LIVE", {})  # a fresh process: nothing built yet
    monkeypatch.setattr(user_probes, "_AT", {})
    pickle.loads(pickle.dumps(reward))
    assert user_probes.asked_again("reward.url", {"calls": [(["p", "p"], ["a", "a b"])]}) == [[1.0, 2.0]]
    assert user_probes.address("reward.url") == url(server)
