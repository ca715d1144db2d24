"""What e2e tests and benchmarks run inside a topology's ctl namespace (through ``CtlWorker``).

The worker process keeps one group's ``MultiHostProvider`` (and, when asked, an HAProxy) in module
globals between calls; every function takes and returns plain, picklable values.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from vmscale.config import parse_config
from vmscale.config.haproxy import HaproxyConfig
from vmscale.hosts.inventory import HostInventory
from vmscale.hosts.multihost import MultiHostProvider
from vmscale.lb.base import Server
from vmscale.lb.haproxy import HaproxyLoadBalancer
from vmscale.plan.consolidation import Placed, plan_drain
from vmscale.providers.base import InstanceSpec, ProviderInstance
from vmscale.providers.libvirt.migrate import MigrationProgress

_state: dict[str, Any] = {}


def cluster_config(
    group: str,
    hosts: list[dict[str, Any]],
    *,
    image_dir: str,
    guest_pool: str,
    network: str,
    unreachable_after_s: float = 30.0,
    strategy: str = "spread",
    memory_mb: int = 256,
) -> dict[str, Any]:
    """A config (as a dict) for one group over the topology's hosts, guests bridged on br0."""
    return {
        "group": {"name": group, "min": 1, "max": 8},
        "provider": {
            "kind": "libvirt",
            "libvirt": {
                "accel": "tcg",
                "image_dir": image_dir,
                "network": "bridge",
                "bridge": "br0",
                "addresses": {"pool": guest_pool, "network": network},
                "call_timeout_s": 15.0,
                "storage_pool": f"vmscale-{group}",
                "storage_path": f"/var/lib/libvirt/images/{group}",
                "migrate_timeout_s": 240.0,
            },
        },
        "template": {"vcpus": 1, "memory_mb": memory_mb},
        "cluster": {
            "unreachable_after_s": unreachable_after_s,
            "reconnect_initial_s": 0.5,
            "reconnect_max_s": 2.0,
            "placement": {"strategy": strategy},
            "hosts": hosts,
        },
    }


def open_cluster(config: dict[str, Any]) -> list[str]:
    cfg = parse_config(config)
    inventory = HostInventory.from_config(cfg)
    provider = MultiHostProvider(cfg.provider.libvirt, inventory, placement=cfg.cluster.placement)
    _state.update(cfg=cfg, inventory=inventory, provider=provider, placements=[])
    provider.on_placement = lambda p: _state["placements"].append(p.reason)
    return [s.state for s in inventory.refresh()]


def _provider() -> MultiHostProvider:
    provider: MultiHostProvider = _state["provider"]
    return provider


def _row(inst: ProviderInstance) -> dict[str, Any]:
    return {"name": inst.name, "status": inst.status.value, "endpoint": inst.endpoint, **inst.details}


def launch(index: int, host: str | None = None) -> dict[str, Any]:
    cfg = _state["cfg"]
    group = cfg.group.name
    spec = InstanceSpec(
        group=group,
        name=f"{group}-{index}",
        index=index,
        vcpus=cfg.template.vcpus,
        memory_mb=cfg.template.memory_mb,
        workload_args={"fib_max_n": "32"},
    )
    return _row(_provider().launch(spec, host))


def placements() -> list[str]:
    return list(_state["placements"])


def list_group() -> list[dict[str, Any]]:
    return [_row(i) for i in _provider().list(_state["cfg"].group.name)]


def host_states() -> dict[str, str]:
    return {s.name: s.state for s in _state["inventory"].refresh()}


def wait_healthy(endpoint: str, deadline_s: float = 120.0) -> float:
    """Seconds until ``endpoint``/healthz answers 200 (raises when it does not within the deadline)."""
    t0 = time.monotonic()
    last: object = None
    while time.monotonic() - t0 < deadline_s:
        try:
            r = httpx.get(f"{endpoint}/healthz", timeout=2.0)
            if r.status_code == 200:
                return time.monotonic() - t0
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{endpoint}/healthz did not answer within {deadline_s:.0f} s (last: {last!r})")


def migrate(name: str, host: str) -> dict[str, Any]:
    seen: list[MigrationProgress] = []
    inst = _provider().migrate(name, host, progress=seen.append)
    return {**_row(inst), "progress_reports": len(seen), "progress_last": seen[-1].fraction if seen else None}


def drain(host: str) -> dict[str, Any]:
    """Move every instance off ``host`` one after the other (what `vmscale hosts drain` will do)."""
    provider = _provider()
    group = _state["cfg"].group.name
    inventory = _state["inventory"]
    inventory.drain(host)
    listed = provider.list(group)
    inventory.refresh()
    placed = [Placed(i.name, i.details["host"], i.vcpus, _state["cfg"].template.memory_mb) for i in listed]
    plan = plan_drain(host, inventory.views(group), placed, strategy=_state["cfg"].cluster.placement.strategy)
    t0 = time.monotonic()
    moves = []
    for move in plan.moves:
        t = time.monotonic()
        inst = provider.migrate(move.name, move.dst)
        moves.append({"name": move.name, "to": move.dst, "wall_s": time.monotonic() - t, **inst.details})
    inventory.uncordon(host)
    return {"total_s": time.monotonic() - t0, "moves": moves, "stuck": list(plan.stuck)}


def terminate(name: str) -> None:
    _provider().terminate(name, graceful_timeout_s=0)


def start_haproxy(state_dir: str, port: int, servers: dict[str, str]) -> str:
    """HAProxy in this namespace on 127.0.0.1:port with ``servers`` (name -> endpoint URL)."""
    # Health checks patient enough for a TCG guest (as config.libvirt.TCG_HEALTH for vmscale's own):
    # one that is mid-migration, paused for the switch-over and slowed by the copy, is not dead.
    lb = HaproxyLoadBalancer(
        HaproxyConfig(
            bind=f"127.0.0.1:{port}",
            stats_bind=f"127.0.0.1:{port + 1}",
            check_inter_s=1.0,
            check_timeout_s=3.0,
            check_fall=3,
        ),
        _state["cfg"].group.name,
        Path(state_dir),
    )
    lb.start()
    _state["lb"] = lb
    sync_haproxy(servers)
    return f"http://127.0.0.1:{port}"


def sync_haproxy(servers: dict[str, str]) -> dict[str, str]:
    lb: HaproxyLoadBalancer = _state["lb"]
    wanted = {}
    for name, url in servers.items():
        host, port = httpx.URL(url).host, httpx.URL(url).port
        wanted[name] = Server(name, host, int(port or 80))
    lb.sync(wanted)
    return {name: s.state for name, s in lb.stats().items()}


def close() -> None:
    lb = _state.pop("lb", None)
    if lb is not None:
        lb.stop()
    provider = _state.pop("provider", None)
    if provider is not None:
        provider.close()
