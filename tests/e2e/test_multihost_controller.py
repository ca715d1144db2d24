"""The controller over many hosts, for real: `vmscale up` (with HAProxy) in a test topology's ctl
namespace, three namespaced libvirtd hosts speaking TLS, TCG guests bridged on one fabric, the load
client in ctl. Each test checks libvirt itself on every host (``virsh list``), not only what vmscale
reports, and runs vmscale's own CLI (`vmscale hosts`, `vmscale instances`) in ctl.

* spread, then consolidation after a scale-in empties a host (and its command runs);
* the libvirtd of a host is killed under load: its instance leaves rotation, is replaced on another
  host, and when the daemon returns the old copy is removed: nothing is duplicated;
* `vmscale hosts drain` live-migrates a serving instance with zero failed requests;
* vertical-first over hosts: the serving guest gets a vCPU hot-added on its host, and when that
  host has no headroom for another the controller adds an instance on a host that has.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.libvirt_support import QUEUE_POLICY, qemu_process
from tests.support.ctl_up import BOOT_S, FRONT, CtlUp, service_config
from tests.support.netns_hosts import Topology, netns_hosts
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with netns_hosts(3) as t:
        yield t


@pytest.fixture
def group(topo: Topology) -> Iterator[str]:
    name = "mc" + uuid.uuid4().hex[:6]
    yield name
    for host in topo.hosts:  # whatever a failed test left, by libvirt's own view
        for dom in topo.domains(host.name, f"{name}-"):
            topo.virsh(host.name, "destroy", dom, check=False)
            topo.virsh(host.name, "undefine", dom, check=False)


def running(topo: Topology, group: str) -> dict[str, set[str]]:
    """Host -> the group's running domains there, from each host's libvirtd."""
    return {h.name: topo.domains(h.name, f"{group}-", running_only=True) for h in topo.hosts}


def ready(up: CtlUp, count: int) -> dict[str, dict[str, Any]]:
    def check() -> dict[str, dict[str, Any]] | None:
        rows = up.instances()
        return rows if [r["state"] for r in rows.values()] == ["ready"] * count else None

    return wait_until(check, f"{count} ready instance(s)", BOOT_S, poll_s=2.0, state=up.log_tail)


def load_result(load: subprocess.Popen[str], log: Path) -> tuple[dict[str, Any], list[str]]:
    try:
        out, err = load.communicate(timeout=180)
    finally:
        if load.poll() is None:
            load.kill()
    assert load.returncode == 0, err
    failed = [
        line for line in log.read_text().splitlines() if '"t_send"' in line and '"status": 200' not in line
    ]
    return json.loads(out), failed


def test_spread_then_consolidation_after_a_scale_in_empties_a_host(
    topo: Topology, group: str, guest_image: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "emptied.txt"
    cfg = service_config(
        topo,
        group,
        guest_image,
        size={"min": 2, "max": 3, "initial": 3},
        # no lower bound: only the operator scales in (below), and no policy ever sees an overload
        policies=[{"kind": "threshold", "upper": 95.0}],
        cluster={
            "consolidation": {
                "enabled": True,
                "cooldown_s": 5.0,
                "max_moves": 2,
                "empty_host_command": ["/bin/sh", "-c", f'echo "$VMSCALE_HOST $VMSCALE_GROUP" >> {marker}'],
            }
        },
        block=1,
    )
    with CtlUp(topo, cfg, tmp_path / "state") as up:
        wait_until(lambda: len(up.events("placement")) >= 3, "three placements", 60, poll_s=1.0)
        # the three launches run at once: whichever is placed first takes h1, then h2, then h3
        placed = {e["data"]["instance"]: e["data"]["host"] for e in up.events("placement")}
        assert sorted(placed.values()) == ["h1", "h2", "h3"], up.messages("placement")
        assert all(": spread, " in m for m in up.messages("placement"))
        third = "on h3: spread, h3 has 0 of the group, h1 has 1, h2 has 1"
        assert any(m.endswith(third) for m in up.messages("placement")), up.messages("placement")
        # spread, by libvirt's own account: one guest on each host, where the placement said
        ready(up, 3)
        assert running(topo, group) == {
            h: {n for n, on in placed.items() if on == h} for h in ("h1", "h2", "h3")
        }
        assert not up.events("migration"), "nothing to consolidate before a scale-in"

        up.cli("scale", "2")
        # the scale-in empties one host; after the cooldown consolidation moves one of the two left so a
        # second host is empty, and its command runs
        wait_until(
            lambda: any(e["data"]["what"] == "empty" for e in up.events("host")),
            "a host left empty by consolidation",
            BOOT_S + 120,
            poll_s=2.0,
            state=lambda: (up.messages("host", "migration", "decision")[-8:], up.log_tail(1500)),
        )
        after = running(topo, group)
        assert sorted(len(names) for names in after.values()) == [0, 0, 2], after
        (emptied,) = [e["data"]["host"] for e in up.events("host") if e["data"]["what"] == "empty"]
        kept = next(h for h, names in after.items() if names)
        assert after[emptied] == set() and emptied != kept
        wait_until(marker.exists, "the empty-host command ran", 30, poll_s=0.5)
        assert marker.read_text() == f"{emptied} {group}\n"
        (move,) = [e["data"] for e in up.events("migration") if e["data"]["phase"] == "done"]
        assert (move["src"], move["dst"]) == (emptied, kept) and move["why"] == "consolidation"
        # vmscale agrees with libvirt, and says so in `vmscale hosts`
        rows = ready(up, 2)
        assert {r["details"]["host"] for r in rows.values()} == {kept}
        hosts = up.hosts()
        assert hosts[emptied]["domains"] == 0 and "left empty by consolidation" in hosts[emptied]["activity"]
        assert sorted(hosts[kept]["instances"]) == sorted(rows)
        assert up.cli("status", "--json").returncode == 0
    assert running(topo, group) == {"h1": set(), "h2": set(), "h3": set()}, "vmscale removed its guests"


def test_a_killed_libvirtd_under_load_is_replaced_elsewhere_and_nothing_is_duplicated_when_it_returns(
    topo: Topology, group: str, guest_image: Path, tmp_path: Path
) -> None:
    cfg = service_config(
        topo, group, guest_image, size={"min": 2, "max": 2}, unreachable_after_s=6.0, block=2
    )
    with CtlUp(topo, cfg, tmp_path / "state") as up:
        rows = ready(up, 2)
        where = {r["details"]["host"]: n for n, r in rows.items()}
        assert sorted(where) == ["h1", "h2"], "spread: the two launches took h1 and h2"
        lost, kept = where["h2"], where["h1"]
        assert running(topo, group) == {"h1": {kept}, "h2": {lost}, "h3": set()}
        log = tmp_path / "client.jsonl"
        load = topo.load(FRONT, log, rate=4, duration=90)
        try:
            wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 10, "load under way", 30)
            topo.stop_libvirtd("h2")  # SIGKILL by pid: its guest keeps running

            def unknown() -> bool:
                return up.instances()[lost]["state"] == "unknown"

            wait_until(unknown, f"{lost} unknown (out of rotation)", 30, poll_s=1.0)
            # after the grace period: replaced on a host that answers, under a new name
            rows = wait_until(
                lambda: (r := up.instances()).get(f"{group}-3", {}).get("state") == "ready" and r,
                f"{group}-3 ready in place of {lost}",
                BOOT_S,
                poll_s=2.0,
                state=lambda: up.messages("instance", "host", "error")[-6:],
            )
            assert rows[f"{group}-3"]["details"]["host"] == "h3", "spread: the host without one"
            assert rows[lost]["state"] in ("failed", "terminating"), (
                "its name stays reserved while h2 is silent"
            )
            assert topo.domains("h3", f"{group}-", running_only=True) == {f"{group}-3"}
            assert topo.domains("h1", f"{group}-", running_only=True) == {kept}
            states = {e["data"]["host"]: e["data"]["what"] for e in up.events("host")}
            assert states["h2"] == "unreachable"
            summary, failed = load_result(load, log)
        finally:
            if load.poll() is None:
                load.kill()
        assert summary["errors"] == 0 and summary["count"] >= 200, (summary, failed[:5])

        topo.start_libvirtd("h2")
        # h2 answers: the copy vmscale gave up on is removed there; no name runs twice anywhere
        wait_until(
            lambda: lost not in up.instances(),
            f"{lost} removed once h2 answers",
            90,
            poll_s=2.0,
            state=lambda: up.messages("instance", "host", "error")[-6:],
        )
        assert running(topo, group) == {"h1": {kept}, "h2": set(), "h3": {f"{group}-3"}}
        assert topo.domains("h2", f"{group}-") == set(), "not even a stopped copy is left on h2"
        assert qemu_process(lost) is None, "its QEMU process is gone too, not only libvirt's record"
        assert sorted(ready(up, 2)) == sorted([kept, f"{group}-3"])
        assert up.hosts()["h2"]["state"] == "up"


def test_drain_live_migrates_a_serving_instance_with_zero_failed_requests(
    topo: Topology, group: str, guest_image: Path, tmp_path: Path
) -> None:
    cfg = service_config(topo, group, guest_image, size={"min": 2, "max": 2}, block=3)
    with CtlUp(topo, cfg, tmp_path / "state") as up:
        rows = ready(up, 2)
        on_h1 = next(n for n, r in rows.items() if r["details"]["host"] == "h1")
        log = tmp_path / "client.jsonl"
        load = topo.load(FRONT, log, rate=8, duration=40)
        try:
            wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 20, "load under way", 30)
            drained = up.cli("hosts", "drain", "h1", "--follow", timeout_s=300, check=False)
            summary, failed = load_result(load, log)
        finally:
            if load.poll() is None:
                load.kill()
        assert drained.returncode == 0, drained.stdout + drained.stderr
        lines = drained.stdout.splitlines()
        assert lines[0].startswith("drain of h1 asked by ") and lines[-1].startswith(
            f"drain of h1 finished: moved {on_h1}"
        ), drained.stdout
        assert any(f"{on_h1} moved from h1 to h3" in line for line in lines), drained.stdout
        # libvirt: gone from h1, running on h3 (spread: h2 already has one); vmscale agrees
        assert running(topo, group)["h1"] == set() and topo.domains("h1", f"{group}-") == set()
        assert on_h1 in topo.domains("h3", f"{group}-", running_only=True)
        after = up.instances()
        assert after[on_h1]["details"]["host"] == "h3" and after[on_h1]["state"] == "ready"
        assert after[on_h1]["endpoint"] == rows[on_h1]["endpoint"], "its address moved with it"
        assert up.hosts()["h1"]["state"] == "cordoned"
        # the client: every request answered, including those in flight during the switch-over
        assert summary["errors"] == 0 and summary["count"] >= 200, (summary, failed[:5])
        up.cli("hosts", "uncordon", "h1")
        assert up.hosts()["h1"]["state"] == "up"


def test_vertical_first_grows_on_the_instances_host_then_adds_one_where_there_is_room(
    topo: Topology, group: str, guest_image: Path, tmp_path: Path
) -> None:
    """Every host may run 2 vCPUs (max_vcpu_overcommit = 2 / its CPUs): the first guest grows to 2
    live on its host; its growth to 3 is refused there (no headroom), so the next decision adds an
    instance (``add/host-full``), which placement puts on another host."""
    cfg = service_config(
        topo,
        group,
        guest_image,
        size={"min": 1, "max": 2, "initial": 1},
        policies=[QUEUE_POLICY],
        block=4,
    )
    overcommit = 2 / (os.cpu_count() or 1)  # the namespaced hosts report this machine's CPUs
    for host in cfg["cluster"]["hosts"]:
        host["max_vcpu_overcommit"] = overcommit
    cfg["scaling"] = {"mode": "vertical-first"}
    cfg["template"]["max_vcpus"] = 3
    first, second = f"{group}-1", f"{group}-2"
    with CtlUp(topo, cfg, tmp_path / "state") as up:
        rows = ready(up, 1)
        home = rows[first]["details"]["host"]

        def vcpus(host: str, name: str) -> int:
            return int(topo.virsh(host, "vcpucount", name, "--live", "--active").strip())

        assert vcpus(home, first) == 1
        log = tmp_path / "client.jsonl"
        # fib(27) takes ~0.3 s in a TCG guest: 8 req/s keeps requests queued on 1 and on 2 vCPUs
        load = topo.load(FRONT, log, rate=8, duration=150, n=27)
        try:
            grown = wait_until(
                lambda: [e for e in up.events("resize") if e["data"]["stage"] == "serving"],
                "the hot-added vCPU to serve",
                120,
                poll_s=1.0,
                state=lambda: up.messages("resize", "decision", "error")[-6:],
            )
            assert grown[0]["data"]["name"] == first and grown[0]["data"]["to"] == 2
            assert vcpus(home, first) == 2, "libvirt on its host shows the vCPU hot-added"
            refused = wait_until(
                lambda: [e for e in up.events("resize") if e["data"]["stage"] == "failed"],
                "the growth to 3 refused by its host",
                120,
                poll_s=1.0,
                state=lambda: up.messages("resize", "decision", "error")[-6:],
            )
            assert (refused[0]["data"]["from"], refused[0]["data"]["to"]) == (2, 3)
            assert "host CPU" in refused[0]["data"]["reason"], refused[0]["data"]["reason"]
            rows = wait_until(
                lambda: (r := up.instances()).get(second, {}).get("state") == "ready" and r,
                f"{second} ready",
                BOOT_S + 60,
                poll_s=2.0,
                state=lambda: up.messages("decision", "placement", "error")[-6:],
            )
        finally:
            load.kill()
            load.communicate(timeout=30)
        placements = [e["data"].get("placement") for e in up.events("decision")]
        assert "add/host-full" in placements, placements
        there = rows[second]["details"]["host"]
        assert there != home, f"placed on a host with room, not on full {home}"
        assert second in topo.domains(there, f"{group}-", running_only=True)
        assert topo.domains(home, f"{group}-", running_only=True) == {first}
        assert vcpus(home, first) == 2, "the refused growth left it as it was"
        assert rows[first]["vcpus"] == 2, "and vmscale agrees"
