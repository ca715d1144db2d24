"""N libvirt "hosts" on this machine, each in its own network and mount namespace, for tests.

The work is done by ``scripts/netns-hosts.sh`` (runnable alone for debugging: ``up 2 --tls``, ``down``,
``virsh PREFIX h1 list --all``); this module wraps it for pytest:

    with netns_hosts(2) as topo:          # fabric + ctl namespace + h1, h2 (libvirtd each)
        topo.virsh("h1", "list", "--all") # an independent view of a host (virsh over TCP from ctl)
        topo.stop_libvirtd("h2")          # by its pid; QEMU guests keep running
        topo.start_libvirtd("h2")

Everything the topology holds (namespaces, daemons, guests, their disks) is torn down by pid and
namespace name when the ``with`` ends, also when the test fails; a topology whose owner process
died (a killed pytest) is cleaned up by the next ``up`` (its namespaces carry the owner's pid).

The network rule: nothing here sends traffic from the root namespace. Hosts, guests, HAProxy and
load clients are reached only from the ``ctl`` namespace (``ctl_argv``, ``tests.support.ctl``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "netns-hosts.sh"


@dataclass(frozen=True, slots=True)
class NetnsHost:
    name: str
    netns: str
    address: str
    uri: str  # how vmscale (in ctl) reaches the host
    peer_uri: str  # how the other hosts' libvirtd reach it (peer-to-peer migration)
    state_dir: Path

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "run" / "libvirtd.pid"


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str
    state_dir: Path
    network: str  # the fabric's subnet (hosts, ctl and guests share it)
    guest_pool: str  # addresses tests may hand out to guests
    ctl_netns: str
    ctl_address: str
    hosts: tuple[NetnsHost, ...]
    tls: bool

    def cluster_hosts(self) -> list[dict[str, str]]:
        """The hosts as ``[[cluster.hosts]]`` tables."""
        return [{"name": h.name, "uri": h.uri, "migration_uri": h.peer_uri} for h in self.hosts]

    def host(self, name: str) -> NetnsHost:
        return next(h for h in self.hosts if h.name == name)

    def ctl_argv(self, *argv: str) -> list[str]:
        """A command line that runs ``argv`` inside the ctl namespace."""
        return ["ip", "netns", "exec", self.ctl_netns, *argv]

    def load(
        self, url: str, log: Path, *, rate: float, duration: float, seed: int = 1, n: int = 18
    ) -> subprocess.Popen[str]:
        """The bounded open-loop load client (fib(``n``) at ``rate`` req/s for ``duration`` s) in the
        ctl namespace against ``url``, logging every request to ``log``; its summary is on stdout."""
        argv = self.ctl_argv(
            sys.executable, "-m", "vmscale", "load", "--mode", "step", "--rate", str(rate),
            "--duration", str(duration), "--n", str(n), "--timeout", "20", "--url", url, "--json",
            "--log", str(log), "--seed", str(seed),
        )  # fmt: skip
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def script(self, *args: str, timeout_s: float = 120) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"netns-hosts.sh {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def virsh(self, host: str, *args: str, check: bool = True) -> str:
        """virsh against ``host`` over TCP from the ctl namespace: libvirt's own view, not vmscale's."""
        argv = self.ctl_argv("timeout", "30", "virsh", "-c", self.host(host).uri, *args)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=40, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"virsh {' '.join(args)} on {host}: {done.stderr.strip()}")
        return done.stdout

    def domains(self, host: str, prefix: str = "", *, running_only: bool = False) -> set[str]:
        out = self.virsh(host, "list", "--name", *(() if running_only else ("--all",)))
        return {n for n in out.split() if n.startswith(prefix)}

    def libvirtd_pid(self, host: str) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.host(host).pidfile.read_text().strip())
            os.kill(pid, 0)
            return pid
        return None

    def stop_libvirtd(self, host: str, signal: str = "KILL") -> None:
        """Stop ``host``'s libvirtd by its pid (SIGKILL by default: a crash, not a clean stop)."""
        self.script("stop-daemon", self.prefix, host, signal)

    def start_libvirtd(self, host: str) -> None:
        self.script("start-daemon", self.prefix, host)


def _parse(text: str) -> Topology:
    data = json.loads(text[text.index("{") :])
    hosts = tuple(
        NetnsHost(h["name"], h["netns"], h["address"], h["uri"], h["peer_uri"], Path(h["state_dir"]))
        for h in data["hosts"]
    )
    return Topology(
        prefix=data["prefix"],
        state_dir=Path(data["state_dir"]),
        network=data["network"],
        guest_pool=data["guest_pool"],
        ctl_netns=data["ctl"]["netns"],
        ctl_address=data["ctl"]["address"],
        hosts=hosts,
        tls=data["mode"] == "tls",
    )


@contextlib.contextmanager
def netns_hosts(count: int, *, prefix: str | None = None, tls: bool = True) -> Iterator[Topology]:
    """Bring up ``count`` hosts (plus fabric and ctl) and tear all of it down afterwards. With ``tls``
    (the default: what a real deployment uses) the hosts speak qemu+tls with certificates made for
    the topology, to vmscale and to each other."""
    prefix = prefix or "vmsh" + uuid.uuid4().hex[:6]
    argv = ["bash", str(SCRIPT), "up", str(count), "--prefix", prefix, "--owner", str(os.getpid())]
    if tls:
        argv.append("--tls")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120 + 20 * count, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"netns-hosts.sh up failed: {done.stderr.strip()[-3000:]}")
        topo = _parse(done.stdout)
        yield topo
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "down", "--prefix", prefix], capture_output=True, timeout=120, check=False
        )
