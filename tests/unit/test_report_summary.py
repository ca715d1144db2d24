"""summary.json figures, checked against values computed by hand from the synthetic story
(see vmscale/report/synthetic.py's docstring for the numbers)."""

from __future__ import annotations

import pytest

from vmscale.report.summary import build_summary, instance_seconds
from vmscale.report.synthetic import START, autoscaler_events, client_records


@pytest.fixture(scope="module")
def summary() -> dict:
    return build_summary(autoscaler_events(), client_records())


def test_key_moments_epoch_and_relative(summary: dict) -> None:
    assert summary["start_t"] == START
    assert summary["duration_s"] == 60.0
    assert summary["overload_start"] == {"t": START + 10.0, "t_rel_s": 10.0}
    up = summary["scale_up"]
    assert (up["t_rel_s"], up["from"], up["to"], up["policy"]) == (20.0, 1, 2, "target")
    assert up["t"] == START + 20.0
    assert summary["new_instance_ready"] == {"t": START + 25.0, "t_rel_s": 25.0, "instance": "web-2"}
    # sent at 25.5, answered in 0.1 s: the client got it at 25.6
    assert summary["first_answer_from_new"]["t_rel_s"] == pytest.approx(25.6)
    assert summary["first_answer_from_new"]["instance"] == "web-2"
    assert summary["reaction_s"] == {
        "overload_to_decision": 10.0,
        "decision_to_ready": 5.0,
        "ready_to_first_answer": pytest.approx(0.6),
        "overload_to_first_answer": pytest.approx(15.6),
    }


def test_scale_in_is_the_first_of_down_decision_and_draining(summary: dict) -> None:
    # the down decision (50.0) came before web-2 started draining (50.2)
    s_in = summary["scale_in"]
    assert (s_in["t_rel_s"], s_in["how"], s_in["instance"], s_in["from"], s_in["to"]) == (
        50.0,
        "decision",
        "web-2",
        2,
        1,
    )


def test_scale_in_by_draining_when_no_decision_logged() -> None:
    events = [
        e for e in autoscaler_events() if not (e["type"] == "decision" and e["data"]["direction"] == "down")
    ]
    s = build_summary(events, client_records())
    assert s["scale_in"] == {"t": START + 50.2, "t_rel_s": 50.2, "how": "draining", "instance": "web-2"}


def test_latency_windows_by_hand(summary: dict) -> None:
    before, during, after = (summary["latency"][k] for k in ("before", "during", "after"))
    # before: the 20 high-phase requests sent 10.0..19.5, latencies 1.00..1.95 step 0.05
    # p50 rank 9.5 -> (1.45+1.50)/2; p95 rank 18.05 -> 1.90+0.05*0.05; p99 rank 18.81 -> 1.90+0.05*0.81
    assert before["count"] == 20
    assert before["p50_s"] == pytest.approx(1.475)
    assert before["p95_s"] == pytest.approx(1.9025)
    assert before["p99_s"] == pytest.approx(1.9405)
    assert (before["from_rel_s"], before["to_rel_s"]) == (10.0, 20.0)
    # during: 12 sent 20.0..25.5, minus the timeout and the 503 = 10: nine at 2.0 s and web-2's 0.1 s
    assert during["count"] == 10
    assert during["p50_s"] == pytest.approx(2.0)
    assert during["mean_s"] == pytest.approx((9 * 2.0 + 0.1) / 10)
    # after: 28 sent 26.0..39.5, half at 0.2 (web-2) and half at 0.4 (web-1)
    assert after["count"] == 28
    assert after["p50_s"] == pytest.approx(0.3)
    assert after["p95_s"] == pytest.approx(0.4)
    assert (after["from_rel_s"], after["to_rel_s"]) == (pytest.approx(25.6), 40.0)


def test_errors_peak_and_instance_seconds(summary: dict) -> None:
    assert summary["errors"] == {"count": 2, "by_kind": {"timeout": 1, "http 503": 1}}
    assert summary["requests"]["total"] == 80
    assert summary["requests"]["ok"] == 78
    assert summary["peak_instances"] == 2
    # ticks 0..60: actual 1 over the intervals from 0..20 (21 s), 2 from 21..52 (32 s), 1 from 53..59 (7 s)
    assert summary["instance_seconds"] == pytest.approx(21 + 2 * 32 + 7)


def test_decisions_and_narrative(summary: dict) -> None:
    assert [(d["direction"], d["from"], d["to"], d["applied"]) for d in summary["decisions"]] == [
        ("up", 1, 2, True),
        ("down", 2, 1, True),
    ]
    story = summary["what_happened"]
    assert "scale up from 1 to 2 at 20.0 s" in story
    assert "web-2 was ready at 25.0 s" in story
    assert "fell from 1902 ms" in story
    assert "2 of 80 requests failed" in story


def test_instance_seconds_step_integral() -> None:
    ticks = [{"t": t, "type": "tick", "data": {"actual": a}} for t, a in [(0.0, 1), (2.0, 3), (3.0, 2)]]
    assert instance_seconds(ticks) == pytest.approx(1 * 2.0 + 3 * 1.0)
    assert instance_seconds([]) is None


def test_no_scale_up_gives_nulls_and_says_so() -> None:
    events = [e for e in autoscaler_events() if e["type"] == "tick" and e["t"] < START + 20]
    s = build_summary(events, client_records())
    for key in ("scale_up", "new_instance_ready", "first_answer_from_new", "scale_in"):
        assert s[key] is None, key
    assert s["latency"]["during"]["count"] == 0
    assert s["latency"]["during"]["p95_s"] is None
    assert s["overload_start"]["t_rel_s"] == 10.0
    assert "No scale-up happened" in s["what_happened"]
    assert "No scale-in happened" in s["what_happened"]


def test_unapplied_or_early_decisions_do_not_count_as_the_scale_up() -> None:
    events = autoscaler_events()
    fake_up = {"desired": 2, "direction": "up", "reason": "r", "policy": "p", "current": 1, "actor": "policy"}
    events += [
        {
            "seq": 900,
            "t": START + 5.0,
            "type": "decision",
            "data": {**fake_up, "applied": True},
        },  # before overload
        {
            "seq": 901,
            "t": START + 15.0,
            "type": "decision",
            "data": {**fake_up, "applied": False},
        },  # cooldown
    ]
    assert build_summary(events, client_records())["scale_up"]["t_rel_s"] == 20.0


def test_empty_logs() -> None:
    s = build_summary([], [])
    assert s["scale_up"] is None and s["peak_instances"] is None
    assert "empty" in s["what_happened"]


def test_without_phase_markers_the_request_phase_labels_are_used() -> None:
    records = [r for r in client_records() if r.get("event") != "phase"]
    s = build_summary(autoscaler_events(), records)
    assert s["overload_start"]["t_rel_s"] == 10.0  # first request labelled "high"
    assert s["overload_end"]["t_rel_s"] == 39.5  # last request labelled "high"


def test_garbage_records_are_ignored() -> None:
    records = [*client_records(), {"weird": True}, {"t_send": "soon"}, {"event": "phase"}]
    events = [*autoscaler_events(), {"type": "tick"}, {"t": 1.0, "type": "decision", "data": "x"}]
    s = build_summary(events, records)
    assert s["requests"]["total"] == 80
    assert s["scale_up"]["t_rel_s"] == 20.0


def test_manual_actions_are_listed_but_idle_holds_are_not() -> None:
    hold = {"desired": 2, "direction": "none", "reason": "within tolerance", "policy": "target", "current": 2}
    events = [
        *autoscaler_events(),
        {
            "seq": 901,
            "t": START + 30,
            "type": "decision",
            "data": {**hold, "actor": "autoscaler", "applied": True},
        },
        {
            "seq": 902,
            "t": START + 31,
            "type": "decision",
            "data": {**hold, "policy": "manual", "actor": "ops", "action": "paused", "applied": True},
        },
    ]
    listed = build_summary(events, client_records())["decisions"]
    assert [(d["t_rel_s"], d["action"], d["actor"]) for d in listed] == [
        (20.0, None, "policy"),
        (31.0, "paused", "ops"),
        (50.0, None, "policy"),
    ]
