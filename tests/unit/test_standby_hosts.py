"""What a standby's ``GET /v1/hosts`` shows: the configured hosts with the wishes and placements the
leader recorded in the shared store, never libvirt's figures (only the leader watches the hosts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmscale.config import parse_config
from vmscale.events import EventBus
from vmscale.group_runtime import group_hosts
from vmscale.standby import AT_LEADER, StoreControl
from vmscale.store import HostWishRow, InstanceRow
from vmscale.store.sqlite import SqliteStore

HOSTS = [
    {"name": "h1", "uri": "test:///h1", "labels": {"zone": "a"}},
    {"name": "h2", "uri": "test:///h2", "cordoned": True},
    {"name": "h3", "uri": "test:///h3"},
]


def config(kind: str = "libvirt", hosts: list[dict[str, Any]] | None = None) -> Any:
    data: dict[str, Any] = {"group": {"name": "web", "min": 1, "max": 3}, "provider": {"kind": kind}}
    if hosts is not None:
        data["cluster"] = {"hosts": hosts}
    return parse_config(data)


def standby(cfg: Any, store: SqliteStore) -> StoreControl:
    return StoreControl(
        cfg, store, EventBus(), provider=cfg.provider.kind, lb="none", frontend_url=None, policies=[],
        hosts=group_hosts(cfg),
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "state.db")


def test_a_standby_lists_the_configured_hosts_with_the_recorded_wishes_and_placements(
    store: SqliteStore,
) -> None:
    cfg = config(hosts=HOSTS)
    for name, state, host in [
        ("web-1", "ready", "h1"),
        ("web-2", "ready", "h3"),
        ("web-3", "booting", "h1"),
        ("web-4", "gone", "h3"),  # removed: not on the host any more
    ]:
        store.put_instance(InstanceRow(name, "web", int(name[-1]), state, details={"host": host}), 1.0)
    store.put_host_wish(HostWishRow("h3", True, True, "alice", "", 5.0))

    hosts = {h.name: h for h in standby(cfg, store).hosts()}

    assert list(hosts) == ["h1", "h2", "h3"]
    assert hosts["h1"].instances == ["web-1", "web-3"] and hosts["h1"].labels == {"zone": "a"}
    assert hosts["h3"].instances == ["web-2"]
    # States: as wished (the recorded drain), as configured (h2 starts cordoned), else unknown.
    assert [hosts[n].state for n in ("h1", "h2", "h3")] == ["unknown", "cordoned", "draining"]
    assert hosts["h3"].wish == {"cordoned": True, "draining": True, "actor": "alice", "reason": "", "t": 5.0}
    assert hosts["h1"].wish is None
    # libvirt's figures only the leader has: left empty, and the row says where to look.
    assert all(h.cpus is None and h.memory_free_mb is None and h.domains is None for h in hosts.values())
    assert all(h.activity == AT_LEADER for h in hosts.values())


def test_an_uncordon_recorded_by_the_leader_overrides_the_configured_cordon(store: SqliteStore) -> None:
    store.put_host_wish(HostWishRow("h2", False, False, "bob", "", 6.0))
    h2 = next(h for h in standby(config(hosts=HOSTS), store).hosts() if h.name == "h2")
    assert h2.state == "unknown" and h2.wish is not None and h2.wish["actor"] == "bob"


@pytest.mark.parametrize("kind", ["libvirt", "process"])
def test_a_group_without_hosts_lists_none_on_a_standby_as_on_the_leader(
    store: SqliteStore, kind: str
) -> None:
    """libvirt on one host (no [[cluster.hosts]]) or the process provider: nothing to list."""
    assert standby(config(kind), store).hosts() == []
