"""Several groups in one real `vmscale up`: two process groups with real backends, each behind its own
real HAProxy front, scale independently while a third group is broken — its command fails at once,
so every launch fails and is retried with back-off — and nothing of that reaches the other two.
Asserted the way an operator sees it: the control API (/v1/groups), `vmscale status`, `instances`
and `logs`, the fronts answering from their own group's backends, /metrics, and nothing left
running after SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.haproxy_support import free_port
from tests.integration.live_support import READY_TIMEOUT_S, backend_processes, free_base_port, kill_backends
from tests.support.controller_proc import ControllerProcess
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 60.0
# The broken group's service: a command of the user's that fails at once, every time.
BROKEN_COMMAND = '["/bin/sh", "-c", "echo cannot open /etc/app.conf >&2; exit 3"]'


def group_toml(name: str, *, base_port: int, front: int, stats: int, command: str = "") -> str:
    process = f'base_port = {base_port}, cpu_limit = "workers"' + (
        f", command = {command}" if command else ""
    )
    haproxy = (
        f'bind = "127.0.0.1:{front}", stats_bind = "127.0.0.1:{stats}", check_inter_s = 0.5, '
        "check_timeout_s = 0.5"
    )
    return f"""
[[groups]]
group = {{ name = "{name}", min = 1, max = 3, initial = 1, interval_s = 0.5 }}
provider = {{ kind = "process", process = {{ {process} }} }}
template = {{ vcpus = 1, memory_mb = 256, fib_max_n = 30 }}
health = {{ timeout_s = 2.0, boot_timeout_s = 30.0 }}
drain = {{ timeout_s = 5.0, grace_s = 0.2 }}
launch = {{ terminate_timeout_s = 5.0, backoff_initial_s = 0.5, backoff_max_s = 2.0 }}
lb = {{ kind = "haproxy", haproxy = {{ {haproxy} }} }}

[[groups.policies]]
kind = "target"
name = "cpu"
metric = "cpu"
target = 60.0
"""


class Groups:
    """Three groups' config and their one `vmscale up`."""

    def __init__(self, tmp: Path) -> None:
        suffix = uuid.uuid4().hex[:5]
        self.web, self.batch, self.broken = f"web{suffix}", f"batch{suffix}", f"broken{suffix}"
        self.fronts = {g: free_port() for g in (self.web, self.batch, self.broken)}
        api_port = free_port()
        self.api = f"http://127.0.0.1:{api_port}"
        text = f'[api]\nbind = "127.0.0.1:{api_port}"\n\n[state]\ndir = "{tmp / "state"}"\n'
        bases: list[int] = []
        while len(bases) < 3:  # three blocks of free ports, apart (nothing listens on them yet)
            base = free_base_port(4)
            bases += [base] if all(abs(base - b) > 4 for b in bases) else []
        for name, base in zip((self.web, self.batch, self.broken), bases, strict=True):
            text += group_toml(
                name,
                base_port=base,
                front=self.fronts[name],
                stats=free_port(),
                command=BROKEN_COMMAND if name == self.broken else "",
            )
        self.config = tmp / "groups.toml"
        self.config.write_text(text)
        self.ctl = ControllerProcess(self.config, self.api, tmp / "controller.log")

    @property
    def names(self) -> tuple[str, str, str]:
        return self.web, self.batch, self.broken

    def groups(self) -> dict[str, dict[str, Any]]:
        return {g["name"]: g for g in self.ctl.get("/v1/groups")}

    def log(self) -> str:
        return self.ctl.log_path.read_text(errors="replace")[-4000:]


def vmscale(api: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMSCALE_")}
    env |= {"VMSCALE_API": api, "NO_COLOR": "1", "COLUMNS": "220"}
    return subprocess.run(
        [sys.executable, "-m", "vmscale", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env=env,
        cwd=REPO,
    )


def ok_json(api: str, *args: str) -> Any:
    proc = vmscale(api, *args)
    assert proc.returncode == 0, f"vmscale {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout)


@pytest.fixture
def running() -> Iterator[Groups]:
    if shutil.which("haproxy") is None:
        raise AssertionError("haproxy is not installed: apt-get install haproxy")
    tmp = Path(tempfile.mkdtemp(prefix="vmscale-g-"))  # short: HAProxy's sockets live under it
    rig = Groups(tmp)
    try:
        assert vmscale(rig.api, "config", "check", str(rig.config)).returncode == 0
        rig.ctl.start()
        rig.ctl.wait_api(READY_TIMEOUT_S)
        for name in rig.names:  # only the test steers the counts
            rig.ctl.post(f"/v1/groups/{name}/pause")
        yield rig
    finally:
        rig.ctl.stop()
        leftovers = {g: [p.pid for p in backend_processes(g)] for g in rig.names}
        for g in rig.names:
            kill_backends(g)
        haproxies = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if "haproxy" in " ".join(p.info["cmdline"] or [])
            and str(tmp) in " ".join(p.info["cmdline"] or [])
        ]
        for pid in haproxies:
            psutil.Process(pid).kill()
        shutil.rmtree(tmp, ignore_errors=True)
        assert not any(leftovers.values()), f"backends outlived `vmscale up`: {leftovers}"
        assert not haproxies, f"HAProxy processes outlived `vmscale up`: {haproxies}"


def servers_behind(front: int, requests: int = 12) -> set[str]:
    """Which backends answer through one HAProxy front (a bounded number of light requests)."""
    seen = set()
    with httpx.Client(timeout=10) as client:
        for _ in range(requests):
            resp = client.get(f"http://127.0.0.1:{front}/12")
            assert resp.status_code == 200, resp.text
            seen.add(resp.json()["server"])
    return seen


def ready(rig: Groups, counts: dict[str, int]) -> bool:
    groups = rig.groups()
    return all(groups[g]["ready"] == n and groups[g]["actual"] == n for g, n in counts.items())


def test_two_groups_scale_independently_while_a_third_is_broken(running: Groups) -> None:
    rig = running
    web, batch, broken = rig.names
    wait_until(lambda: ready(rig, {web: 1, batch: 1}), "one ready instance in web and batch", READY_TIMEOUT_S,
               state=rig.log)  # fmt: skip
    # the broken group's launches fail, are reported with the command's own words, and are retried
    # (its own stream: nothing of the healthy groups in it)
    follow = vmscale(
        rig.api, "logs", "-f", "--group", broken, "--types", "error", "--max-events", "2", "--json"
    )
    assert follow.returncode == 0, follow.stderr
    errors = [json.loads(line) for line in follow.stdout.splitlines()]
    assert len(errors) == 2 and {e["group"] for e in errors} == {broken}, errors
    assert all("cannot open /etc/app.conf" in e["data"]["message"] for e in errors), errors

    # web scales to 2 (by the CLI, named with --group); batch stays as it is
    scaled = ok_json(rig.api, "scale", "2", "--group", web, "--json")
    assert (scaled["name"], scaled["desired"]) == (web, 2)
    wait_until(lambda: ready(rig, {web: 2, batch: 1}), "web at 2 and batch still at 1", READY_TIMEOUT_S,
               state=rig.log)  # fmt: skip
    assert servers_behind(rig.fronts[web]) == {f"{web}-1", f"{web}-2"}
    assert servers_behind(rig.fronts[batch]) == {f"{batch}-1"}

    # then the other way round, through the API
    rig.ctl.post(f"/v1/groups/{batch}/desired", {"desired": 3})
    rig.ctl.post(f"/v1/group/desired?group={web}", {"desired": 1})
    wait_until(lambda: ready(rig, {web: 1, batch: 3}), "web back at 1 and batch at 3", READY_TIMEOUT_S,
               state=rig.log)  # fmt: skip
    assert servers_behind(rig.fronts[batch]) == {f"{batch}-1", f"{batch}-2", f"{batch}-3"}
    (web_left,) = [i["name"] for i in rig.ctl.get(f"/v1/groups/{web}/instances") if i["state"] == "ready"]
    assert servers_behind(rig.fronts[web]) == {web_left}

    # the operator's view: every group, the broken one never ready, and why
    doc = ok_json(rig.api, "status", "-o", "json")
    status = {g["name"]: (g["desired"], g["ready"]) for g in doc["groups"]}
    assert status == {web: (1, 1), batch: (3, 3), broken: (1, 0)}
    table = vmscale(rig.api, "status")
    assert table.returncode == 0 and all(name in table.stdout for name in rig.names), table.stdout
    rows = ok_json(rig.api, "instances", "-o", "json")["instances"]
    assert sorted((r["group"], r["name"]) for r in rows if r["state"] == "ready") == sorted(
        [(web, web_left), *((batch, f"{batch}-{i}") for i in (1, 2, 3))]
    )
    assert all(r["group"] == broken for r in rows if r["name"].startswith(broken))
    refused = vmscale(rig.api, "scale", "2")
    assert refused.returncode == 2 and "several groups" in refused.stderr

    # one /metrics for all
    text = httpx.get(rig.api + "/metrics", timeout=5).text
    for name in rig.names:
        assert f'vmscale_desired_instances{{group="{name}"}}' in text
    assert f'vmscale_instance_replacements_total{{group="{web}"}} 0.0' in text
    assert f'vmscale_instance_replacements_total{{group="{batch}"}} 0.0' in text
    logs = vmscale(rig.api, "logs", "--group", batch, "--json")
    assert logs.returncode == 0
    decided = [json.loads(line) for line in logs.stdout.splitlines()]
    assert [(d["group"], d["data"]["action"], d["data"]["desired"]) for d in decided] == [
        (batch, "paused", 1),
        (batch, "scale", 3),
    ]
