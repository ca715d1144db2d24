"""Lifecycle hooks for real: commands that succeed, fail and hang (killed at the timeout with their
whole process group), and webhooks to a loopback server answering 200, 500 or never; a phase runs
off the caller's thread and every call is an event with its outcome and duration."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.integration.webhook_support import NEVER, webhook_server
from tests.support.wait import wait_until
from vmscale.config.hooks import HooksConfig
from vmscale.event_kinds import EventKind
from vmscale.hooks import HookCalled, HookSubject, LifecycleHooks, Outcome, PhaseResult

SUBJECT = HookSubject("web", "web-3", "http://127.0.0.1:18103", host="local")
PY = sys.executable


def hooks(seen: list[EventKind] | None = None, **phases: list[dict[str, Any]]) -> LifecycleHooks:
    cfg = HooksConfig.model_validate(phases)
    return LifecycleHooks(cfg, publish=(seen.append if seen is not None else lambda e: None))


def run(h: LifecycleHooks, phase: str = "launch") -> PhaseResult:
    try:
        return h.submit(phase, SUBJECT).result(timeout=60)  # type: ignore[arg-type]
    finally:
        h.close()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_command_that_succeeds_gets_the_instance_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VMSCALE_TOKENS", "write:the-controllers-own-secret")  # never handed to a hook
    out = tmp_path / "env.json"
    code = (
        "import json, os; "
        "env = {k: v for k, v in os.environ.items() if k.startswith('VMSCALE_')}; "
        f"json.dump(env, open({str(out)!r}, 'w'))"
    )
    seen: list[EventKind] = []
    result = run(hooks(seen, launch=[{"name": "register", "command": [PY, "-c", code]}]))
    assert result.result == "continue"
    assert json.loads(out.read_text()) == {
        "VMSCALE_HOOK": "register",
        "VMSCALE_PHASE": "launch",
        "VMSCALE_GROUP": "web",
        "VMSCALE_INSTANCE": "web-3",
        "VMSCALE_ENDPOINT": "http://127.0.0.1:18103",
        "VMSCALE_ADDRESS": "127.0.0.1:18103",
        "VMSCALE_HOST": "local",
    }
    (call,) = seen
    assert isinstance(call, HookCalled) and call == result.calls[0]
    assert (call.hook, call.action, call.outcome, call.result) == (
        "register",
        "command",
        Outcome.SUCCEEDED,
        "continue",
    )
    assert call.duration_s > 0 and call.to_dict()["outcome"] == "succeeded"


def test_a_command_that_fails_abandons_and_the_reason_quotes_its_output() -> None:
    fail = [PY, "-c", "import sys; print('registry says no'); sys.exit(3)"]
    never_run = [PY, "-c", "raise SystemExit(0)"]
    seen: list[EventKind] = []
    result = run(
        hooks(seen, launch=[{"name": "check", "command": fail}, {"name": "after", "command": never_run}])
    )
    assert result.result == "abandon" and len(result.calls) == 1, "the phase ends at the first abandon"
    assert result.calls[0].outcome is Outcome.REJECTED
    assert "exit code 3" in result.calls[0].detail and "registry says no" in result.calls[0].detail
    assert result.reason.startswith("launch hook 'check' abandoned (rejected: exit code 3")
    assert [e.hook for e in seen if isinstance(e, HookCalled)] == ["check"]


@pytest.mark.parametrize("default", ["continue", "abandon"])
def test_a_command_that_hangs_is_killed_with_its_children_and_the_default_applies(
    tmp_path: Path, default: str
) -> None:
    pids = tmp_path / "pids"
    # A shell that starts a child which ignores SIGTERM, records both pids, then waits forever.
    script = f"trap '' TERM; sleep 300 & echo $$ $! > {pids}; wait"
    h = hooks(
        launch=[
            {"name": "slow", "command": ["sh", "-c", script], "timeout_s": 1.0, "default_result": default}
        ]
    )
    fut = h.submit("launch", SUBJECT)
    assert not fut.done(), "submit must return at once, not wait for the hook"
    result = fut.result(timeout=60)
    h.close()
    (call,) = result.calls
    assert call.outcome is Outcome.TIMED_OUT and "still running after 1 s: killed" in call.detail
    assert result.result == default
    shell, child = (int(p) for p in pids.read_text().split())
    wait_until(lambda: not alive(shell) and not alive(child), "the hook's process group to be gone", 15)


def test_a_command_that_cannot_start_takes_the_default(tmp_path: Path) -> None:
    script = tmp_path / "hook"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    h = hooks(terminate=[{"name": "gone", "command": [str(script)], "default_result": "continue"}])
    script.unlink()  # removed after the config was checked
    result = run(h, "terminate")
    assert result.result == "continue" and result.calls[0].outcome is Outcome.ERROR
    assert "cannot start" in result.calls[0].detail


def test_close_kills_a_running_hook(tmp_path: Path) -> None:
    pids = tmp_path / "pid"
    h = hooks(
        launch=[{"name": "slow", "command": ["sh", "-c", f"echo $$ > {pids}; sleep 300"], "timeout_s": 600}]
    )
    fut = h.submit("launch", SUBJECT)
    wait_until(lambda: pids.exists() and pids.read_text().strip(), "the hook to start", 30)
    h.close()
    result = fut.result(timeout=30)
    assert result.calls[0].outcome is Outcome.ERROR and "shutting down" in result.calls[0].detail
    wait_until(lambda: not alive(int(pids.read_text())), "the hook to be killed", 15)


@pytest.mark.parametrize(
    ("answer", "default", "outcome", "result"),
    [
        pytest.param(200, "abandon", Outcome.SUCCEEDED, "continue", id="200-continue"),
        pytest.param(204, "abandon", Outcome.SUCCEEDED, "continue", id="204-continue"),
        pytest.param(500, "continue", Outcome.REJECTED, "abandon", id="500-abandon"),
        pytest.param(409, "continue", Outcome.REJECTED, "abandon", id="409-abandon"),
        pytest.param(NEVER, "continue", Outcome.TIMED_OUT, "continue", id="never-default-continue"),
        pytest.param(NEVER, "abandon", Outcome.TIMED_OUT, "abandon", id="never-default-abandon"),
    ],
)
def test_webhook_hooks(
    answer: int | str, default: str, outcome: Outcome, result: str, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("hook-secret\n")
    with webhook_server(answer) as server:
        phase = run(
            hooks(
                terminate=[
                    {
                        "name": "deregister",
                        "url": server.url,
                        "timeout_s": 1.0,
                        "default_result": default,
                        "token_file": str(token),
                    }
                ]
            ),
            "terminate",
        )
        assert phase.result == result and phase.calls[0].outcome is outcome, phase.calls
        (body,) = server.received
        assert {
            k: body[k] for k in ("hook", "phase", "group", "instance", "endpoint", "address", "host")
        } == {
            "hook": "deregister",
            "phase": "terminate",
            "group": "web",
            "instance": "web-3",
            "endpoint": "http://127.0.0.1:18103",
            "address": "127.0.0.1:18103",
            "host": "local",
        }
        assert server.headers[0]["authorization"] == "Bearer hook-secret"
        assert phase.calls[0].action == "webhook"


def test_a_webhook_nobody_listens_on_takes_the_default() -> None:
    with webhook_server() as server:
        url = server.url
    phase = run(hooks(launch=[{"name": "gone", "url": url, "timeout_s": 2, "default_result": "abandon"}]))
    assert phase.result == "abandon" and phase.calls[0].outcome is Outcome.ERROR
    assert "cannot reach" in phase.calls[0].detail


def test_no_hooks_for_a_phase_is_an_immediate_continue() -> None:
    h = hooks(launch=[{"name": "x", "command": ["true"]}])
    fut = h.submit("terminate", SUBJECT)
    assert fut.done() and fut.result() == PhaseResult("terminate", "web-3", "continue")
    h.close()
