"""A user's own service, not vmscale's backend, scaled as a process group (issue 14, part 1).

The service is a 20-line HTTP server the test writes itself; vmscale knows it only from the
command template. What a user is promised, with real processes and a real HAProxy:

* each instance runs the command with its own port and name filled in, in the configured working
  folder and environment, inside its own cgroup, marked ``VMSCALE_INSTANCE=<group>/<name>``;
* it is health-checked and balanced: requests through HAProxy's front reach both instances;
* a controller restart adopts the running instances (same processes, found by record, create time
  and marker, not by command line) and HAProxy keeps serving across it;
* stopping the group leaves no process of it behind.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.haproxy_support import OpenLoopLoad, fast_config, short_state_dir
from tests.integration.live_support import READY_TIMEOUT_S, live_config_data
from tests.support.wait import wait_until
from vmscale.config import parse_config
from vmscale.config.schema import VmscaleConfig
from vmscale.errors import LoadBalancerError
from vmscale.lb.haproxy import HaproxyLoadBalancer
from vmscale.providers import proctree
from vmscale.service import Service

# The test's own service: answers every GET with who it is and what it was given.
SERVICE = """\
import http.server, json, os, sys

PORT, NAME = int(sys.argv[1]), sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({
            "server": NAME, "path": self.path, "cwd": os.getcwd(), "pid": os.getpid(),
            "greeting": os.environ.get("GREETING"), "listen": os.environ.get("LISTEN_PORT"),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


print(f"{NAME} serving on {PORT}", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
"""
RATE_RPS = 20.0
LOAD_LIMIT_S = 120


@pytest.fixture
def state_dir() -> Iterator[Path]:
    with short_state_dir("vmscale-own-") as path:
        yield path


def own_service_config(state_dir: Path) -> VmscaleConfig:
    app = state_dir / "app"
    app.mkdir()
    (app / "service.py").write_text(SERVICE)
    data = live_config_data(state_dir, max_=2)
    del data["template"]["fib_max_n"]  # nothing of the fib backend: this is someone else's service
    data["provider"]["process"].update(
        command=[sys.executable, "service.py", "{port}", "{name}"],
        env={"GREETING": "hello from {name}", "LISTEN_PORT": "{port}"},
        cwd=str(app),
        cpu_limit="auto",
    )
    data["health"]["path"] = "/healthz"
    data["lb"] = {"kind": "haproxy", "haproxy": fast_config().model_dump()}
    return parse_config(data, "own-service test config")


def ready(svc: Service) -> dict[str, str]:
    """Ready instances -> their pid (from what the provider reported)."""
    return {i.name: i.details.get("pid", "") for i in svc.controller.instances() if i.state == "ready"}


def served_by_haproxy(svc: Service, count: int) -> bool:
    if not (svc.controller.group().ready == count and len(svc.controller.instances()) == count):
        return False
    assert isinstance(svc.lb, HaproxyLoadBalancer)
    try:
        return set(svc.lb.api.servers_state(svc.cfg.group.name)) == set(ready(svc))
    except LoadBalancerError:
        return False


def test_own_service_is_launched_balanced_adopted_and_removed(state_dir: Path) -> None:
    cfg = own_service_config(state_dir)
    group = cfg.group.name
    running: list[Service] = []
    try:
        first = Service(cfg)
        running.append(first)
        first.start()
        first.controller.set_paused(True, "test")
        first.controller.set_desired(2, "test")
        wait_until(
            lambda: served_by_haproxy(first, 2),
            "two ready instances of the service, both in HAProxy",
            READY_TIMEOUT_S,
        )
        pids = ready(first)

        # What each instance was given: its own port and name, the cwd, the env, the marker.
        for info in first.controller.instances():
            answer = httpx.get(f"{info.endpoint}/healthz", timeout=5).json()
            port = info.endpoint.rsplit(":", 1)[1]
            assert answer["server"] == info.name and answer["pid"] == int(info.details["pid"])
            assert answer["cwd"] == str(state_dir / "app")
            assert (answer["greeting"], answer["listen"]) == (f"hello from {info.name}", port)
            assert proctree.marker_of(psutil.Process(answer["pid"])) == f"{group}/{info.name}"
            if "cgroup" in info.details:  # the host offers a cgroup CPU controller
                assert str(answer["pid"]) in Path(info.details["cgroup"], "cgroup.procs").read_text().split()
        assert {p.pid for p in proctree.marked(group)} == {int(pid) for pid in pids.values()}

        assert isinstance(first.lb, HaproxyLoadBalancer)
        front = first.lb.frontend_url()
        with OpenLoopLoad(f"{front}/hello", RATE_RPS, duration_s=LOAD_LIMIT_S) as load:
            wait_until(
                lambda: all(load.result.servers.get(name, 0) >= 5 for name in pids),
                "requests through HAProxy to reach both instances",
                READY_TIMEOUT_S,
            )
            # A controller restart: instances and HAProxy keep running; the next one adopts them.
            first.stop(terminate=False)
            running.remove(first)
            sent_across = load.result.sent
            second = Service(cfg)
            transitions: list[dict[str, object]] = []
            second.events.add_listener(
                lambda ev: transitions.append(ev.data) if ev.type == "instance" else None
            )
            running.append(second)
            second.start()
            second.controller.set_paused(True, "test")
            wait_until(
                lambda: served_by_haproxy(second, 2),
                "the restarted controller to adopt both",
                READY_TIMEOUT_S,
            )
            wait_until(
                lambda: load.result.sent >= sent_across + 2 * RATE_RPS,
                "traffic after the restart",
                READY_TIMEOUT_S,
            )
            result = load.stop()
        assert ready(second) == pids, "the same processes must be adopted, not new ones launched"
        launched = [t for t in transitions if "launch" in str(t.get("reason"))]
        assert not launched, f"the restarted controller launched instead of adopting: {launched}"
        assert result.failed == 0, f"{result.failed} of {result.sent} requests failed: {result.failures[:5]}"
        assert all(result.servers.get(name, 0) > 0 for name in pids), result.servers
    finally:
        for svc in running:
            svc.stop(terminate=True)
        leftovers = proctree.marked(group)
        for proc in leftovers:
            proc.kill()
    assert leftovers == [], f"processes of {group} outlived the group: {[p.pid for p in leftovers]}"
    assert not list((state_dir / "process").glob("*.json")), "instance records left behind"
