"""A small cron matcher: ``minute hour day-of-month month day-of-week``.

Written here rather than pulled in as a dependency because the schedule policy needs only matching
("is this minute inside the busy hours?"), not the next-fire-time arithmetic of a full cron library.
It lives at the top of the package so both the config schema (validation) and the pure policy layer
(matching) can use it without either importing the other.

Each field accepts ``*``, a number, a range ``a-b``, a list ``a,b-c`` and a step ``*/n``, ``a-b/n`` or
``a/n`` (from ``a`` to the field's end). Day of week is 0-7 with both 0 and 7 meaning Sunday. As in
Vixie cron, when both day-of-month and day-of-week are restricted, a day matches if *either* does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)


@dataclass(frozen=True, slots=True)
class CronSpec:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday .. 6 = Saturday (7 folded into 0)
    dom_any: bool
    dow_any: bool

    def matches(self, when: datetime) -> bool:
        """True if the minute of ``when`` (already in the schedule's timezone) is selected."""
        if when.minute not in self.minutes or when.hour not in self.hours or when.month not in self.months:
            return False
        dom_ok = when.day in self.days
        dow_ok = (when.isoweekday() % 7) in self.weekdays
        if self.dom_any or self.dow_any:
            return dom_ok and dow_ok
        return dom_ok or dow_ok


def _number(text: str, name: str, lo: int, hi: int) -> int:
    if not text.isdigit():
        raise ValueError(f"cron {name}: {text!r} is not a number")
    value = int(text)
    if not lo <= value <= hi:
        raise ValueError(f"cron {name}: {value} is outside {lo}-{hi}")
    return value


def parse_field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    """One cron field to the set of values it selects; ``ValueError`` names the field and the problem."""
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ValueError(f"cron {name}: empty list item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            step = _number(step_text, name, 1, hi)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _number(a, name, lo, hi), _number(b, name, lo, hi)
            if start > end:
                raise ValueError(f"cron {name}: range {base!r} runs backwards")
        else:
            start = _number(base, name, lo, hi)
            end = hi if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_cron(expr: str) -> CronSpec:
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(
            f"cron {expr!r}: expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    sets = [parse_field(p, name, lo, hi) for p, (name, lo, hi) in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return CronSpec(
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=weekdays,
        dom_any=parts[2] == "*",
        dow_any=parts[4] == "*",
    )
