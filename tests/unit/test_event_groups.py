"""One event bus for several groups: every event carries its group, readers of one group see only
theirs, and logs written before groups existed still read as they did."""

from __future__ import annotations

import json
from pathlib import Path

from vmscale.cli.fmt import clock, event_line
from vmscale.config import parse_config
from vmscale.event_kinds import DecisionApplied, Endpoint, EndpointsChanged, ErrorReported
from vmscale.events import Event, EventBus, JsonlWriter, group_of
from vmscale.integrations import Integrations
from vmscale.report.logs import read_logs


def test_a_group_view_stamps_its_group_on_one_shared_sequence() -> None:
    bus = EventBus()
    web, batch = bus.for_group("web"), bus.for_group("batch")
    first = web.publish(ErrorReported("tick", "boom"))
    second = batch.publish(ErrorReported("tick", "bang"))
    third = bus.publish(ErrorReported("leadership", "not a group's"))
    assert [(e.seq, e.group) for e in (first, second, third)] == [(1, "web"), (2, "batch"), (3, "")]
    assert bus.latest_seq == web.latest_seq == 3
    assert [e.data["message"] for e in web.recent()] == ["boom", "not a group's"]
    assert [e.data["message"] for e in bus.recent()] == ["boom", "bang", "not a group's"]


def test_listeners_hear_every_group_whichever_view_they_were_added_through() -> None:
    bus = EventBus()
    heard: list[str] = []
    bus.for_group("web").add_listener(lambda ev: heard.append(ev.group))
    bus.for_group("batch").publish(ErrorReported("x", "y"))
    assert heard == ["batch"]


def test_the_wire_form_has_the_group_and_leaves_it_out_when_there_is_none() -> None:
    ev = EventBus().for_group("web").publish(EndpointsChanged((Endpoint("web-1", "http://h:1"),)))
    assert list(ev.to_dict()) == ["seq", "t", "type", "group", "data"]
    assert ev.to_dict()["group"] == "web"
    plain = Event(7, 1.0, "tick", {})
    assert plain.to_dict() == {"seq": 7, "t": 1.0, "type": "tick", "data": {}}
    assert group_of(plain.to_dict()) == "" and group_of(ev.to_dict()) == "web"
    assert plain.of_group("web") and plain.of_group(None)
    assert ev.of_group("web") and not ev.of_group("batch") and ev.of_group(None)


def test_old_logs_without_a_group_read_and_print_as_before(tmp_path: Path) -> None:
    old = {"seq": 3, "t": 1_700_000_000.0, "type": "error", "data": {"where": "tick", "message": "boom"}}
    (tmp_path / "autoscaler.jsonl").write_text(json.dumps(old) + "\n")
    assert read_logs(tmp_path).autoscaler == [old]
    assert event_line(old) == f"{clock(old['t'])}  error     tick: boom"
    assert event_line(old, show_group=True) == f"{clock(old['t'])}  -            error     tick: boom"


def test_a_log_of_several_groups_says_which_group_each_line_is(tmp_path: Path) -> None:
    bus = EventBus()
    writer = JsonlWriter(tmp_path / "autoscaler.jsonl")
    bus.add_listener(writer)
    bus.for_group("web").publish(ErrorReported("tick", "boom"))
    bus.for_group("batch").publish(DecisionApplied(2, 1, "up", "cpu high", "cpu", "autoscaler"))
    writer.close()
    rows = read_logs(tmp_path).autoscaler
    assert [(r["group"], r["type"]) for r in rows] == [("web", "error"), ("batch", "decision")]
    assert "batch        decision  scale up 1 -> 2" in event_line(rows[1], show_group=True)


def test_a_groups_integrations_act_on_that_groups_events_only(tmp_path: Path) -> None:
    target = tmp_path / "web.json"
    cfg = parse_config({"group": {"name": "web"}, "notify": {"file_sd": {"path": str(target)}}})
    integ = Integrations(cfg)
    try:
        bus = EventBus()
        bus.add_listener(integ.on_event)
        bus.for_group("batch").publish(EndpointsChanged((Endpoint("batch-1", "http://127.0.0.1:18201"),)))
        assert not target.exists(), "another group's endpoints must not reach this group's file_sd"
        bus.for_group("web").publish(EndpointsChanged((Endpoint("web-1", "http://127.0.0.1:18101"),)))
        assert json.loads(target.read_text())[0]["targets"] == ["127.0.0.1:18101"]
    finally:
        integ.close(group_removed=False)
