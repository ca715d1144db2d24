"""The process provider running commands of the user's (not vmscale's backend), for real.

Each test's processes are found by their ``VMSCALE_INSTANCE`` marker and killed in the fixture's
finaliser, whatever happened; waits poll with a deadline.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.live_support import free_base_port
from tests.integration.test_process_provider import DEADLINE_S
from tests.support.wait import wait_until
from vmscale.config.process import ProcessProviderConfig
from vmscale.errors import TemporaryProviderError
from vmscale.providers import proctree
from vmscale.providers.base import InstanceSpec, instance_port
from vmscale.providers.process import ProcessProvider
from vmscale.providers.process_command import shim_argv

# Serves GET with its name; with "fork" it first starts a child (`sleep`) that must share its marker.
SERVICE = """\
import http.server, json, os, subprocess, sys
port, name = int(sys.argv[1]), sys.argv[2]
child = subprocess.Popen(["sleep", "300"]) if "fork" in sys.argv else None
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"server": name, "child": child.pid if child else None}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
print(f"{name} serving on {port}", flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


class Group:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.group = "pc" + uuid.uuid4().hex[:6]
        self.base_port = free_base_port(4)
        (tmp_path / "service.py").write_text(SERVICE)

    def provider(self, *extra: str, **config: object) -> ProcessProvider:
        command = [sys.executable, str(self.dir / "service.py"), "{port}", "{name}", *extra]
        settings = {"command": command, "base_port": self.base_port, **config}
        return ProcessProvider(ProcessProviderConfig.model_validate(settings), self.dir / "state")

    def port(self, spec: InstanceSpec) -> int:
        return instance_port(self.base_port, spec.index)

    def spec(self, index: int = 1) -> InstanceSpec:
        return InstanceSpec(group=self.group, name=f"{self.group}-{index}", index=index)

    def cleanup(self) -> None:
        """Terminate every instance still recorded (processes, cgroups, records), then kill anything
        that still carries the group's marker, whatever the test left behind."""
        if (self.dir / "state/process").is_dir():
            provider = ProcessProvider(ProcessProviderConfig(), self.dir / "state")
            for record in (self.dir / "state/process").glob("*.json"):
                provider.terminate(record.stem, graceful_timeout_s=3.0)
        for proc in proctree.marked(self.group):
            proc.kill()


@pytest.fixture
def grp(tmp_path: Path) -> Iterator[Group]:
    group = Group(tmp_path)
    try:
        yield group
    finally:
        group.cleanup()


def answer(endpoint: str) -> dict[str, object] | None:
    try:
        return dict(httpx.get(f"{endpoint}/", timeout=1.0).json())
    except httpx.HTTPError:
        return None


def test_whole_tree_is_marked_held_in_its_cgroup_and_terminated(grp: Group) -> None:
    provider = grp.provider("fork")
    spec = grp.spec()
    started = provider.launch(spec)
    wait_until(lambda: answer(started.endpoint) is not None, "the service to answer", DEADLINE_S)
    reply = answer(started.endpoint)
    assert reply is not None and reply["server"] == spec.name
    leader, child = psutil.Process(int(started.details["pid"])), psutil.Process(int(str(reply["child"])))
    marker = f"{grp.group}/{spec.name}"
    assert proctree.marker_of(leader) == marker and proctree.marker_of(child) == marker
    assert {p.pid for p in proctree.marked(grp.group, spec.name)} == {leader.pid, child.pid}
    if "cgroup" in started.details:
        members = set((Path(started.details["cgroup"]) / "cgroup.procs").read_text().split())
        assert {str(leader.pid), str(child.pid)} <= members
    record = json.loads((grp.dir / "state/process" / f"{spec.name}.json").read_text())
    assert record["marker"] == marker and record["command"][-2:] == [spec.name, "fork"]

    provider.terminate(spec.name, graceful_timeout_s=3.0)
    assert proctree.marked(grp.group) == []
    assert provider.list(grp.group) == []


def test_command_that_exits_at_once_fails_the_launch_with_its_log(grp: Group) -> None:
    provider = grp.provider("--no-such-option", start_check_s=5.0)
    (grp.dir / "service.py").write_text(
        "import sys\nprint('config file missing: /etc/app.conf')\nsys.exit(3)\n"
    )
    spec = grp.spec()
    with pytest.raises(TemporaryProviderError) as caught:
        provider.launch(spec)
    message = str(caught.value)
    assert f"{spec.name} exited with status 3 right after it started" in message
    assert "config file missing: /etc/app.conf" in message
    assert provider.list(grp.group) == []
    assert not (grp.dir / "state/process" / f"{spec.name}.json").exists(), "no record of a failed launch"
    assert proctree.marked(grp.group) == []


def test_command_that_dies_later_is_dropped_and_its_log_tail_logged(
    grp: Group, caplog: pytest.LogCaptureFixture
) -> None:
    provider = grp.provider()
    spec = grp.spec()
    started = provider.launch(spec)
    wait_until(lambda: answer(started.endpoint) is not None, "the service to answer", DEADLINE_S)
    with caplog.at_level(logging.WARNING, logger="vmscale.providers.process"):
        psutil.Process(int(started.details["pid"])).kill()
        wait_until(lambda: provider.list(grp.group) == [], "the dead instance to leave the list", DEADLINE_S)
    assert f"instance {spec.name} was killed by signal 9" in caplog.text
    assert "last lines of" in caplog.text and f"{spec.name} serving on {grp.port(spec)}" in caplog.text
    why = provider.last_exit(spec.name)
    assert why is not None and "killed by signal 9" in why and f"{spec.name} serving on" in why

    again = provider.launch(spec)
    assert provider.last_exit(spec.name) is None, "a new launch clears the last exit"
    provider.terminate(again.name, graceful_timeout_s=3.0)


def test_adopted_instance_that_vanished_is_reported_with_its_log(grp: Group) -> None:
    """Not our child (found from its record after a restart): no exit status, but its log's tail."""
    provider = grp.provider()
    spec = grp.spec()
    log = grp.dir / "adopted.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "print('listening on 8080', flush=True); import time; time.sleep(60)"],
            stdout=out,
        )
    try:
        wait_until(
            lambda: "listening" in log.read_text(), "the stand-in instance to write its log", DEADLINE_S
        )
        record = {
            "name": spec.name, "group": grp.group, "pid": proc.pid, "port": grp.port(spec), "vcpus": 1,
            "create_time": psutil.Process(proc.pid).create_time(), "cgroup": "", "log": str(log),
        }  # fmt: skip
        (grp.dir / "state/process" / f"{spec.name}.json").write_text(json.dumps(record))
        assert [i.name for i in provider.list(grp.group)] == [spec.name]
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert provider.list(grp.group) == []
    why = provider.last_exit(spec.name)
    assert why is not None and f"instance {spec.name} is gone" in why and "listening on 8080" in why


def test_record_naming_another_instances_process_is_not_adopted(grp: Group) -> None:
    """Same pid and create time, but the process's marker names another instance: not this one."""
    provider = grp.provider()
    real = provider.launch(grp.spec(1))
    wait_until(lambda: answer(real.endpoint) is not None, "the service to answer", DEADLINE_S)
    leader = psutil.Process(int(real.details["pid"]))
    impostor = grp.spec(2)
    record = {
        "name": impostor.name, "group": grp.group, "pid": leader.pid, "create_time": leader.create_time(),
        "port": grp.port(impostor), "vcpus": 1, "cgroup": "", "marker": f"{grp.group}/{impostor.name}",
    }  # fmt: skip
    (grp.dir / "state/process" / f"{impostor.name}.json").write_text(json.dumps(record))

    assert [i.name for i in provider.list(grp.group)] == [real.name]
    provider.terminate(impostor.name, graceful_timeout_s=1.0)
    assert answer(real.endpoint) is not None, "the real instance must not be touched"


def test_shim_starts_nothing_unless_told_to(tmp_path: Path) -> None:
    """A provider that dies between spawning and recording leaves nothing running."""
    flag = tmp_path / "ran"
    shim = subprocess.Popen(shim_argv(["touch", str(flag)]), stdin=subprocess.PIPE)
    assert shim.stdin is not None
    shim.stdin.close()  # what the provider's death does to the pipe
    assert shim.wait(timeout=10) != 0
    assert not flag.exists()

    told = subprocess.Popen(shim_argv(["touch", str(flag)]), stdin=subprocess.PIPE)
    told.communicate(b"go\n", timeout=10)
    assert told.returncode == 0 and flag.exists()
