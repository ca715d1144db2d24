"""Cron expressions (parsed by croniter) and the windows the schedule policy opens with them:
which minutes an expression selects, errors that name the field, durations, window edges."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from vmscale.cron import Window, check_cron, fires_at, parse_duration

# 2026-11-23 is a Monday.
MON_0930 = datetime(2026, 11, 23, 9, 30)
SAT_1200 = datetime(2026, 11, 28, 12, 0)
SUN_0000 = datetime(2026, 11, 29, 0, 0)


@pytest.mark.parametrize(
    ("expr", "when", "expected"),
    [
        pytest.param("* * * * *", MON_0930, True, id="all-stars"),
        pytest.param("0-59 9-17 * * 1-5", MON_0930, True, id="business-hours-monday"),
        pytest.param("0-59 9-17 * * 1-5", SAT_1200, False, id="business-hours-saturday"),
        pytest.param("30 9 * * *", MON_0930, True, id="exact-minute"),
        pytest.param("31 9 * * *", MON_0930, False, id="other-minute"),
        pytest.param("*/15 * * * *", MON_0930, True, id="step-matches-30"),
        pytest.param("*/20 * * * *", MON_0930, False, id="step-misses-30"),
        pytest.param("10-40/10 * * * *", MON_0930, True, id="range-step"),
        pytest.param("0,15,45 * * * *", MON_0930, False, id="list-miss"),
        pytest.param("0,15,30 * * * *", MON_0930, True, id="list-hit"),
        pytest.param("* * * * 0", SUN_0000, True, id="sunday-as-0"),
        pytest.param("* * * * 7", SUN_0000, True, id="sunday-as-7"),
        pytest.param("* * * 12 *", MON_0930, False, id="month-miss"),
        pytest.param("* * * 11 *", MON_0930, True, id="month-hit"),
        pytest.param("* * 1 * 1", MON_0930, True, id="dom-or-dow-dow-matches"),
        pytest.param("* * 23 * 0", MON_0930, True, id="dom-or-dow-dom-matches"),
        pytest.param("* * 2 * 0", MON_0930, False, id="dom-or-dow-neither"),
        pytest.param("* * 23 * *", MON_0930, True, id="dom-only"),
        pytest.param("30 9 * * MON-FRI", MON_0930, True, id="day-names"),
        pytest.param("30 9 * * SAT,SUN", MON_0930, False, id="weekend-names"),
        pytest.param("30 9 * NOV *", MON_0930, True, id="month-name"),
        pytest.param("@daily", SUN_0000, True, id="daily-at-midnight"),
        pytest.param("@daily", MON_0930, False, id="daily-not-later"),
        pytest.param("@hourly", datetime(2026, 11, 23, 9, 0), True, id="hourly"),
        pytest.param("0 22-2 * * *", datetime(2026, 11, 23, 1, 0), True, id="wrap-around-range"),
    ],
)
def test_cron_matches(expr: str, when: datetime, expected: bool) -> None:
    assert fires_at(expr, when) is expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        pytest.param("* * * *", "expected 5 fields", id="too-few-fields"),
        pytest.param("0 0 9 * * MON-FRI", "expected 5 fields", id="seconds-field-refused"),
        pytest.param("60 * * * *", "the minute field '60' is not valid (0-59)", id="minute-range"),
        pytest.param("* 24 * * *", "the hour field '24' is not valid (0-23)", id="hour-range"),
        pytest.param("* * 0 * *", "the day-of-month field '0' is not valid", id="dom-zero"),
        pytest.param("* * * 13 *", "the month field '13' is not valid", id="month-range"),
        pytest.param("* * * * 8", "the day-of-week field '8' is not valid", id="dow-range"),
        pytest.param("*/0 * * * *", "the minute field '*/0' is not valid", id="zero-step"),
        pytest.param("a * * * *", "the minute field 'a' is not valid", id="letters"),
        pytest.param("1,,2 * * * *", "the minute field '1,,2' is not valid", id="empty-item"),
        pytest.param("0 0 30 2 *", "never matches", id="february-30"),
        pytest.param("@reboot", "unknown alias", id="reboot-is-not-a-time"),
    ],
)
def test_cron_errors_name_the_field(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_cron(expr)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("8h30m", 30600.0), ("90m", 5400.0), ("1d", 86400.0), ("45s", 45.0), ("1d2h3m4s", 93784.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "8", "8 hours", "30m8h", "0m", "-1h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def at(*args: int, tz: str = "UTC") -> float:
    return datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[misc]


def test_an_open_window_knows_its_edges() -> None:
    """The answer holds from the opening to the close, so a caller asking every second recomputes
    only at the edges (the simulator's speed depends on it)."""
    window = Window("0 9 * * MON-FRI", "30 17 * * MON-FRI")
    opening = window.at(at(2026, 11, 23, 12, 0))
    assert opening.open
    assert (opening.since, opening.until) == (at(2026, 11, 23, 9, 0), at(2026, 11, 23, 17, 30))
    closed = window.at(at(2026, 11, 23, 18, 0))
    assert not closed.open
    assert (closed.since, closed.until) == (at(2026, 11, 23, 17, 30), at(2026, 11, 24, 9, 0))


def test_window_in_a_timezone() -> None:
    window = Window("0 9 * * *", duration_s=3600.0, tz=ZoneInfo("Europe/Paris"))
    assert window.at(at(2026, 11, 23, 8, 30, tz="UTC")).open  # 09:30 in Paris
    assert not window.at(at(2026, 11, 23, 9, 30, tz="UTC")).open  # 10:30 in Paris


def test_asking_in_any_order_gives_the_same_answers() -> None:
    window = Window("0 9 * * MON-FRI", "30 17 * * MON-FRI")
    times = [at(2026, 11, 23, h, m) for h in range(24) for m in (0, 29, 30, 59)]
    forward = [window.at(t).open for t in times]
    backward = [window.at(t).open for t in reversed(times)]
    fresh = [Window("0 9 * * MON-FRI", "30 17 * * MON-FRI").at(t).open for t in times]
    assert forward == list(reversed(backward)) == fresh
    assert forward.count(True) == 8 * 4 + 2  # every probe from 09:00 to 16:59, then 17:00 and 17:29
