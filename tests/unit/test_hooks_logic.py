"""The hooks' rules, without processes or sockets: outcome -> result, what is retried, the reason
a phase gives, and one POST through a fake transport."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from vmscale.hooks import HookCalled, Outcome, PhaseResult
from vmscale.hooks.decisions import worth_retrying
from vmscale.hooks.http import Answer, http_client, post_json
from vmscale.hooks.lifecycle import result_of


@pytest.mark.parametrize(
    ("outcome", "default", "expected"),
    [
        (Outcome.SUCCEEDED, "abandon", "continue"),
        (Outcome.REJECTED, "continue", "abandon"),
        (Outcome.TIMED_OUT, "continue", "continue"),
        (Outcome.TIMED_OUT, "abandon", "abandon"),
        (Outcome.ERROR, "continue", "continue"),
        (Outcome.ERROR, "abandon", "abandon"),
    ],
)
def test_result_of_an_outcome(outcome: Outcome, default: str, expected: str) -> None:
    assert result_of(outcome, default) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "retry"),
    [
        (Answer(Outcome.TIMED_OUT), True),
        (Answer(Outcome.ERROR), True),
        (Answer(Outcome.REJECTED, 500), True),
        (Answer(Outcome.REJECTED, 503), True),
        (Answer(Outcome.REJECTED, 429), True),
        (Answer(Outcome.REJECTED, 408), True),
        (Answer(Outcome.REJECTED, 400), False),
        (Answer(Outcome.REJECTED, 401), False),
        (Answer(Outcome.REJECTED, 404), False),
    ],
)
def test_what_is_worth_retrying(answer: Answer, retry: bool) -> None:
    assert worth_retrying(answer) is retry


def call(hook: str, outcome: Outcome, result: str, detail: str) -> HookCalled:
    return HookCalled(hook, "launch", "web", "web-1", "command", outcome, result, 0.1, detail)  # type: ignore[arg-type]


def test_the_reason_names_the_hook_that_decided() -> None:
    passed = PhaseResult(
        "launch", "web-1", "continue", (call("a", Outcome.SUCCEEDED, "continue", "exit code 0"),)
    )
    assert passed.reason == "launch hook 'a' passed (succeeded: exit code 0)"
    abandoned = PhaseResult(
        "launch",
        "web-1",
        "abandon",
        (
            call("a", Outcome.SUCCEEDED, "continue", "exit code 0"),
            call("b", Outcome.TIMED_OUT, "abandon", "still running after 5 s: killed"),
        ),
    )
    assert abandoned.reason == "launch hook 'b' abandoned (timed out: still running after 5 s: killed)"
    assert PhaseResult("terminate", "web-1", "continue").reason == "no terminate hooks"


def test_post_json_sends_the_body_and_maps_the_status(tmp_path: Path) -> None:
    token = tmp_path / "t"
    token.write_text("abc\n")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    client = http_client(1.0, httpx.MockTransport(handler))
    answer = post_json(client, "http://hooks.example/x", {"a": 1}, token_file=str(token))
    assert answer == Answer(Outcome.SUCCEEDED, 202, "HTTP 202")
    assert json.loads(seen[0].content) == {"a": 1}
    assert seen[0].headers["authorization"] == "Bearer abc"
    token.unlink()
    answer = post_json(client, "http://hooks.example/x", {})
    assert answer.outcome is Outcome.SUCCEEDED  # no token configured: no header, still sent
    answer = post_json(client, "http://hooks.example/x", {}, token_file=str(token))
    assert answer.outcome is Outcome.ERROR and "cannot read token_file" in answer.detail
    assert len(seen) == 2
