"""The reconcile loop over several hosts: placement events, a host that goes silent and comes back,
fencing, drains and consolidation, against an in-memory multi-host provider on a fake clock
(tests/support/fake_hosts.py). Real daemons and guests: tests/e2e/test_multihost_controller.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.controller_rig import Rig
from tests.support.fake_hosts import FakeHostsProvider
from vmscale.lb.fake import FakeLoadBalancer
from vmscale.model import InstanceState

S = InstanceState


def hosts_rig(tmp_path: Path, hosts: tuple[str, ...] = ("h1", "h2"), **over: Any) -> Rig:
    group = {"name": "web", "min": 1, "max": 4, "initial": 2, "interval_s": 1}
    group.update(over.pop("group", {}))
    cluster = {
        "unreachable_after_s": 5,
        "hosts": [{"name": h, "uri": f"qemu+tls://{h}.example/system"} for h in hosts],
        **over.pop("cluster", {}),
    }
    rig = Rig(
        tmp_path,
        make_provider=lambda clock: FakeHostsProvider(clock, hosts, grace_s=5),
        group=group,
        provider={"kind": "libvirt"},
        cluster=cluster,
        **over,
    )
    rig.ctl.recover()
    return rig


def messages(rig: Rig, kind: str) -> list[str]:
    return [e.data["message"] for e in rig.ctl.events.recent([kind], limit=10_000)]


def endpoints(rig: Rig) -> list[str]:
    return [e["name"] for e in rig.ctl.endpoints()]


def fake(rig: Rig) -> FakeHostsProvider:
    provider: FakeHostsProvider = rig.provider
    return provider


def test_each_launch_is_placed_by_spread_and_its_host_is_recorded(tmp_path: Path) -> None:
    rig = hosts_rig(tmp_path)
    rig.tick(2)
    assert rig.states() == {"web-1": "ready", "web-2": "ready"}
    assert fake(rig).hosts_of("web") == {"h1": {"web-1"}, "h2": {"web-2"}}
    assert messages(rig, "placement") == [
        "web-1 on h1: spread, h1 has 0 of the group, h2 has 0",
        "web-2 on h2: spread, h2 has 0 of the group, h1 has 1",
    ]
    # the store, the API and `vmscale hosts` all say where each instance is
    assert {r.name: r.details["host"] for r in rig.store.instances("web")} == {"web-1": "h1", "web-2": "h2"}
    assert {i.name: i.details["host"] for i in rig.ctl.instances()} == {"web-1": "h1", "web-2": "h2"}
    assert {h.name: h.instances for h in rig.ctl.hosts()} == {"h1": ["web-1"], "h2": ["web-2"]}


def test_a_silent_host_s_instance_leaves_rotation_at_once_and_is_replaced_after_the_grace_period(
    tmp_path: Path,
) -> None:
    rig = hosts_rig(tmp_path)
    rig.tick(2)
    fake(rig).silence("h2")
    rig.tick()
    assert rig.states()["web-2"] == "unknown"
    assert endpoints(rig) == ["web-1"], "unknown is not healthy: out of rotation at once"
    assert messages(rig, "host")[-1].startswith("h2 is not answering")
    rig.tick(3)
    assert set(rig.states()) == {"web-1", "web-2"}, "within the grace period nothing is replaced"
    assert rig.states()["web-2"] == "unknown"
    rig.tick(4)
    # unreachable: replaced on h1 under a new name; web-2 keeps its record (and so its name and
    # address) while its only copy is on the silent host, because it cannot be terminated there
    assert rig.states()["web-3"] == "ready"
    assert rig.states()["web-2"] in ("failed", "terminating")
    assert fake(rig).hosts_of("web") == {"h1": {"web-1", "web-3"}, "h2": {"web-2"}}
    assert any("has not answered for 5 s" in t[3] for t in rig.store.transitions("web-2"))
    assert sorted(endpoints(rig)) == ["web-1", "web-3"]
    rig.tick(10)
    assert "web-2" in rig.states(), "never forgotten while its host is silent"
    assert any("host h2 is not answering" in m for m in rig.errors("provider.terminate"))

    fake(rig).answer("h2")
    rig.tick(3)
    # the host is back: the copy the controller gave up on is removed there, nothing is duplicated
    assert rig.states() == {"web-1": "ready", "web-3": "ready"}
    assert fake(rig).hosts_of("web") == {"h1": {"web-1", "web-3"}, "h2": set()}
    assert ("terminate", "web-2", "") in fake(rig).calls
    assert messages(rig, "host")[-1] == "h2 answers again"


def test_a_host_back_within_the_grace_period_costs_no_replacement(tmp_path: Path) -> None:
    rig = hosts_rig(tmp_path)
    rig.tick(2)
    fake(rig).silence("h2")
    rig.tick(3)
    assert rig.states()["web-2"] == "unknown"
    fake(rig).answer("h2")
    rig.tick(2)
    assert rig.states() == {"web-1": "ready", "web-2": "ready"}
    assert sorted(endpoints(rig)) == ["web-1", "web-2"]
    assert [c for c in fake(rig).calls if c[0] == "launch"] == [("launch", "web-1"), ("launch", "web-2")]
    assert [t[2] for t in rig.store.transitions("web-2")][-2:] == ["unknown", "ready"]


def test_a_second_copy_of_a_name_is_destroyed_on_its_host_alone_and_never_served(tmp_path: Path) -> None:
    rig = hosts_rig(tmp_path)
    rig.tick(2)
    fake(rig).copy_on("h1", "web-2")  # newer, on another host: the controller's record still wins
    rig.tick()
    assert fake(rig).hosts_of("web") == {"h1": {"web-1"}, "h2": {"web-2"}}
    assert ("terminate", "web-2", "h1") in fake(rig).calls
    assert messages(rig, "host")[-1] == (
        "web-2: keep the copy on h2 (the record says h2); destroy the one on h1"
    )
    rig.tick()
    assert rig.states() == {"web-1": "ready", "web-2": "ready"}
    assert rig.instance("web-2").facts.details["host"] == "h2"


def test_drain_moves_every_instance_one_at_a_time_and_they_keep_serving(tmp_path: Path) -> None:
    rig = hosts_rig(tmp_path, group={"initial": 3})
    rig.tick(2)
    assert fake(rig).hosts_of("web") == {"h1": {"web-1", "web-3"}, "h2": {"web-2"}}
    rig.executor.held.add("migrate")
    info = rig.ctl.host_action("h1", "drain", "alice")
    assert info.state == "draining" and info.wish is not None and info.wish["actor"] == "alice"
    rig.tick()
    migrating = [c for c in fake(rig).calls if c[0] == "migrate"]
    assert migrating == [], "held: the first migration is still running"
    assert len(rig.executor.waiting) == 1, "one migration at a time"
    assert sorted(endpoints(rig)) == ["web-1", "web-2", "web-3"], "a migrating instance keeps serving"
    activity = next(h.activity for h in rig.ctl.hosts() if h.name == "h1")
    assert "draining since" in activity and "moving web-1 to h2" in activity
    rig.tick(2)
    assert len(rig.executor.waiting) == 1, "the next one waits for the first"
    rig.executor.held.clear()
    rig.executor.release()
    rig.tick(4)
    assert fake(rig).hosts_of("web") == {"h1": set(), "h2": {"web-1", "web-2", "web-3"}}
    assert rig.states() == {"web-1": "ready", "web-2": "ready", "web-3": "ready"}
    assert {r.name: r.details["host"] for r in rig.store.instances("web")} == dict.fromkeys(
        ("web-1", "web-2", "web-3"), "h2"
    )
    done = messages(rig, "host")[-1]
    assert done.startswith("drain of h1 finished: moved web-1, web-3") and "stays cordoned" in done
    assert next(m for m in messages(rig, "migration") if "moved from" in m).startswith(
        "web-1 moved from h1 to h2 in "
    )
    (wish,) = [w for w in rig.store.host_wishes() if w.host == "h1"]
    assert (wish.cordoned, wish.draining) == (True, False)
    assert next(h.state for h in rig.ctl.hosts() if h.name == "h1") == "cordoned"


def test_a_failed_migration_leaves_the_instance_serving_where_it_was(tmp_path: Path) -> None:
    rig = hosts_rig(tmp_path, group={"initial": 3})
    rig.tick(2)
    fake(rig).fail_migrations.add("web-1")
    rig.ctl.host_action("h1", "drain", "alice")
    rig.tick(5)
    assert fake(rig).hosts_of("web") == {"h1": {"web-1"}, "h2": {"web-2", "web-3"}}
    assert rig.states()["web-1"] == "ready" and "web-1" in endpoints(rig)
    assert any(
        m.startswith("migration of web-1 from h1 to h2 failed; it stays on h1, serving")
        for m in messages(rig, "migration")
    )
    done = messages(rig, "host")[-1]
    assert "moved web-3" in done and "web-1 stays on h1, serving (its migration failed" in done
    assert list(rig.ctl.events.recent(["host"])[-1].data["stayed"]) == ["web-1"]
    assert "`vmscale hosts drain h1` tries again" in done


def test_a_drain_and_a_cordon_survive_a_controller_restart(tmp_path: Path) -> None:
    rig = hosts_rig(tmp_path, ("h1", "h2", "h3"))
    rig.tick(2)
    rig.executor.held.add("migrate")
    rig.ctl.host_action("h3", "cordon", "bob")
    rig.ctl.host_action("h1", "drain", "alice")
    rig.tick()  # the migration of web-1 is under way when the controller goes
    for h in fake(rig).inventory.hosts.values():
        h.cordoned = h.draining = False  # a fresh inventory knows nothing of the wishes
    rig.executor.held.clear()
    rig.executor.release()
    rig.ctl = rig.new_controller()
    rig.ctl.recover()
    hosts = {h.name: h for h in rig.ctl.hosts()}
    assert (hosts["h1"].state, hosts["h2"].state, hosts["h3"].state) == ("draining", "up", "cordoned")
    assert fake(rig).inventory.hosts["h1"].draining and fake(rig).inventory.hosts["h3"].cordoned
    rig.tick(4)  # the drain goes on where it was: web-1 is already on h2 and the drain ends
    assert fake(rig).hosts_of("web") == {"h1": set(), "h2": {"web-1", "web-2"}, "h3": set()}
    assert messages(rig, "host")[-1].startswith("drain of h1 finished")


def test_uncordon_makes_a_host_eligible_again(tmp_path: Path) -> None:
    rig = hosts_rig(tmp_path, group={"initial": 1})
    rig.tick(2)
    rig.ctl.host_action("h2", "cordon", "bob")
    rig.ctl.set_desired(2, "test")
    rig.tick(2)
    assert fake(rig).hosts_of("web") == {"h1": {"web-1", "web-2"}, "h2": set()}
    assert messages(rig, "placement")[-1].endswith("h2 is cordoned")
    rig.ctl.host_action("h2", "uncordon", "bob")
    rig.ctl.set_desired(3, "test")
    rig.tick(2)
    assert fake(rig).hosts_of("web")["h2"] == {"web-3"}
    with pytest.raises(LookupError, match="unknown host 'h9'; the hosts are: h1, h2"):
        rig.ctl.host_action("h9", "cordon", "bob")


def consolidating(tmp_path: Path, command: list[str] | None = None, max_count: int = 4) -> Rig:
    return hosts_rig(
        tmp_path,
        ("h1", "h2", "h3"),
        group={"initial": 3, "max": max_count},
        cluster={
            "consolidation": {
                "enabled": True,
                "cooldown_s": 5,
                "max_moves": 2,
                "empty_host_command": command or [],
            }
        },
    )


def test_after_a_scale_in_consolidation_empties_a_host_and_runs_its_command(tmp_path: Path) -> None:
    out = tmp_path / "emptied.txt"
    rig = consolidating(tmp_path, ["/bin/sh", "-c", f'echo "$VMSCALE_HOST $VMSCALE_GROUP" >> {out}'])
    rig.tick(2)
    assert fake(rig).hosts_of("web") == {"h1": {"web-1"}, "h2": {"web-2"}, "h3": {"web-3"}}
    rig.tick(8)
    assert not [c for c in fake(rig).calls if c[0] == "migrate"], "no scale-in yet: nothing to do"
    rig.ctl.set_desired(2, "test")
    rig.tick(3)  # web-3 (least busy, newest) drained and terminated: h3 is empty by the scale-in
    assert fake(rig).hosts_of("web") == {"h1": {"web-1"}, "h2": {"web-2"}, "h3": set()}
    assert not [c for c in fake(rig).calls if c[0] == "migrate"], "within the cooldown"
    rig.tick(6)
    assert fake(rig).hosts_of("web") == {"h1": set(), "h2": {"web-1", "web-2"}, "h3": set()}
    assert [c for c in fake(rig).calls if c[0] == "migrate"] == [("migrate", "web-1", "h2")]
    assert out.read_text() == "h1 web\n"
    host_msgs = messages(rig, "host")
    assert any(m.startswith("consolidation round: empty h1 by moving 1 instance(s)") for m in host_msgs)
    assert "h1 is empty: consolidation moved the group's instances off it" in host_msgs
    assert any(m.startswith("command for empty host h1: succeeded") for m in host_msgs)
    h1 = next(h for h in rig.ctl.hosts() if h.name == "h1")
    assert h1.domains == 0 and "left empty by consolidation" in h1.activity
    rig.tick(10)
    assert len([c for c in fake(rig).calls if c[0] == "migrate"]) == 1, "one round per scale-in"


def test_consolidation_waits_while_a_policy_sees_an_overload(tmp_path: Path) -> None:
    rig = consolidating(tmp_path, max_count=3)
    rig.tick(2)
    rig.ctl.set_desired(2, "test")
    rig.tick(3)
    fake(rig).cpu.update({"web-1": 90.0, "web-2": 90.0})
    rig.tick(8)
    assert not [c for c in fake(rig).calls if c[0] == "migrate"]
    assert rig.desired == 3, "the overload scaled the group up instead"


def test_the_balancer_drains_an_unknown_instance_and_removes_it_once_its_host_is_given_up(
    tmp_path: Path,
) -> None:
    lb = FakeLoadBalancer()
    rig = hosts_rig(tmp_path, lb=lb)
    rig.tick(2)
    assert {n: m.draining for n, m in lb.members.items()} == {"web-1": False, "web-2": False}
    fake(rig).silence("h2")
    rig.tick()
    # no new requests for web-2, but the ones in flight on its (still running) guest may finish
    assert {n: m.draining for n, m in lb.members.items()} == {"web-1": False, "web-2": True}
    rig.tick(6)
    assert set(lb.members) == {"web-1", "web-3"}


def test_a_controller_restarted_while_a_host_is_silent_keeps_its_instances_out_of_rotation(
    tmp_path: Path,
) -> None:
    rig = hosts_rig(tmp_path)
    rig.tick(2)
    fake(rig).silence("h2")
    rig.ctl = rig.new_controller()
    rig.ctl.recover()
    assert rig.states() == {"web-1": "ready", "web-2": "unknown"}
    assert any(t[3] == "recovery: its host h2 does not answer" for t in rig.store.transitions("web-2"))
    rig.tick(7)
    assert rig.states()["web-3"] == "ready" and rig.states()["web-2"] in ("failed", "terminating")
