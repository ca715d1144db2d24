"""`vmscale up` inside a test topology's ctl namespace, asked only through the `vmscale` CLI (which runs
there too): what the many-hosts e2e tests and the host-failure benchmark drive.

    with CtlUp(topo, config, state_dir) as up:         # vmscale up -c state_dir/config.toml, in ctl
        up.json("instances")                            # vmscale instances --json --api ...
        up.cli("hosts", "drain", "h1", "--follow")      # any command, in ctl, against this API
        up.events("placement")                          # the event log (a file: read from here)

Nothing here sends traffic from the root namespace: every command runs in ctl (``Topology.ctl_argv``).
``stop`` sends SIGTERM, as Ctrl-C would, so vmscale removes the group's instances itself.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.e2e.libvirt_support import to_toml
from tests.support import cluster_tasks as tasks
from tests.support.controller_proc import ControllerProcess
from tests.support.netns_hosts import Topology
from tests.support.wait import wait_until

API_PORT = 8900  # the ctl namespace is the test's own: its loopback ports are all free
FRONT = "http://127.0.0.1:18080"  # HAProxy's front, in ctl
BOOT_S = 240.0  # three TCG guests booting at once on a busy 2-core machine


def service_config(
    topo: Topology,
    group: str,
    image: Path,
    *,
    size: dict[str, int],
    policies: list[dict[str, Any]] | None = None,
    cluster: dict[str, Any] | None = None,
    unreachable_after_s: float = 30.0,
    block: int = 0,
) -> dict[str, Any]:
    """A whole `vmscale up` config for one group over the topology's hosts, behind HAProxy in ctl
    (``FRONT``); ``size`` is the group's min/max/initial. ``block`` picks the group's own /28 of the
    topology's guest addresses (instance N gets its Nth), so groups run one after another in one
    topology never share an address or a MAC: nothing one left in an ARP cache or a bridge's
    forwarding table can reach the next."""
    pool = list(ipaddress.ip_network(topo.guest_pool).subnets(new_prefix=28))[block]
    cfg = tasks.cluster_config(
        group,
        topo.cluster_hosts(),
        image_dir=str(image),
        guest_pool=str(pool),
        network=topo.network,
        unreachable_after_s=unreachable_after_s,
    )
    cfg["group"].update(size, interval_s=1.0)
    cfg["cluster"].update(cluster or {})
    return {
        **cfg,
        "policies": policies or [],
        # a TCG guest is ~14x slower than the host: patient probes (config.libvirt.TCG_HEALTH), and
        # HAProxy checks that do not call a guest paused for a migration's switch-over dead
        "health": {"timeout_s": 3.0, "unhealthy_threshold": 5, "boot_timeout_s": BOOT_S},
        "launch": {"terminate_timeout_s": 2.0, "backoff_initial_s": 1.0, "backoff_max_s": 8.0},
        "drain": {"timeout_s": 10.0, "grace_s": 0.5},
        "lb": {
            "kind": "haproxy",
            "haproxy": {
                "bind": "127.0.0.1:18080",
                "stats_bind": "127.0.0.1:18081",
                "check_inter_s": 1.0,
                "check_timeout_s": 3.0,
                "check_fall": 3,
            },
        },
    }


class CtlUp:
    def __init__(self, topo: Topology, config: dict[str, Any], state_dir: Path) -> None:
        self.topo = topo
        self.state_dir = state_dir
        self.api = f"http://127.0.0.1:{API_PORT}"
        config = {**config, "api": {"bind": f"127.0.0.1:{API_PORT}"}, "state": {"dir": str(state_dir)}}
        state_dir.mkdir(parents=True, exist_ok=True)
        config_path = state_dir / "config.toml"
        config_path.write_text(to_toml(config))
        self.process = ControllerProcess(config_path, self.api, state_dir / "up.log", prefix=topo.ctl_argv())

    def start(self, timeout_s: float = 90.0) -> CtlUp:
        self.process.start()

        def answers() -> bool:
            assert self.process.running, f"`vmscale up` exited:\n{self.log_tail()}"
            return self.cli("status", "--json", check=False).returncode == 0

        wait_until(answers, "vmscale up's API answering in the ctl namespace", timeout_s, poll_s=1.0)
        return self

    def log_tail(self, chars: int = 3000) -> str:
        path = self.process.log_path
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def cli(self, *args: str, check: bool = True, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        """``vmscale ARGS --api URL`` in the ctl namespace."""
        argv = self.topo.ctl_argv(sys.executable, "-m", "vmscale", *args, "--api", self.api)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"vmscale {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def instances(self) -> dict[str, dict[str, Any]]:
        """name -> instance row (state, endpoint, details.host, ...), as `vmscale instances` has it."""
        return {i["name"]: i for i in self.json("instances")["instances"]}

    def hosts(self) -> dict[str, dict[str, Any]]:
        return {h["name"]: h for h in self.json("hosts")["hosts"]}

    def events(self, *types: str) -> list[dict[str, Any]]:
        """The event log (autoscaler.jsonl) so far, of the given types (all when none)."""
        path = self.state_dir / "autoscaler.jsonl"
        if not path.exists():
            return []
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r for r in rows if not types or r.get("type") in types]

    def messages(self, *types: str) -> list[str]:
        return [str(e["data"].get("message", e["data"])) for e in self.events(*types)]

    def stop(self) -> None:
        """SIGTERM, as Ctrl-C: vmscale removes its instances (SIGKILL if it does not end in time)."""
        self.process.stop(timeout_s=180)

    def __enter__(self) -> CtlUp:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
