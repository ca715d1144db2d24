"""Cron expressions and the time windows they open, for the schedule policy.

The expressions are parsed and stepped through by ``croniter`` (names such as ``MON-FRI`` and
``JAN``, ``@daily``/``@hourly``-style aliases, steps, lists, wrap-around ranges, the Vixie rule
that a day matches when *either* day-of-month or day-of-week does). What is ours:

* **Messages that name the field.** croniter says "[60 * * * *] is not acceptable"; a person
  needs "the minute field '60' is not valid (0-59)", so a failed expression is re-checked one
  field at a time to find which.
* **Minutes only.** A schedule floor works in minutes: 6- and 7-field forms (seconds, years)
  are refused rather than read in a surprising way.
* **Windows.** A schedule entry is open from a ``start`` match until the first ``end`` match
  after it (or for a ``duration``), like AWS scheduled actions and KEDA's cron scaler: "from
  09:00 to 17:30 on weekdays". :meth:`Window.at` answers "open at t?" together with the interval
  over which that answer holds, so a caller asking every second (the simulator) recomputes only
  at window edges.

It lives at the top of the package so both the config schema (validation) and the pure policy
layer (windows) use it without importing each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, 0 and 7 both Sunday"),
)
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
# A fixed, ordinary instant to try an expression from when checking that it ever matches.
_PROBE = datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC"))


def check_cron(expr: str) -> str:
    """``expr`` stripped, or ``ValueError`` saying which field is wrong (or that it never matches)."""
    text = " ".join(expr.split())
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise ValueError(f"cron {expr!r}: unknown alias; use one of {', '.join(ALIASES)}")
        return text.lower()
    parts = text.split(" ")
    if len(parts) != 5:
        raise ValueError(
            f"cron {expr!r}: expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    if not croniter.is_valid(text):
        for i, (name, allowed) in enumerate(_FIELDS):
            alone = " ".join(part if j == i else "*" for j, part in enumerate(parts))
            if not croniter.is_valid(alone):
                raise ValueError(f"cron {expr!r}: the {name} field {parts[i]!r} is not valid ({allowed})")
        raise ValueError(f"cron {expr!r}: not a valid cron expression")
    try:
        croniter(text, _PROBE).get_next(datetime)
    except CroniterError:
        raise ValueError(f"cron {expr!r}: never matches (no such date)") from None
    return text


def fires_at(expr: str, when: datetime) -> bool:
    """True if ``expr`` matches the minute of ``when`` (read in ``when``'s own timezone)."""
    return bool(croniter.match(check_cron(expr), when.replace(second=0, microsecond=0)))


def parse_duration(text: str) -> float:
    """``'8h30m'`` -> 30600.0 seconds. Units d, h, m, s, largest first; the total must be > 0."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match:
        raise ValueError(f"duration {text!r}: write it like '8h30m', '90m', '1d' or '45s'")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    if total <= 0:
        raise ValueError(f"duration {text!r} must be longer than zero")
    return total


@dataclass(frozen=True, slots=True)
class Opening:
    """Whether a window is open, and the epoch interval [since, until) over which that holds."""

    open: bool
    since: float
    until: float

    def covers(self, now: float) -> bool:
        return self.since <= now < self.until


@dataclass(slots=True)
class Window:
    """Open from each ``start`` match until the first ``end`` match after it, or for ``duration_s``.

    With overlapping openings (a start every hour, a 3 h duration) the latest start decides, and
    it also closes last, so "open at t" is "the latest start at or before t has not closed yet".
    """

    start: str
    end: str = ""
    duration_s: float | None = None
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    _last: Opening | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.start = check_cron(self.start)
        self.end = check_cron(self.end) if self.end else ""
        if bool(self.end) == (self.duration_s is not None):
            raise ValueError("a window needs either an end or a duration")

    def _close(self, opened: datetime) -> datetime:
        if self.duration_s is not None:
            return opened + timedelta(seconds=self.duration_s)
        return croniter(self.end, opened).get_next(datetime)

    def at(self, now: float) -> Opening:
        """The window's state at epoch second ``now`` (memoised over the interval it holds for)."""
        last = self._last
        if last is not None and last.covers(now):
            return last
        here = datetime.fromtimestamp(now, self.tz)
        # croniter steps strictly before its base: start from the next minute so that a start
        # matching this very minute counts as open.
        base = here.replace(second=0, microsecond=0) + timedelta(minutes=1)
        opened = croniter(self.start, base).get_prev(datetime)
        closes = self._close(opened)
        if here < closes:
            result = Opening(True, opened.timestamp(), closes.timestamp())
        else:
            reopens = croniter(self.start, here).get_next(datetime)
            result = Opening(False, closes.timestamp(), reopens.timestamp())
        self._last = result
        return result
