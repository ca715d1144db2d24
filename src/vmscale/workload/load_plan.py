"""What the load client is asked to do: phases, their validation, and open-loop send schedules.

A run is a list of ``Phase`` objects executed back to back. Modes:

* ``idle``  — send nothing for ``duration_s`` (lets an autoscaler scale in).
* ``low``   — the original's light load: open loop at ``rate`` req/s (default 2), n random in 15..25.
* ``high``  — the original's heavy load: repeated groups of ``concurrency`` concurrent requests of a
  heavy n; the next group starts when the last one is answered. ``concurrency`` defaults to
  2 x the workers the first endpoint reports on ``/healthz``, so ONE instance has about twice the
  work it can do at once (it queues, latency grows) while two instances are just busy.
* ``step``  — open loop at a constant ``rate``.
* ``ramp``  — open loop, rate rising linearly from ``rate_start`` to ``rate`` over ``duration_s``.
* ``trace`` — open loop following a CSV ``t,rate`` (piecewise constant, seconds from phase start).

Open loop means requests are sent at planned times whatever the latency (no coordinated
omission): the schedule below is computed from the rate alone, never from responses.

Everything here is pure (no I/O except reading a trace file), so it is tested with tables.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from vmscale.errors import VmscaleError
from vmscale.workload.fib import ABSOLUTE_MAX_N

MODES = ("idle", "low", "high", "step", "ramp", "trace")
OPEN_LOOP = ("low", "step", "ramp", "trace")
LOW_N_RANGE = (15, 25)
DEFAULT_LOW_RATE = 2.0
DEFAULT_HEAVY_N = 30

MAX_RATE = 5000.0
MAX_DURATION_S = 24 * 3600.0
MAX_CONCURRENCY = 1000


class LoadParameterError(VmscaleError):
    """Absurd or inconsistent load parameters; carries every problem (the CLI exits with code 2)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid load parameters:\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True)
class Phase:
    """One stretch of load. ``name`` labels it in the log and summary (default: the mode).

    ``n`` is the fib argument for high/step/ramp/trace; when None it is calibrated if
    ``calibrate_s`` is set, else ``high`` uses ``DEFAULT_HEAVY_N`` and the open-loop modes draw n
    from 15..25. ``low`` always draws n from 15..25 (the original's light requests).
    ``rate`` is req/s for open-loop modes, ``concurrency`` the group size for ``high``
    (None: 2 x the instance's workers). ``trace`` holds (t, rate) rows for ``trace`` mode.
    """

    mode: str
    duration_s: float
    rate: float | None = None
    rate_start: float = 0.0
    n: int | None = None
    concurrency: int | None = None
    trace: tuple[tuple[float, float], ...] = ()
    calibrate_s: float | None = None
    arrival: str = "uniform"
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.mode

    def problems(self) -> list[str]:
        """Everything wrong with this phase, so the user sees all problems at once."""
        p: list[str] = []
        where = f"phase {self.label!r}"
        if self.mode not in MODES:
            p.append(f"{where}: mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not (math.isfinite(self.duration_s) and 0 <= self.duration_s <= MAX_DURATION_S):
            p.append(
                f"{where}: duration must be within 0..{MAX_DURATION_S:.0f} s (24 h), got {self.duration_s}"
            )
        for label, r in (("rate", self.rate), ("rate-start", self.rate_start)):
            if r is not None and not (math.isfinite(r) and 0 <= r <= MAX_RATE):
                p.append(f"{where}: {label} must be within 0..{MAX_RATE:.0f} req/s, got {r}")
        if self.mode in ("step", "ramp") and self.rate is None:
            p.append(f"{where}: mode {self.mode} needs a rate (req/s)")
        if self.mode == "trace" and not self.trace:
            p.append(f"{where}: mode trace needs a CSV of t,rate rows")
        for t, r in self.trace:
            if not (math.isfinite(t) and t >= 0 and math.isfinite(r) and 0 <= r <= MAX_RATE):
                p.append(
                    f"{where}: trace row t={t}, rate={r} must have t >= 0 and 0 <= rate <= {MAX_RATE:.0f}"
                )
                break
        if self.n is not None and not 0 <= self.n <= ABSOLUTE_MAX_N:
            p.append(f"{where}: n must be within 0..{ABSOLUTE_MAX_N}, got {self.n}")
        if self.concurrency is not None and not 1 <= self.concurrency <= MAX_CONCURRENCY:
            p.append(f"{where}: concurrency must be within 1..{MAX_CONCURRENCY}, got {self.concurrency}")
        if self.calibrate_s is not None and not (
            math.isfinite(self.calibrate_s) and 0.01 <= self.calibrate_s <= 10
        ):
            p.append(f"{where}: calibration target must be within 0.01..10 s, got {self.calibrate_s}")
        if self.arrival not in ("uniform", "poisson"):
            p.append(f"{where}: arrival must be uniform or poisson, got {self.arrival!r}")
        return p


def check_phases(phases: Sequence[Phase]) -> None:
    """Raise ``LoadParameterError`` listing every problem in ``phases`` (none: return quietly)."""
    problems = [msg for ph in phases for msg in ph.problems()]
    if not phases:
        problems.append("nothing to do: no phases")
    if problems:
        raise LoadParameterError(problems)


def read_trace(path: Path) -> tuple[tuple[float, float], ...]:
    """Read a ``t,rate`` CSV (header optional, t in seconds from the phase start), sorted by t."""
    rows: list[tuple[float, float]] = []
    try:
        with path.open(newline="") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if not row or row[0].strip().startswith("#"):
                    continue
                if lineno == 1 and row[0].strip().lower() == "t":
                    continue
                if len(row) < 2:
                    raise LoadParameterError([f"{path}:{lineno}: expected 't,rate', got {','.join(row)!r}"])
                try:
                    rows.append((float(row[0]), float(row[1])))
                except ValueError:
                    raise LoadParameterError(
                        [f"{path}:{lineno}: t and rate must be numbers, got {row!r}"]
                    ) from None
    except OSError as exc:
        raise LoadParameterError([f"cannot read trace {path}: {exc.strerror or exc}"]) from exc
    if not rows:
        raise LoadParameterError([f"{path}: no t,rate rows"])
    return tuple(sorted(rows))


def rate_function(phase: Phase) -> Callable[[float], float]:
    """The planned arrival rate (req/s) at ``t`` seconds into an open-loop phase."""
    if phase.mode == "low":
        low = DEFAULT_LOW_RATE if phase.rate is None else phase.rate
        return lambda t: low
    if phase.mode == "step":
        step = phase.rate or 0.0
        return lambda t: step
    if phase.mode == "ramp":
        start, end, span = phase.rate_start, phase.rate or 0.0, max(phase.duration_s, 1e-9)
        return lambda t: start + (end - start) * min(max(t / span, 0.0), 1.0)
    if phase.mode == "trace":
        rows = phase.trace

        def traced(t: float) -> float:
            current = 0.0
            for row_t, row_rate in rows:
                if row_t > t:
                    break
                current = row_rate
            return current

        return traced
    raise ValueError(f"mode {phase.mode} is not open loop")


def send_offsets(phase: Phase, rng: random.Random | None = None, step_s: float = 0.001) -> Iterator[float]:
    """Planned send times (seconds from phase start, increasing, < duration) for an open-loop phase.

    The k-th request is sent when the integral of the rate reaches its k-th target: 0, 1, 2, ...
    for uniform arrivals, a running sum of Exp(1) draws for Poisson arrivals (time rescaling,
    exact for a time-varying rate). The integral is accumulated in ``step_s`` slices (rate taken
    at each slice's start, so a trace's steps stay sharp) and send times are interpolated inside a
    slice, so ramps that start at 0 and traces with silent stretches come out right.
    """
    rate_at = rate_function(phase)
    rng = rng or random.Random()
    end = phase.duration_s
    poisson = phase.arrival == "poisson"
    target = rng.expovariate(1.0) if poisson else 0.0
    if not poisson and rate_at(0.0) > 0 and end > 0:
        yield 0.0
        target = 1.0
    area, t, i = 0.0, 0.0, 0
    while t < end:
        i += 1
        t1 = min(i * step_s, end)
        gained = rate_at(t) * (t1 - t)
        while gained > 0 and area + gained >= target:
            sent = t + (t1 - t) * (target - area) / gained
            if sent >= end - 1e-9:
                return
            yield sent
            target += rng.expovariate(1.0) if poisson else 1.0
        area, t = area + gained, t1


def parse_phases(spec: str, base: Phase) -> list[Phase]:
    """Parse ``"low:10,high:30,idle:5,step:20@50"`` (mode:duration_s[@rate]) into phases that
    otherwise copy ``base`` (its n, concurrency, trace...)."""
    phases: list[Phase] = []
    problems: list[str] = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        mode, _, rest = item.partition(":")
        dur, _, rate = rest.partition("@")
        try:
            phase = replace(base, mode=mode.strip(), duration_s=float(dur), name="")
            if rate:
                phase = replace(phase, rate=float(rate))
            phases.append(phase)
        except ValueError:
            problems.append(
                f"--phases item {item!r}: expected mode:seconds[@rate], e.g. high:30 or step:20@50"
            )
    if problems:
        raise LoadParameterError(problems)
    return phases
