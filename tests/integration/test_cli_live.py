"""The real `vmscale` command, run as a subprocess the way an operator runs it, against a LIVE
controller (process provider, real backends): `status`, `instances`, `scale`, `logs` with their
--json output checked against the same schemas as the unit tests, the documented exit codes,
and `vmscale up` as a daemon (JSON logs on stderr, SIGTERM stops it cleanly, nothing left)."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.live_support import (
    READY_TIMEOUT_S,
    backend_processes,
    controller_state,
    free_port,
    kill_backends,
    live_config,
    live_config_data,
    stop_and_check,
)
from tests.support.wait import wait_until
from tests.unit.test_cli_ops import EVENT_SCHEMA, GROUP_SCHEMA, INSTANCES_SCHEMA, validate
from vmscale.api.auth import Scope, TokenStore
from vmscale.config import parse_config
from vmscale.service import Service

REPO = Path(__file__).resolve().parents[2]
WRITE_TOKEN = "live-cli-write-token-0123456789"
READ_TOKEN = "live-cli-read-token-0123456789"
CLI_TIMEOUT_S = 60.0


def vmscale(*args: str, token: str | None = WRITE_TOKEN, timeout_s: float = CLI_TIMEOUT_S) -> Any:
    """Run ``python -m vmscale ARGS`` and return the finished process (text output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMSCALE_")}
    if token:
        env["VMSCALE_TOKEN"] = token
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "vmscale", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        cwd=REPO,
    )


def ok_json(*args: str) -> Any:
    proc = vmscale(*args)
    assert proc.returncode == 0, f"vmscale {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    cfg = live_config(tmp_path_factory.mktemp("cli"), max_=3)
    tokens = TokenStore([(Scope.WRITE, WRITE_TOKEN, "alice"), (Scope.READ, READ_TOKEN, "grafana")])
    svc = Service(cfg, tokens=tokens)
    try:
        svc.start()
        svc.controller.set_paused(True, "test")
        wait_until(
            lambda: svc.controller.group().ready >= 1, "the first instance to be ready", READY_TIMEOUT_S
        )
        yield svc
    finally:
        stop_and_check(svc)


def test_status_json_is_the_live_group(live: Service) -> None:
    doc = ok_json("status", "--api", str(live.api_url), "--json")
    validate(GROUP_SCHEMA, doc)
    assert doc["name"] == live.cfg.group.name
    assert (doc["min"], doc["max"], doc["provider"], doc["lb"]) == (1, 3, "process", "none")
    assert doc["paused"] is True and doc["policies"] == ["cpu-target"]


def test_status_table_reads_well(live: Service) -> None:
    proc = vmscale("status", "--api", str(live.api_url))
    assert proc.returncode == 0, proc.stderr
    flat = " ".join(proc.stdout.split())
    assert f"group {live.cfg.group.name}" in flat and "paused" in flat and "cpu-target" in flat
    assert "None" not in flat, flat


def test_scale_then_instances_shows_two_and_logs_name_the_actor(live: Service) -> None:
    api = str(live.api_url)
    doc = ok_json("instances", "--api", api, "--json")
    validate(INSTANCES_SCHEMA, doc)
    assert [(i["name"], i["state"]) for i in doc["instances"]] == [(f"{live.cfg.group.name}-1", "ready")]

    scaled = ok_json("scale", "2", "--api", api, "--json")
    validate(GROUP_SCHEMA, scaled)
    assert scaled["desired"] == 2

    def two_ready() -> list[dict[str, Any]] | None:
        rows = ok_json("instances", "--api", api, "--json")["instances"]
        return rows if sum(r["state"] == "ready" for r in rows) == 2 else None

    rows = wait_until(
        two_ready,
        "`vmscale instances` to show two ready instances",
        READY_TIMEOUT_S,
        state=lambda: controller_state(live),
    )
    validate(INSTANCES_SCHEMA, {"instances": rows})
    assert all(r["endpoint"].startswith("http://127.0.0.1:") for r in rows)
    table = vmscale("instances", "--api", api)
    assert table.returncode == 0 and "2 instance(s)" in table.stdout, table.stdout

    logs = vmscale("logs", "--api", api, "--json")
    assert logs.returncode == 0, logs.stderr
    events = [json.loads(line) for line in logs.stdout.splitlines()]
    for ev in events:
        validate(EVENT_SCHEMA, ev)
    ups = [e["data"] for e in events if e["type"] == "decision" and e["data"].get("direction") == "up"]
    assert ups and ups[-1]["actor"] == "alice" and ups[-1]["desired"] == 2, events

    human = vmscale("logs", "--api", api)
    assert human.returncode == 0, human.stderr
    assert "scale up 1 -> 2 (manual: set to 2 by alice)" in human.stdout, human.stdout
    assert "automatic scaling paused by test" in human.stdout, human.stdout
    assert "None" not in human.stdout, human.stdout


def test_logs_follow_prints_a_decision_as_it_happens(live: Service) -> None:
    api = str(live.api_url)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VMSCALE_")},
        "VMSCALE_TOKEN": READ_TOKEN,
    }
    cmd = [sys.executable, "-m", "vmscale", "logs", "--api", api, "-f", "--json", "--limit", "1"]
    cmd += ["--types", "endpoints,decision", "--max-events", "2"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        watchdog = threading.Timer(CLI_TIMEOUT_S, proc.kill)  # a blocked readline() ends with the kill
        watchdog.start()
        try:
            assert proc.stdout is not None
            recent = json.loads(proc.stdout.readline())  # the last decision, from REST
            first = json.loads(proc.stdout.readline())  # the stream's opening endpoints event
            assert recent["type"] == "decision" and first["type"] == "endpoints", (recent, first)
            live.controller.set_desired(live.controller.group().desired, "bob")  # a decision, no change
            streamed = json.loads(proc.stdout.readline())
            assert proc.wait(timeout=CLI_TIMEOUT_S) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
    validate(EVENT_SCHEMA, streamed)
    assert streamed["type"] == "decision" and streamed["data"]["actor"] == "bob", streamed


def test_scale_outside_max_is_exit_2_and_changes_nothing(live: Service) -> None:
    before = live.controller.group().desired
    proc = vmscale("scale", "99", "--api", str(live.api_url))
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "HTTP 409" in proc.stderr and "[1, 3]" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert live.controller.group().desired == before


def test_scale_with_a_read_token_is_refused_with_exit_1(live: Service) -> None:
    proc = vmscale("scale", "1", "--api", str(live.api_url), token=READ_TOKEN)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "HTTP 403" in proc.stderr and "write" in proc.stderr, proc.stderr


@pytest.mark.parametrize("args", [["status", "--json"], ["instances"], ["scale", "2"], ["logs", "-f"]])
def test_api_down_is_exit_3(args: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = vmscale(*args, "--api", url, "--timeout", "3")
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    assert f"cannot reach the control API at {url}" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------- vmscale up
def toml_of(data: dict[str, Any]) -> str:
    """The small subset of TOML the live config needs (tables, strings, numbers, inline tables)."""

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        return json.dumps(str(v))

    out: list[str] = []
    for section, body in data.items():
        if isinstance(body, list):
            for item in body:
                out += [f"[[{section}]]", *(f"{k} = {val(v)}" for k, v in item.items()), ""]
            continue
        nested = {k: v for k, v in body.items() if isinstance(v, dict)}
        out += [f"[{section}]", *(f"{k} = {val(v)}" for k, v in body.items() if k not in nested), ""]
        for sub, sub_body in nested.items():
            out += [f"[{section}.{sub}]", *(f"{k} = {val(v)}" for k, v in sub_body.items()), ""]
    return "\n".join(out)


def test_up_logs_json_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data = live_config_data(tmp_path / "state", max_=3)
    group, api = data["group"]["name"], "http://" + data["api"]["bind"]
    config = tmp_path / "vmscale.toml"
    config.write_text(toml_of(data))
    assert vmscale("config", "check", str(config)).returncode == 0
    stderr_path = tmp_path / "up.stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMSCALE_")}
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vmscale", "up", "-c", str(config), "--log-format", "json"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=REPO,
        )
    try:

        def group_ready(n: int) -> bool:
            assert proc.poll() is None, f"vmscale up exited {proc.returncode}: {stderr_path.read_text()}"
            try:
                g = httpx.get(f"{api}/v1/group", timeout=5, trust_env=False).json()
            except httpx.HTTPError:
                return False
            return bool(g["ready"] == n)

        wait_until(lambda: group_ready(1), "`vmscale up` to serve one ready instance", READY_TIMEOUT_S)
        # hold the count by hand (the CPU policy would otherwise scale an idle group back in)
        assert vmscale("pause", "--api", api, token=None).returncode == 0
        assert vmscale("scale", "2", "--api", api, token=None).returncode == 0
        wait_until(lambda: group_ready(2), "the scale-up to two ready instances", READY_TIMEOUT_S)
        assert len(backend_processes(group)) >= 2

        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)  # drains (at most drain.timeout_s) and terminates both
        assert code == 0, f"vmscale up exited {code} on SIGTERM: {stderr_path.read_text()[-3000:]}"
        leftovers = backend_processes(group)
        assert not leftovers, f"backends left running after SIGTERM: {[p.pid for p in leftovers]}"
        assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        kill_backends(group)

    lines = [line for line in stderr_path.read_text().splitlines() if line.strip()]
    assert lines, "vmscale up wrote no log lines"
    records = []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"a stderr line of `vmscale up --log-format json` is not JSON: {line!r}")
        assert isinstance(rec, dict) and {"t", "level", "logger", "msg"} <= set(rec), line
        records.append(rec)
    assert any("control API on" in r["msg"] for r in records), records[:5]
    assert not [r for r in records if r["level"] in ("error", "critical")], records


# ------------------------------------------------------------------------- the systemd unit
def test_the_systemd_unit_verifies_and_leaves_time_to_drain(tmp_path: Path) -> None:
    """examples/vmscale.service passes `systemd-analyze verify` (which works without systemd as
    PID 1), runs `vmscale up` with JSON logs, and gives a stop long enough to drain."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze not found: apt-get install systemd"
    text = (REPO / "examples" / "vmscale.service").read_text()
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(text)
    svc = unit["Service"]
    assert svc["Type"] == "notify" and svc["KillSignal"] == "SIGTERM" and svc["Restart"] == "on-failure"
    assert svc["Delegate"] == "yes", "the unit must own the backends' cgroups (created under its own)"
    assert svc["RestartPreventExitStatus"] == "2", "exit 2 (config or start-up error) must not restart"
    assert svc["ExecStart"].endswith("vmscale up -c /etc/vmscale/vmscale.toml --log-format json")
    defaults = parse_config({})
    needed = defaults.drain.timeout_s + defaults.launch.terminate_timeout_s
    assert float(svc["TimeoutStopSec"]) > needed, f"TimeoutStopSec must exceed drain + terminate ({needed} s)"
    assert "LoadCredential" in svc or "EnvironmentFile" in svc, "tokens must not live in the unit itself"

    # verify checks that ExecStart's program exists: point it at this checkout's vmscale
    exe = Path(sys.executable).with_name("vmscale")
    assert exe.exists(), f"{exe} missing: pip install -e ."
    local = tmp_path / "vmscale.service"
    local.write_text(text.replace("/usr/local/bin/vmscale", str(exe)))
    check = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True, timeout=60)
    remarks = [line for line in (check.stdout + check.stderr).splitlines() if "vmscale.service" in line]
    assert check.returncode == 0 and not remarks, check.stdout + check.stderr
