"""reward=remote: an HTTP scorer. POST {"prompts": [...], "responses": [...]} as JSON, answer
{"scores": [...]}; batched, with a timeout, retries with backoff, and a bearer token from the environment."""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import torch

from align_lab.rewards.function import RewardError, checked_scores
from align_lab.user_probes import loaded, scored_batch

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class NotFollowed(urllib.request.HTTPRedirectHandler):
    """A redirect said, not followed: urllib follows a POST's 302 as a GET without its body, and the
    failure then named the redirect's target as if it were reward.url (fifth hunt of 2026-12-04)."""

    def redirect_request(self, *args, **kwargs):
        return None  # urllib raises the 30x as an HTTPError


OPENER = urllib.request.build_opener(NotFollowed)


class JudgeError(RewardError):
    """The judge at reward.url failed or answered something that is not its scores: nothing of the
    user's files changes once it answers again, so the resume command is the plain one (a judge that
    scores otherwise is still refused: twentieth hunt, case 6)."""

    fixed_in_checked_inputs = False


@dataclass
class RemoteReward:
    """The token is read from the environment variable named by token_env, so it never lands in a
    saved config."""

    url: str | None = None
    batch_size: int = 32
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 1.0
    token_env: str | None = "ALIGN_LAB_REWARD_TOKEN"

    def __post_init__(self) -> None:
        if not self.url or not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url={self.url}: must be an http:// or https:// URL")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: must be >= 1")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s={self.timeout_s}: must be > 0")
        if self.retries < 0:
            raise ValueError(f"retries={self.retries}: must be >= 0")
        if self.backoff_s < 0:
            raise ValueError(f"backoff_s={self.backoff_s}: must be >= 0")
        # the key, not the address: a resume may move the server (run/summary.py MAY_CHANGE_ON_RESUME),
        # and what answers at the new one is asked the checkpoint's rows; a combined source's is its own
        self.probe_key = "reward.url"
        loaded(self.probe_key, self._scores, at=self.url)  # a resume asks the server again (user_probes.py)

    def __setstate__(self, state: dict) -> None:
        """Unpickled (a job `study resume` submits again, a spawned rank): the server asked again on resume,
        as where it was built (twenty-fourth hunt, case 41: a resubmitted run's check found no scorer and
        trained on a judge scoring 10x, in silence)."""
        self.__dict__.update(state)
        loaded(self.probe_key, self._scores, at=self.url)

    def check_reachable(self) -> None:
        """Before any compute: the server's host and port accept a connection (one line if not)."""
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=min(self.timeout_s, 10.0)).close()
        except OSError as e:
            why = e.strerror or type(e).__name__
            raise ValueError(
                f"reward.url={self.url}: cannot connect to {parts.hostname}:{port} ({why})"
            ) from None

    def _post(self, prompts: list[str], responses: list[str]) -> list[float]:
        headers = {"Content-Type": "application/json"}
        token = os.environ.get(self.token_env) if self.token_env else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps({"prompts": prompts, "responses": responses}).encode()
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with OPENER.open(request, timeout=self.timeout_s) as response:
                    scores = json.loads(response.read())["scores"]
                break
            except urllib.error.HTTPError as e:
                error = f"HTTP {e.code} {e.reason}"
                if 300 <= e.code < 400:
                    error += f", a redirect to {e.headers.get('Location')}: give that URL as reward.url"
                if e.code not in RETRY_STATUS:
                    raise JudgeError(f"reward.url={self.url}: {error}") from None
            # an answer cut short (IncompleteRead: a proxy's reset) was a 66-line traceback (fifth hunt)
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
                error = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except (ValueError, KeyError, TypeError):
                raise JudgeError(
                    f'reward.url={self.url}: the answer is not JSON {{"scores": [...]}}'
                ) from None
        else:
            times = "once" if self.retries == 0 else f"{self.retries + 1} times"
            raise JudgeError(f"reward.url={self.url}: failed {times}, last: {error}")
        # one finite number per text, or one line naming the URL (a NaN read as "lower algo.lr" before)
        try:
            return checked_scores(scores, len(prompts), f"reward.url={self.url}").tolist()
        except RewardError as e:
            raise JudgeError(str(e)) from None

    def scorer(self, stages):
        raw = stages.raw_prompt

        def score(prompts, responses, finished):
            prompts, responses = [raw(p) for p in prompts], list(responses)
            out = self._scores(prompts, responses)
            scored_batch(self.probe_key, (prompts, responses), out)  # kept in each checkpoint
            return torch.tensor(out, dtype=torch.float32)  # (B,)

        return score

    def _scores(self, prompts: list[str], responses: list[str]) -> list[float]:
        out = []
        for i in range(0, len(prompts), self.batch_size):
            out += self._post(prompts[i : i + self.batch_size], responses[i : i + self.batch_size])
        return out
