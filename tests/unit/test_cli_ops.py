"""The operator commands (status, instances, scale, pause, resume, logs) against a real HTTP
server: a small stand-in control API served by uvicorn on a free loopback port, returning the
documented shapes (GroupStatus/InstanceInfo.to_dict(), the SSE wire format)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from typer.testing import CliRunner

from vmscale.cli import app as cli_app
from vmscale.control import GroupStatus, InstanceInfo

try:
    import jsonschema_rs
except ImportError as exc:  # never skip: say what is missing
    raise ImportError(
        "these tests validate --json output with jsonschema_rs (pip install jsonschema-rs)"
    ) from exc

WRITE_TOKEN = "s3cret-write-token"
T0 = 1_700_000_000.0

DECISION_UP = {
    "desired": 2,
    "direction": "up",
    "reason": "cpu 92% > 60%",
    "policy": "target",
    "current": 1,
    "figures": {"cpu": 92.0},
    "actor": "policy",
    "applied": True,
    "t": T0 + 5,
}

GROUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "desired", "actual", "ready", "min", "max", "paused", "provider", "lb"],
    "properties": {
        "name": {"type": "string"},
        **{
            k: {"type": "integer", "minimum": 0} for k in ("desired", "actual", "ready", "min", "max", "warm")
        },
        "paused": {"type": "boolean"},
        "provider": {"type": "string"},
        "lb": {"type": "string"},
        "frontend_url": {"type": ["string", "null"]},
        "policies": {"type": "array", "items": {"type": "string"}},
        "states": {"type": "object", "additionalProperties": {"type": "integer"}},
        "last_decision": {"type": ["object", "null"]},
        "golden": {
            "type": ["object", "null"],
            "required": ["state", "since"],
            "properties": {"state": {"enum": ["making", "ready", "failed"]}, "size_mb": {"type": "number"}},
        },
    },
}
INSTANCES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["instances"],
    "properties": {
        "instances": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "state", "endpoint", "vcpus"],
                "properties": {
                    "name": {"type": "string"},
                    "state": {
                        "enum": [
                            "pending",
                            "booting",
                            "warm",
                            "ready",
                            "draining",
                            "terminating",
                            "gone",
                            "failed",
                        ]
                    },
                    "endpoint": {"type": "string"},
                    "vcpus": {"type": "integer", "minimum": 1},
                    "cpu": {"type": ["number", "null"]},
                },
            },
        }
    },
}
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["seq", "t", "type", "data"],
    "properties": {
        "seq": {"type": ["integer", "null"]},
        "t": {"type": ["number", "null"]},
        "type": {"type": "string"},
        "data": {"type": "object"},
    },
}


def validate(schema: dict[str, Any], doc: Any) -> None:
    jsonschema_rs.validate(schema, doc)


GOLDEN = {"state": "ready", "since": T0, "key": "3f2a9c", "made_at": T0, "size_mb": 135.4, "boot_s": 8.5,
          "save_s": 2.1, "made_now": True}  # fmt: skip


class StandIn:
    """State of the stand-in API, inspected by the tests."""

    def __init__(self) -> None:
        self.desired = 1
        self.paused = False
        self.fail_next = False
        self.auth_seen: list[str | None] = []

    def group(self) -> dict[str, Any]:
        return GroupStatus(
            name="web", desired=self.desired, actual=2, ready=1, min=1, max=4, paused=self.paused,
            provider="process", lb="none", frontend_url=None, policies=["target"],
            states={"ready": 1, "booting": 1}, last_decision=DECISION_UP, golden=GOLDEN,
        ).to_dict()  # fmt: skip


def sse(seq: int, type_: str, data: dict[str, Any]) -> str:
    ev = {"seq": seq, "t": T0 + seq, "type": type_, "data": data}
    return f"id: {seq}\nevent: {type_}\ndata: {json.dumps(ev)}\n\n"


def make_app(state: StandIn) -> FastAPI:
    api = FastAPI()

    def error(status: int, err: str, detail: Any) -> JSONResponse:
        return JSONResponse({"error": err, "detail": detail}, status_code=status)

    def writer_refusal(request: Request) -> JSONResponse | None:
        auth = request.headers.get("authorization")
        state.auth_seen.append(auth)
        if auth != f"Bearer {WRITE_TOKEN}":
            return error(401, "unauthorized", "missing or invalid token")
        return None

    @api.get("/v1/group")
    def group() -> Any:
        return state.group()

    @api.get("/v1/instances")
    def instances() -> Any:
        if state.fail_next:
            state.fail_next = False
            return error(500, "internal error", "the controller is not answering")
        return {
            "instances": [
                InstanceInfo("web-1", "ready", "http://127.0.0.1:18101", 1, 93.5, T0, T0 + 2).to_dict(),
                InstanceInfo("web-2", "booting", "http://127.0.0.1:18102", 1, None, T0 + 5).to_dict(),
            ]
        }

    @api.post("/v1/group/desired")
    async def desired(request: Request) -> Any:
        if (refusal := writer_refusal(request)) is not None:
            return refusal
        body = await request.json()
        n = body.get("desired") if isinstance(body, dict) else None
        if not isinstance(n, int):
            return error(422, "invalid request", "desired must be an integer")
        if not 1 <= n <= 4:
            return error(409, "conflict", f"desired {n} is outside the group's [min, max] = [1, 4]")
        state.desired = n
        return state.group()

    @api.post("/v1/group/pause")
    def pause(request: Request) -> Any:
        if (refusal := writer_refusal(request)) is not None:
            return refusal
        state.paused = True
        return state.group()

    @api.post("/v1/group/resume")
    def resume(request: Request) -> Any:
        if (refusal := writer_refusal(request)) is not None:
            return refusal
        state.paused = False
        return state.group()

    @api.get("/v1/decisions")
    def decisions(limit: int = 50) -> Any:
        down = {**DECISION_UP, "direction": "down", "current": 2, "desired": 1, "reason": "cpu 5% < 60%"}
        return {"decisions": [DECISION_UP, {**down, "t": T0 + 50, "applied": False}][-limit:]}

    @api.get("/v1/events")
    def events() -> StreamingResponse:
        def body() -> Iterator[str]:
            yield sse(1, "endpoints", {"endpoints": [{"name": "web-1", "url": "http://127.0.0.1:18101"}]})
            yield ": ping\n\n"
            yield sse(
                2,
                "instance",
                {"name": "web-2", "from": "booting", "to": "ready", "reason": "", "endpoint": "x"},
            )
            yield sse(3, "decision", {k: v for k, v in DECISION_UP.items() if k != "t"})
            yield sse(
                4,
                "tick",
                {
                    "desired": 2,
                    "actual": 2,
                    "ready": 2,
                    "instances": {"web-1": {"state": "ready", "cpu": 55.0}},
                },
            )

        return StreamingResponse(body(), media_type="text/event-stream")

    return api


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, StandIn]]:
    state = StandIn()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(make_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not srv.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the stand-in API did not start within 15 s")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}", state
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def api(server: tuple[str, StandIn]) -> Iterator[tuple[str, StandIn]]:
    url, state = server
    state.desired, state.paused, state.fail_next = 1, False, False
    state.auth_seen.clear()
    yield url, state


def run(*args: str, token: str = "") -> Any:
    return CliRunner().invoke(cli_app, list(args), env={"VMSCALE_TOKEN": token, "VMSCALE_API": None})


def test_status_json_matches_the_schema(api: tuple[str, StandIn]) -> None:
    result = run("status", "--api", api[0], "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(GROUP_SCHEMA, doc)
    assert doc["desired"] == 1


def test_status_table_says_what_a_person_needs(api: tuple[str, StandIn]) -> None:
    result = run("status", "--api", api[0])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.stdout.split())
    for text in (
        "desired",
        "process",
        "ready 1, booting 1",
        "scale up 1 -> 2 (target: cpu 92% > 60%)",
        "clones from",  # where the next clone comes from: which golden, how large
        "golden snapshot 3f2a9c ready: 135 MiB",
    ):
        assert text in flat, text


def test_api_from_environment(api: tuple[str, StandIn]) -> None:
    result = CliRunner().invoke(cli_app, ["status", "--json"], env={"VMSCALE_API": api[0]})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "web"


def test_instances_json_and_table(api: tuple[str, StandIn]) -> None:
    result = run("instances", "--api", api[0], "--json")
    assert result.exit_code == 0, result.output
    validate(INSTANCES_SCHEMA, json.loads(result.stdout))
    table = run("instances", "--api", api[0])
    assert table.exit_code == 0
    assert "web-1" in table.stdout and "booting" in table.stdout and "94%" in table.stdout


def test_scale_sends_the_count_with_the_token(api: tuple[str, StandIn]) -> None:
    url, state = api
    result = run("scale", "3", "--api", url, "--json", token=WRITE_TOKEN)
    assert result.exit_code == 0, result.output
    validate(GROUP_SCHEMA, json.loads(result.stdout))
    assert state.desired == 3
    assert state.auth_seen == [f"Bearer {WRITE_TOKEN}"]


def test_scale_with_a_token_file_of_scoped_lines(api: tuple[str, StandIn], tmp_path: Path) -> None:
    url, state = api
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# scope token name\nread r-token-123456 dashboard\nwrite {WRITE_TOKEN} ops\n")
    result = run("scale", "2", "--api", url, "--token-file", str(tokens))
    assert result.exit_code == 0, result.output
    assert "desired count set to 2" in result.stdout
    assert state.desired == 2
    assert "vmscale pause" in result.stderr, "warned that the policies may undo a manual count"


def test_missing_token_file_is_a_usage_error(api: tuple[str, StandIn], tmp_path: Path) -> None:
    result = run("scale", "2", "--api", api[0], "--token-file", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "token file" in result.stderr
    assert api[1].auth_seen == []  # nothing was sent


def test_scale_without_token_is_refused_with_exit_1(api: tuple[str, StandIn]) -> None:
    result = run("scale", "2", "--api", api[0])
    assert result.exit_code == 1
    assert "HTTP 401" in result.stderr and "VMSCALE_TOKEN" in result.stderr
    assert api[1].desired == 1


def test_scale_outside_bounds_is_the_users_mistake_exit_2(api: tuple[str, StandIn]) -> None:
    result = run("scale", "9", "--api", api[0], token=WRITE_TOKEN)
    assert result.exit_code == 2
    assert "outside the group's [min, max] = [1, 4]" in result.stderr
    assert "Traceback" not in result.output


def test_negative_count_rejected_before_any_request(api: tuple[str, StandIn]) -> None:
    result = run("scale", "--api", api[0], "--", "-1", token=WRITE_TOKEN)
    assert result.exit_code == 2
    assert api[1].auth_seen == []


def test_pause_and_resume(api: tuple[str, StandIn]) -> None:
    url, state = api
    result = run("pause", "--api", url, token=WRITE_TOKEN)
    assert result.exit_code == 0, result.output
    assert state.paused and "paused yes" in result.stdout
    result = run("resume", "--api", url, "--json", token=WRITE_TOKEN)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["paused"] is False and not state.paused


def test_server_error_exits_1(api: tuple[str, StandIn]) -> None:
    api[1].fail_next = True
    result = run("instances", "--api", api[0])
    assert result.exit_code == 1
    assert "HTTP 500" in result.stderr and "not answering" in result.stderr


def test_logs_shows_recent_decisions_readably(api: tuple[str, StandIn]) -> None:
    result = run("logs", "--api", api[0])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "scale up 1 -> 2 (target: cpu 92% > 60%)" in lines[0]
    assert lines[1].endswith("scale down 2 -> 1 (target: cpu 5% < 60%) [not applied]")


def test_logs_follow_prints_the_stream(api: tuple[str, StandIn]) -> None:
    result = run(
        "logs", "--api", api[0], "--follow", "--types", "instance,decision,endpoints", "--max-events", "3"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 + 3  # two recent decisions, then three streamed events
    assert "ready endpoints: web-1 http://127.0.0.1:18101" in lines[2]
    assert "instance  web-2 booting -> ready" in lines[3]
    assert "decision  scale up 1 -> 2 (target: cpu 92% > 60%)" in lines[4]


def test_logs_follow_json_lines_match_the_event_schema(api: tuple[str, StandIn]) -> None:
    result = run("logs", "--api", api[0], "-f", "--json", "--types", "instance,tick", "--max-events", "2")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    for ev in events:
        validate(EVENT_SCHEMA, ev)
    assert [e["type"] for e in events] == ["instance", "tick"]
    assert events[0]["seq"] == 2 and events[0]["data"]["to"] == "ready"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "args", [["status"], ["instances", "--json"], ["scale", "2"], ["pause"], ["logs", "--follow"]]
)
def test_unreachable_api_exits_3(args: list[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = run(*args, "--api", url, "--timeout", "2", token=WRITE_TOKEN)
    assert result.exit_code == 3, result.output
    assert f"cannot reach the control API at {url}" in result.stderr


@pytest.mark.parametrize("command", ["status", "instances", "scale", "pause", "resume", "logs"])
def test_help_has_examples(command: str) -> None:
    result = CliRunner().invoke(cli_app, [command, "--help"])
    assert result.exit_code == 0
    assert "Examples" in result.stdout and f"vmscale {command}" in result.stdout


# ---------------------------------------------------------------- conventions users bring along


@pytest.mark.parametrize("command", [["status"], ["instances"], ["pause"]])
def test_dash_o_json_is_the_same_as_json(api: tuple[str, StandIn], command: list[str]) -> None:
    long = run(*command, "--api", api[0], "--json", token=WRITE_TOKEN)
    short = run(*command, "--api", api[0], "-o", "json", token=WRITE_TOKEN)
    assert short.exit_code == long.exit_code == 0, short.output
    assert json.loads(short.stdout) == json.loads(long.stdout)


def test_logs_dash_o_json_prints_one_event_per_line(api: tuple[str, StandIn]) -> None:
    result = run("logs", "--api", api[0], "-o", "json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows and all(row["type"] == "decision" for row in rows)


def test_version_option() -> None:
    from vmscale import __version__

    for flag in ("--version", "-V"):
        result = CliRunner().invoke(cli_app, [flag])
        assert result.exit_code == 0 and result.stdout == f"vmscale {__version__}\n"


def test_shell_completion_is_offered() -> None:
    help_text = CliRunner().invoke(cli_app, ["--help"]).stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
    script = CliRunner().invoke(cli_app, ["--show-completion", "bash"])
    assert script.exit_code == 0 and "complete" in script.stdout and "vmscale" in script.stdout


def help_text(*args: str) -> str:
    """A command's --help as one line of words (rich's boxes and wrapping removed)."""
    out = CliRunner().invoke(cli_app, [*args, "--help"]).stdout
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())


def test_no_token_on_the_command_line() -> None:
    """`vmscale load` took --token on argv, where `ps` shows it to every user of the host."""
    result = CliRunner().invoke(cli_app, ["load", "--api", "http://127.0.0.1:1", "--token", "s3cret-token"])
    assert result.exit_code == 2 and "No such option: --token" in result.output
    text = help_text("load")
    assert "--token-file" in text and "$VMSCALE_TOKEN" in text


def test_the_token_file_help_says_where_the_token_comes_from_without_it() -> None:
    text = help_text("status")
    assert "without it the token is read from the VMSCALE_TOKEN environment variable" in text
    assert "default: $VMSCALE_TOKEN" not in text


def _commands(group: Any = None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import typer.main

    click_group = group or typer.main.get_command(cli_app)
    found: list[tuple[str, ...]] = []
    for name, cmd in click_group.commands.items():
        if hasattr(cmd, "commands"):
            found += _commands(cmd, (*prefix, name))
        elif name != "version":
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_every_command_teaches_with_examples(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli_app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout and f"vmscale {' '.join(command)}" in result.stdout


@pytest.mark.parametrize("command", [["up"], ["config", "check"]])
def test_help_documents_environment_overrides(command: list[str]) -> None:
    text = help_text(*command)
    assert "VMSCALE_<SECTION>__<SETTING>=value" in text and "VMSCALE_GROUP__MAX=6" in text


def test_a_resize_and_a_vertical_decision_read_as_lines() -> None:
    from vmscale.cli.fmt import event_line

    resize = {
        "name": "web-1",
        "stage": "serving",
        "from": 1,
        "to": 2,
        "reason": "the workload serves with 2 CPUs",
    }
    line = event_line({"t": 0, "type": "resize", "data": {**resize, "seconds": 0.42}})
    assert "resize    web-1 1 -> 2 vCPUs serving, 0.42 s after the decision (the workload serves" in line
    grow = {
        "direction": "up",
        "current": 1,
        "desired": 1,
        "policy": "target",
        "reason": "r",
        "code": "above_target",
        "placement": "resize-up",
    }
    assert event_line({"t": 0, "type": "decision", "data": grow}).endswith(
        "scale up 1 -> 1 (target: r) [resize-up]"
    )


def test_the_golden_snapshot_events_read_as_lines() -> None:
    from vmscale.cli.fmt import event_line
    from vmscale.controller.golden import GoldenChanged

    made = GoldenChanged("ready", "3f2a9c", 135.4, 8.5, 2.1, made_now=True).to_dict()
    assert event_line({"t": 0, "type": "golden", "data": made}).endswith(
        "golden    golden snapshot 3f2a9c ready: 135 MiB, made (booted in 8.5 s, saved in 2.1 s)"
    )
    failed = GoldenChanged("failed", error="TemporaryProviderError: golden did not come up").to_dict()
    assert "could not be made: TemporaryProviderError: golden did not come up; it is tried again" in (
        event_line({"t": 0, "type": "golden", "data": failed})
    )
