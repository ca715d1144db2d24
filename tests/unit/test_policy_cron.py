"""The schedule policy's cron matcher: fields, ranges, lists, steps, the day-of-month/day-of-week rule."""

from __future__ import annotations

from datetime import datetime

import pytest

from vmscale.cron import parse_cron, parse_field

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
        pytest.param("5/25 * * * *", MON_0930, True, id="start-step-5-30-55"),
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
    ],
)
def test_cron_matches(expr: str, when: datetime, expected: bool) -> None:
    assert parse_cron(expr).matches(when) is expected


def test_parse_field_values() -> None:
    assert parse_field("1-10/3", "minute", 0, 59) == {1, 4, 7, 10}
    assert parse_field("*/6", "hour", 0, 23) == {0, 6, 12, 18}


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        pytest.param("* * * *", "expected 5 fields", id="too-few-fields"),
        pytest.param("60 * * * *", "minute: 60 is outside 0-59", id="minute-range"),
        pytest.param("* 24 * * *", "hour: 24 is outside 0-23", id="hour-range"),
        pytest.param("* * 0 * *", "day-of-month: 0 is outside 1-31", id="dom-zero"),
        pytest.param("* * * * 8", "day-of-week: 8 is outside 0-7", id="dow-range"),
        pytest.param("5-1 * * * *", "runs backwards", id="backwards"),
        pytest.param("*/0 * * * *", "0 is outside", id="zero-step"),
        pytest.param("a * * * *", "not a number", id="letters"),
        pytest.param("1,,2 * * * *", "empty list item", id="empty-item"),
    ],
)
def test_cron_errors_name_the_field(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cron(expr)
