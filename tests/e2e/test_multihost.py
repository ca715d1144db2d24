"""Many hosts for real: two namespaced libvirtd hosts speaking qemu+tls (to vmscale and to each other
for peer-to-peer migration), TCG guests bridged on one fabric, vmscale and HAProxy and the load
client in the topology's ctl namespace (tests/support/netns_hosts.py).

Each test checks libvirt itself (``virsh -c qemu+tcp://HOST/system list --all`` on each host, from
the ctl namespace), not only what vmscale reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import cluster_tasks as tasks
from tests.support.ctl import CtlWorker
from tests.support.netns_hosts import Topology, netns_hosts
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with netns_hosts(2) as t:
        yield t


@pytest.fixture(scope="module")
def ctl(topo: Topology) -> Iterator[CtlWorker]:
    with CtlWorker(topo.ctl_netns) as worker:
        yield worker


@pytest.fixture
def group(ctl: CtlWorker, topo: Topology) -> Iterator[str]:
    name = "mh" + uuid.uuid4().hex[:6]
    yield name
    ctl.run(tasks.close, timeout_s=60)
    for host in topo.hosts:  # whatever a failed test left, by libvirt's own view
        for dom in topo.domains(host.name, f"{name}-"):
            topo.virsh(host.name, "destroy", dom, check=False)
            topo.virsh(host.name, "undefine", dom, check=False)


def open_group(ctl: CtlWorker, topo: Topology, group: str, image: Path, **kw: Any) -> None:
    config = tasks.cluster_config(
        group,
        topo.cluster_hosts(),
        image_dir=str(image),
        guest_pool=topo.guest_pool,
        network=topo.network,
        **kw,
    )
    assert ctl.run(tasks.open_cluster, config) == ["up", "up"]


def console(topo: Topology, host: str, name: str) -> str:
    path = topo.host(host).state_dir / "log" / "qemu" / f"{name}.console.log"
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no console log)"


def healthy(ctl: CtlWorker, topo: Topology, inst: dict[str, Any]) -> None:
    try:
        ctl.run(tasks.wait_healthy, inst["endpoint"], 150.0, timeout_s=170)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nconsole of {inst['name']}:\n{console(topo, inst['host'], inst['name'])}"
        ) from None


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rows}


def test_spread_over_two_hosts_and_a_lost_libvirtd_is_reported_then_found_again(
    topo: Topology, ctl: CtlWorker, group: str, guest_image: Path
) -> None:
    open_group(ctl, topo, group, guest_image, unreachable_after_s=4.0)
    first = ctl.run(tasks.launch, 1, timeout_s=180)
    second = ctl.run(tasks.launch, 2, timeout_s=180)
    # spread: one on each host, and libvirt on each host agrees
    assert (first["host"], second["host"]) == ("h1", "h2")
    assert topo.domains("h1", f"{group}-") == {f"{group}-1"}
    assert topo.domains("h2", f"{group}-") == {f"{group}-2"}
    reasons = ctl.run(tasks.placements)
    assert reasons[1] == f"{group}-2 on h2: spread, h2 has 0 of the group, h1 has 1", reasons
    for inst in (first, second):
        healthy(ctl, topo, inst)

    topo.stop_libvirtd("h2")  # SIGKILL by pid: a crashed daemon, its guest still running

    def second_unknown() -> dict[str, Any] | None:
        rows = by_name(ctl.run(tasks.list_group, timeout_s=60))
        row = rows.get(f"{group}-2")
        return rows if row is not None and row.get("unknown") == "true" else None

    rows = wait_until(second_unknown, "h2's instance reported as unknown", 30, poll_s=0.5)
    assert rows[f"{group}-2"]["host"] == "h2"
    assert "unknown" not in rows[f"{group}-1"] and rows[f"{group}-1"]["status"] == "running"
    wait_until(
        lambda: ctl.run(tasks.host_states)["h2"] == "unreachable",
        "h2 unreachable after the grace period",
        30,
        poll_s=0.5,
    )
    assert ctl.run(tasks.host_states)["h1"] == "up"
    # the data path does not depend on the daemon: the guest on h2 still answers
    ctl.run(tasks.wait_healthy, second["endpoint"], 10.0, timeout_s=20)
    # nothing new goes to a host that does not answer, and the explanation says why
    third = ctl.run(tasks.launch, 3, timeout_s=180)
    assert third["host"] == "h1" and topo.domains("h1", f"{group}-") == {f"{group}-1", f"{group}-3"}
    assert ctl.run(tasks.placements)[-1].endswith("h2 is unreachable")

    topo.start_libvirtd("h2")
    wait_until(lambda: ctl.run(tasks.host_states)["h2"] == "up", "h2 up again", 60, poll_s=0.5)
    rows = wait_until(
        lambda: (
            (r := by_name(ctl.run(tasks.list_group)))
            and "unknown" not in r.get(f"{group}-2", {"unknown": 1})
            and r
        ),
        "h2's instance listed normally again",
        30,
        poll_s=0.5,
    )
    assert {n: r["host"] for n, r in rows.items()} == {
        f"{group}-1": "h1",
        f"{group}-2": "h2",
        f"{group}-3": "h1",
    }
    assert topo.domains("h2", f"{group}-", running_only=True) == {f"{group}-2"}  # adopted, not duplicated
    for n in (1, 2, 3):
        ctl.run(tasks.terminate, f"{group}-{n}", timeout_s=60)
    assert topo.domains("h1", f"{group}-") == set() and topo.domains("h2", f"{group}-") == set()


def test_live_migration_of_a_serving_guest_loses_no_request_through_haproxy(
    topo: Topology, ctl: CtlWorker, group: str, guest_image: Path, tmp_path: Path
) -> None:
    open_group(ctl, topo, group, guest_image)
    inst = ctl.run(tasks.launch, 1, "h1", timeout_s=180)
    assert inst["host"] == "h1" and topo.domains("h1", f"{group}-", running_only=True) == {f"{group}-1"}
    healthy(ctl, topo, inst)
    name = inst["name"]
    front = ctl.run(tasks.start_haproxy, str(tmp_path / "haproxy"), 18080, {name: inst["endpoint"]})
    wait_until(
        lambda: ctl.run(tasks.sync_haproxy, {name: inst["endpoint"]}) == {name: "ready"},
        "HAProxy sees the guest",
        30,
        poll_s=0.5,
    )

    log = tmp_path / "client.jsonl"
    load = subprocess.Popen(
        topo.ctl_argv(
            sys.executable, "-m", "vmscale", "load", "--mode", "step", "--rate", "8", "--duration", "30",
            "--n", "18", "--timeout", "20", "--url", front, "--json", "--log", str(log), "--seed", "1",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: log.exists() and len(log.read_text().splitlines()) >= 20,
            "the load is under way",
            30,
            poll_s=0.5,
        )
        t0 = time.time()
        moved = ctl.run(tasks.migrate, name, "h2", timeout_s=300)
        t1 = time.time()
        out, err = load.communicate(timeout=120)
    finally:
        if load.poll() is None:
            load.kill()
    # libvirt's view: gone from h1 (and its overlay with it), running on h2
    assert topo.domains("h1", f"{group}-") == set()
    assert topo.domains("h2", f"{group}-", running_only=True) == {name}
    assert f"{name}.qcow2" not in topo.virsh("h1", "vol-list", f"vmscale-{group}")
    assert f"{name}.qcow2" in topo.virsh("h2", "vol-list", f"vmscale-{group}")
    # vmscale's view: same address (it travels with the guest), new host, libvirt's figures
    assert moved["host"] == "h2" and moved["migrated_from"] == "h1" and moved["endpoint"] == inst["endpoint"]
    assert int(moved["migration_downtime_ms"]) >= 0 and int(moved["migration_total_ms"]) > 0
    # the overlay was copied, not shared: made empty on h2 (~200 KiB), it now holds the guest's writes
    info = topo.virsh("h2", "vol-info", "--pool", f"vmscale-{group}", f"{name}.qcow2", "--bytes")
    allocation = int(next(line.split()[1] for line in info.splitlines() if line.startswith("Allocation")))
    assert allocation > 2**20, info
    wait_until(
        lambda: ctl.run(tasks.sync_haproxy, {name: moved["endpoint"]}) == {name: "ready"},
        "HAProxy serves the guest at its (unchanged) address",
        30,
        poll_s=0.5,
    )
    # the client's view: every request answered, including those in flight during the switch-over
    summary = json.loads(out)
    assert load.returncode == 0, err
    failed = [
        line for line in log.read_text().splitlines() if '"t_send"' in line and '"status": 200' not in line
    ]
    assert summary["errors"] == 0 and summary["count"] >= 200, (summary, failed[:5])
    records = [json.loads(line) for line in log.read_text().splitlines() if '"t_send"' in line]
    during = [r for r in records if t0 <= r["t_send"] <= t1]
    assert during and all(r["status"] == 200 for r in during), during[:5]
