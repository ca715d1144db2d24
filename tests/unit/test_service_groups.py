"""Several groups in one Service: each reconciles on its own loop, so a group whose ticks fail (a bug,
a provider that errors on every call) never holds up another; start-up of all groups is still one
transaction; each group keeps what would clash (its HAProxy folder) apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.wait import wait_until
from vmscale.config import parse_config
from vmscale.controller import Controller
from vmscale.errors import ProviderUnavailableError, StartupError, TemporaryProviderError
from vmscale.lb.fake import FakeLoadBalancer
from vmscale.providers.base import ProviderInstance
from vmscale.providers.fake import FakeProvider
from vmscale.service import Service, group_dir


class BuggyProvider(FakeProvider):
    """A provider with a bug: once ``broken``, listing raises something no provider error covers."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.broken = False

    def list(self, group: str) -> list[ProviderInstance]:
        if self.broken:
            raise RuntimeError("a bug in the provider")
        return super().list(group)


def two_groups(tmp_path: Path, **extra: Any) -> Any:
    def group(name: str) -> dict[str, Any]:
        return {"group": {"name": name, "min": 1, "max": 3, "interval_s": 0.05}, "provider": {"kind": "fake"}}

    return parse_config(
        {
            "state": {"dir": str(tmp_path)},
            "api": {"bind": "127.0.0.1:0"},
            "groups": [group("good"), group("bad")],
        }
        | extra
    )


def events_of(svc: Service, type_: str) -> list[Any]:
    return [e for e in svc.events.recent([type_], limit=2000)]


def test_a_group_whose_every_tick_fails_never_holds_up_another(tmp_path: Path) -> None:
    good, bad = FakeProvider(base_port=21000), BuggyProvider(base_port=21100)
    svc = Service(two_groups(tmp_path), providers={"good": good, "bad": bad}, serve_api=False)
    svc.start()
    try:
        bad.broken = True
        svc.group("good").controller.set_desired(3, "test")
        wait_until(lambda: good.launch_count >= 3, "the good group to launch its three instances", 30)
        wait_until(
            lambda: len([e for e in events_of(svc, "error") if e.group == "bad"]) >= 3,
            "the bad group's failed ticks to be reported",
            30,
        )
        ticks = svc.metrics.registry.get_sample_value
        before = ticks("vmscale_reconcile_ticks_total", {"group": "good"}) or 0
        wait_until(
            lambda: (ticks("vmscale_reconcile_ticks_total", {"group": "good"}) or 0) >= before + 5,
            "the good group to keep ticking",
            30,
        )
        errors = events_of(svc, "error")
        assert all(e.group == "bad" for e in errors), [(e.group, e.data) for e in errors]
        assert "a bug in the provider" in errors[-1].data["message"]
        assert svc.group("good").controller.group().desired == 3
        assert bad.launch_count <= 1, "at most a tick before the bug launched; none after"
    finally:
        svc.stop(terminate=True)
    assert good.instances == {}, "stopping removed the good group's instances"


def test_a_group_whose_provider_errors_scales_nothing_and_the_other_scales(tmp_path: Path) -> None:
    good, bad = FakeProvider(base_port=21200), FakeProvider(base_port=21300)
    bad.fail_always["launch"] = TemporaryProviderError("no room on the host")
    svc = Service(two_groups(tmp_path), providers={"good": good, "bad": bad}, serve_api=False)
    svc.start()
    try:
        svc.group("good").controller.set_desired(2, "test")
        svc.group("bad").controller.set_desired(2, "test")
        wait_until(lambda: good.launch_count >= 2, "the good group to launch two instances", 30)
        wait_until(
            lambda: any(e.group == "bad" and "no room" in e.data["message"] for e in events_of(svc, "error")),
            "the bad group's launch failures to be reported",
            30,
        )
        assert bad.launch_count == 0 and svc.group("good").controller.group().actual == 2
    finally:
        svc.stop(terminate=True)


def test_one_log_and_one_registry_for_every_group(tmp_path: Path) -> None:
    svc = Service(
        two_groups(tmp_path), providers={"good": FakeProvider(), "bad": FakeProvider()}, serve_api=False
    )
    svc.start()
    try:
        wait_until(
            lambda: {e.group for e in events_of(svc, "tick")} == {"good", "bad"},
            "both groups to tick",
            30,
        )
    finally:
        svc.stop(terminate=True)
    groups = {
        json.loads(line).get("group") for line in (tmp_path / "autoscaler.jsonl").read_text().splitlines()
    }
    assert groups == {"good", "bad"}
    text = svc.metrics.render().decode()
    assert (
        'vmscale_desired_instances{group="good"}' in text and 'vmscale_desired_instances{group="bad"}' in text
    )


def test_a_group_that_cannot_start_stops_the_start_up_and_everything_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lbs = {"good": FakeLoadBalancer(), "bad": FakeLoadBalancer()}
    bad = FakeProvider()
    bad.fail_next["list"] = ProviderUnavailableError("libvirtd is not answering at qemu:///system")
    svc = Service(
        two_groups(tmp_path), providers={"good": FakeProvider(), "bad": bad}, lbs=lbs, serve_api=False
    )
    with pytest.raises(StartupError, match="group bad: libvirtd is not answering"):
        svc.start()
    assert lbs["good"].calls == [] and lbs["bad"].calls == [], "nothing started: the check came first"

    lbs = {"good": FakeLoadBalancer(), "bad": FakeLoadBalancer()}
    svc = Service(two_groups(tmp_path), providers={"good": FakeProvider(), "bad": FakeProvider()}, lbs=lbs)

    real_recover = Controller.recover

    def recover(self: Controller) -> None:
        if self.cfg.group.name == "bad":
            raise RuntimeError("recovery of bad failed")
        real_recover(self)

    monkeypatch.setattr(Controller, "recover", recover)
    with pytest.raises(RuntimeError, match="recovery of bad failed"):
        svc.start()
    assert lbs["good"].calls == [("start",), ("stop",)], "the good group's balancer was stopped again"
    assert lbs["bad"].calls == [("start",), ("stop",)]
    assert svc.api is None and svc.writer._closed


def test_haproxy_state_is_per_group_with_groups_and_as_before_without(tmp_path: Path) -> None:
    cfg = two_groups(tmp_path)
    assert group_dir(cfg, cfg.groups[1]) == tmp_path.resolve() / "groups" / "bad"
    one = parse_config({"state": {"dir": str(tmp_path)}})
    assert group_dir(one, one) == tmp_path.resolve()


def test_provider_and_lb_replace_the_one_groups_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="with several use providers="):
        Service(two_groups(tmp_path), provider=FakeProvider(), serve_api=False)
