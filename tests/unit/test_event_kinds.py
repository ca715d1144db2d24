"""The typed event kinds: what the wire form looks like (SSE clients and log readers depend on the
keys), and that reading a log back gives the same values."""

from __future__ import annotations

import pytest

from vmscale.event_kinds import (
    DecisionApplied,
    Endpoint,
    EndpointsChanged,
    ErrorReported,
    EventKind,
    InstanceBrief,
    InstanceResized,
    InstanceTransition,
    TickSummary,
    parse,
)
from vmscale.events import EventBus

KINDS: list[EventKind] = [
    InstanceTransition("web-2", "booting", "ready", "health check passed", "http://127.0.0.1:18102"),
    DecisionApplied(2, 1, "up", "cpu 85% > 60%", "cpu-target", "autoscaler", code="above_target"),
    DecisionApplied(2, 2, "none", "automatic scaling paused by alice", "manual", "alice", action="paused"),
    TickSummary(
        2, 2, 1, 0, {"web-1": InstanceBrief("ready", 55.0), "web-2": InstanceBrief("booting")}, 0.12, 8.0
    ),
    TickSummary(1, 1, 1, 0, {"web-1": InstanceBrief("ready", 40.0)}, vcpus=3),
    EndpointsChanged((Endpoint("web-1", "http://127.0.0.1:18101"),)),
    InstanceResized("web-1", "started", 1, 2, "vertical-first: web-1 1->2 vCPUs"),
    InstanceResized("web-1", "serving", 1, 2, "the workload serves with 2 CPUs", seconds=0.42),
    ErrorReported("provider.launch", "launch failed (TemporaryProviderError): busy", "web-3"),
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k.TYPE}")
def test_a_published_event_reads_back_as_the_same_value(kind: EventKind) -> None:
    ev = EventBus().publish(kind)
    assert ev.type == kind.TYPE
    assert parse(ev.type, ev.data) == kind


def test_the_wire_keys_clients_rely_on() -> None:
    t = InstanceTransition("web-1", "pending", "booting", "started", "http://x").to_dict()
    assert t == {
        "name": "web-1",
        "from": "pending",
        "to": "booting",
        "reason": "started",
        "endpoint": "http://x",
    }
    d = DecisionApplied(3, 2, "up", "r", "p", "bob").to_dict()
    assert {"desired", "direction", "reason", "policy", "current", "previous", "actor", "applied"} <= set(d)
    assert d["applied"] is True and d["current"] == 2
    assert EndpointsChanged((Endpoint("a", "u"),)).to_dict() == {"endpoints": [{"name": "a", "url": "u"}]}


def test_logs_are_read_tolerantly() -> None:
    assert parse("lagged", {"dropped": 3}) is None, "a type this version does not know"
    assert parse("instance", {"to": "ready"}) is None, "a damaged record"
    old = parse("decision", {"desired": 2, "current": 1, "direction": "up", "reason": "r", "policy": "p"})
    assert isinstance(old, DecisionApplied) and old.previous == 1, "a log written before 'previous' existed"
