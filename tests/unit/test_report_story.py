"""The demo's "what happened" sentences, table-tested over every outcome a run can have: each
sentence true for its case and readable, by its exact wording. The backlog figures behind the
"why" are checked against hand-computed request logs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vmscale.report.backlog import drain_view, find_drain, outstanding_at, service_time
from vmscale.report.story import narrative


def _w(p95: float | None) -> dict[str, Any]:
    return {"p95_s": p95, "count": 0 if p95 is None else 10}


BASE: dict[str, Any] = {
    "overload_start": {"t_rel_s": 10.0},
    "overload_end": {"t_rel_s": 70.0},
    "scale_up": {"t_rel_s": 11.3, "from": 1, "to": 2, "policy": "cpu-target", "reason": "cpu 97% over 60%"},
    "new_instance_ready": {"t_rel_s": 19.0, "instance": "demo-2"},
    "first_answer_from_new": {"t_rel_s": 19.4, "instance": "demo-2"},
    "reaction_s": {"decision_to_ready": 7.7},
    "backlog": {"drain_s": 12.3, "never_drained": False, "after_high_load": False},
    "latency": {
        "before": _w(0.913),
        "after": _w(3.488),
        "after_drain": _w(0.640),
        "high": _w(2.9),
    },
    "scale_in": {"t_rel_s": 95.0, "how": "decision", "from": 2, "to": 1, "instance": "demo-2"},
    "requests": {"total": 530},
    "errors": {"count": 0, "by_kind": {}},
}

HEAD = (
    "The load rose to its high phase 10.0 s into the run. The autoscaler decided to scale up from 1 to 2 "
    "at 11.3 s (cpu-target: cpu 97% over 60%). The new instance demo-2 was ready at 19.0 s, "
    "7.7 s after the decision. "
    "The client got its first answer from it at 19.4 s."
)
TAIL = (
    "Once the load fell, the autoscaler decided to scale in from 2 to 1 (draining demo-2) at 95.0 s. "
    "All 530 requests succeeded."
)


def case(**changes: Any) -> dict[str, Any]:
    """BASE with nested changes: ``case(**{"latency.after.p95_s": 0.3})``; None deletes a key's value."""
    s = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = s
        for p in parents:
            node = node[p]
        node[leaf] = value
    return s


CASES = [
    pytest.param(
        case(),
        f"{HEAD} The p95 response time rose from 913 ms before the scale-up to 3488 ms after it, because the "
        "requests that queued while demo-2 was starting were answered only after it arrived. The backlog was "
        "worked off 12.3 s after the new instance's first answer; from then on the p95 was 640 ms, below the "
        f"913 ms before the scale-up. {TAIL}",
        id="rose-backlog-drained",
    ),
    pytest.param(
        case(**{"latency.after_drain.p95_s": 1.5}),
        f"{HEAD} The p95 response time rose from 913 ms before the scale-up to 3488 ms after it, because the "
        "requests that queued while demo-2 was starting were answered only after it arrived. The backlog was "
        "worked off 12.3 s after the new instance's first answer; from then on the p95 was 1500 ms, "
        f"still above the 913 ms before the scale-up. {TAIL}",
        id="rose-drained-still-above",
    ),
    pytest.param(
        case(**{"backlog.after_high_load": True, "backlog.drain_s": 18.0, "latency.after_drain.p95_s": None}),
        f"{HEAD} The p95 response time rose from 913 ms before the scale-up to 3488 ms after it, because the "
        "requests that queued while demo-2 was starting were answered only after it arrived. The backlog was "
        f"worked off 18.0 s after the new instance's first answer, once the high load had ended. {TAIL}",
        id="rose-drained-after-the-load-fell",
    ),
    pytest.param(
        case(
            **{
                "backlog.never_drained": True,
                "backlog.after_high_load": True,
                "backlog.drain_s": None,
                "latency.after_drain.p95_s": None,
            }
        ),
        f"{HEAD} The p95 response time rose from 913 ms before the scale-up to 3488 ms after it, because the "
        "requests that queued while demo-2 was starting were answered only after it arrived. The backlog had "
        f"still not been worked off when the log ended. {TAIL}",
        id="rose-never-drained",
    ),
    pytest.param(
        case(**{"backlog.drain_s": 0.1}),
        f"{HEAD} The p95 response time rose from 913 ms before the scale-up to 3488 ms after it, although no "
        f"backlog was left when demo-2 started answering. {TAIL}",
        id="rose-without-backlog",
    ),
    pytest.param(
        case(**{"latency.after.p95_s": 0.31, "backlog.drain_s": 0.0}),
        f"{HEAD} The p95 response time fell from 913 ms before the scale-up to 310 ms after it. {TAIL}",
        id="fell-no-backlog",
    ),
    pytest.param(
        case(**{"latency.after.p95_s": 0.5, "backlog.drain_s": 3.0, "latency.after_drain.p95_s": 0.9}),
        f"{HEAD} The p95 response time fell from 913 ms before the scale-up to 500 ms after it. The "
        "backlog was "
        "worked off 3.0 s after the new instance's first answer; from then on the p95 was 900 ms, about the "
        f"913 ms before the scale-up. {TAIL}",
        id="fell-with-a-short-backlog",
    ),
    pytest.param(
        case(**{"latency.after.p95_s": 0.95, "backlog": None}),
        f"{HEAD} The p95 response time stayed about the same: 913 ms before the scale-up, 950 ms "
        f"after it. {TAIL}",
        id="unchanged",
    ),
    pytest.param(
        case(**{"latency.after.p95_s": None, "backlog": None}),
        f"{HEAD} There were too few answered requests to compare response times before and after the "
        f"scale-up. {TAIL}",
        id="too-few-answers",
    ),
    pytest.param(
        case(scale_up=None, new_instance_ready=None, first_answer_from_new=None, scale_in=None, backlog=None),
        "The load rose to its high phase 10.0 s into the run. No scale-up happened; the p95 response time "
        "over the high load was 2900 ms. No scale-in happened. All 530 requests succeeded.",
        id="no-scale-up",
    ),
    pytest.param(
        case(
            scale_up=None,
            new_instance_ready=None,
            first_answer_from_new=None,
            backlog=None,
            decisions=[
                {"t_rel_s": 41.0, "direction": "none", "applied": True, "action": "paused"},
                {"t_rel_s": 52.2, "direction": "up", "from": 1, "to": 2, "applied": True},
                {"t_rel_s": 130.3, "direction": "down", "from": 2, "to": 1, "applied": True},
            ],
            **{"overload_start.t_rel_s": 56.3, "latency.high.p95_s": 35.2},
        ),
        "The load rose to its high phase 56.3 s into the run. The autoscaler scaled up from 1 to 2 at "
        "52.2 s, before the high load began, and did not scale up during it; the p95 response time over "
        f"the high load was 35.2 s. {TAIL}",
        id="scaled-up-before-the-high-load",
    ),
    pytest.param(
        case(
            overload_start=None,
            overload_end=None,
            scale_up=None,
            new_instance_ready=None,
            first_answer_from_new=None,
            scale_in=None,
            backlog=None,
        ),
        "The client log has no high-load phase. No scale-up happened. No scale-in happened. "
        "All 530 requests succeeded.",
        id="no-high-phase",
    ),
    pytest.param(
        case(new_instance_ready=None, first_answer_from_new=None, scale_in=None, backlog=None),
        "The load rose to its high phase 10.0 s into the run. The autoscaler decided to scale up from 1 to 2 "
        "at 11.3 s (cpu-target: cpu 97% over 60%). No new instance became ready after that decision. "
        "No scale-in happened before the run ended. All 530 requests succeeded.",
        id="never-ready",
    ),
    pytest.param(
        case(first_answer_from_new=None, backlog=None),
        "The load rose to its high phase 10.0 s into the run. The autoscaler decided to scale up from 1 to 2 "
        "at 11.3 s (cpu-target: cpu 97% over 60%). The new instance demo-2 was ready at 19.0 s, "
        "7.7 s after the decision. "
        f"The client never got an answer from the new instance. {TAIL}",
        id="ready-never-answered",
    ),
    pytest.param(
        case(**{"latency.after.p95_s": 0.3, "backlog": None, "scale_in.t_rel_s": 40.0}),
        f"{HEAD} The p95 response time fell from 913 ms before the scale-up to 300 ms after it. "
        "While the load "
        "was still high, the autoscaler decided to scale in from 2 to 1 (draining demo-2) at 40.0 s. "
        "All 530 requests succeeded.",
        id="scale-in-during-high-load",
    ),
    pytest.param(
        case(
            **{"latency.after.p95_s": 0.3, "backlog": None},
            scale_in={"t_rel_s": 96.2, "how": "draining", "instance": "demo-2"},
            errors={"count": 3, "by_kind": {"timeout": 2, "http 503": 1}},
        ),
        f"{HEAD} The p95 response time fell from 913 ms before the scale-up to 300 ms after it. "
        "Once the load "
        "fell, demo-2 started draining at 96.2 s. 3 of 530 requests failed (timeout × 2, http 503 × 1).",
        id="drained-by-instance-and-errors",
    ),
    pytest.param(
        case(**{"latency.after.p95_s": 0.3, "backlog": None}, scale_in=None),
        f"{HEAD} The p95 response time fell from 913 ms before the scale-up to 300 ms after it. No scale-in "
        "happened before the run ended. All 530 requests succeeded.",
        id="no-scale-in",
    ),
]


@pytest.mark.parametrize(("summary", "expected"), CASES)
def test_the_story_for_every_outcome(summary: dict[str, Any], expected: str) -> None:
    assert narrative(summary) == expected


@pytest.mark.parametrize(
    ("total", "failed", "expected"),
    [
        pytest.param(0, 0, "The client sent no requests.", id="none-sent"),
        pytest.param(1, 0, "The only request succeeded.", id="one-ok"),
        pytest.param(1, 1, "The only request failed (timeout × 1).", id="one-failed"),
        pytest.param(4, 4, "All 4 requests failed (timeout × 4).", id="all-failed"),
    ],
)
def test_request_counts_read_well(total: int, failed: int, expected: str) -> None:
    s = case(
        requests={"total": total}, errors={"count": failed, "by_kind": {"timeout": failed} if failed else {}}
    )
    assert narrative(s).endswith(expected)


def test_no_sentence_is_a_double_negative_or_a_fragment() -> None:
    for param in CASES:
        text = narrative(param.values[0])
        assert "did not fall" not in text and "  " not in text and ".." not in text
        assert all(
            sentence[:1].isupper() or sentence[:1].isdigit() for sentence in text.split(". ") if sentence
        )


# ---- the backlog behind the "why" --------------------------------------------------------------


def req(t: float, latency: float | None) -> dict[str, Any]:
    return {"t_send": t, "latency_s": latency}


def test_outstanding_requests_by_hand() -> None:
    reqs = [req(0.0, 2.0), req(0.5, 1.0), req(1.0, None), req(3.0, 0.5)]
    # at 0.25: one sent; 0.75: two; 1.25: two (the failed one took no time); 2.5: none; 3.2: one
    assert outstanding_at(reqs, [0.25, 0.75, 1.25, 2.5, 3.2]) == [1, 2, 2, 0, 1]


def backlog_then_steady(backlog: int, steady_s: float) -> list[dict[str, Any]]:
    """From t=0: ``backlog`` requests queued earlier finish one every 0.5 s; meanwhile new ones
    arrive every 0.25 s and each is answered 0.3 s later (one or two in flight at a time)."""
    reqs = [req(-5.0, 5.0 + 0.5 * (k + 1)) for k in range(backlog)]
    t = 0.0
    while t < steady_s:
        reqs.append(req(t, 0.3))
        t += 0.25
    return reqs


def test_a_backlog_is_drained_when_little_more_than_the_load_itself_is_outstanding() -> None:
    # λ = 4/s, s = 0.3 s: queue-free about 1.2 outstanding; drained at <= 2*4*0.3 + 1 = 3.4, i.e.
    # once at most one or two of the 8 queued requests are left (they end at 0.5, 1.0 ... 4.0)
    drain = find_drain(backlog_then_steady(8, 20.0), 0.0, 20.0, service_s=0.3)
    assert drain is not None and drain.peak >= 9
    assert drain.drain_s is not None and 2.9 <= drain.drain_s <= 4.1, drain


def test_no_backlog_drains_at_once() -> None:
    drain = find_drain(backlog_then_steady(0, 20.0), 0.0, 20.0, service_s=0.3)
    assert drain is not None and drain.drain_s is not None and drain.drain_s < 0.2


def test_a_backlog_that_outlasts_the_log_is_never_drained() -> None:
    # 60 queued, one finishing every 0.5 s: 30 s of draining, but the log ends after 20 s
    drain = find_drain(backlog_then_steady(60, 20.0), 0.0, 20.0, service_s=0.3)
    assert drain is not None and drain.drained_at is None and drain.drain_s is None
    view = drain_view(drain, run_start=-10.0, high_end=15.0)
    assert view is not None and view["never_drained"] and view["after_high_load"]


def test_a_drain_after_the_high_load_ended_says_so() -> None:
    drain = find_drain(backlog_then_steady(8, 20.0), 0.0, 20.0, service_s=0.3)
    assert drain is not None and drain.drained_at is not None
    assert drain_view(drain, 0.0, high_end=2.0)["after_high_load"] is True  # type: ignore[index]
    assert drain_view(drain, 0.0, high_end=10.0)["after_high_load"] is False  # type: ignore[index]


@pytest.mark.parametrize(
    ("high", "every", "expected"),
    [
        pytest.param(
            [0.9, 0.3, 0.35, 2.0, 0.31] * 4, [9.0], pytest.approx(0.3), id="fastest-tenth-of-the-high-phase"
        ),
        pytest.param(
            [], [0.05, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2], pytest.approx(0.185), id="no-high-phase"
        ),
        pytest.param([], [], None, id="no-answers"),
    ],
)
def test_service_time(high: list[float], every: list[float], expected: Any) -> None:
    assert service_time(high, every) == expected


def test_the_html_report_shows_the_drain_and_the_latency_after_it() -> None:
    from vmscale.report.html import render_html
    from vmscale.report.summary import build_summary
    from vmscale.report.synthetic import autoscaler_events, client_records

    page = render_html(build_summary(autoscaler_events(), client_records()), {})
    assert "once the backlog was drained" in page and "1.4 s (at 27.0 s)" in page
