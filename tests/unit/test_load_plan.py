"""Phases: validation of absurd parameters, open-loop schedules, trace files, --phases parsing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from vmscale.workload.load_plan import (
    LoadParameterError,
    Phase,
    check_phases,
    parse_phases,
    rate_function,
    read_trace,
    send_offsets,
)


@pytest.mark.parametrize(
    ("phase", "fragment"),
    [
        pytest.param(Phase("step", 10, rate=5001), "rate must be within", id="rate-too-high"),
        pytest.param(Phase("step", 10, rate=-1), "rate must be within", id="rate-negative"),
        pytest.param(Phase("step", 24 * 3600 + 1, rate=1), "duration", id="duration-over-24h"),
        pytest.param(Phase("low", -1), "duration", id="duration-negative"),
        pytest.param(Phase("low", float("nan")), "duration", id="duration-nan"),
        pytest.param(Phase("high", 10, concurrency=1001), "concurrency", id="concurrency-too-high"),
        pytest.param(Phase("high", 10, concurrency=0), "concurrency", id="concurrency-zero"),
        pytest.param(Phase("high", 10, n=46), "n must be within", id="n-too-big"),
        pytest.param(Phase("high", 10, n=-1), "n must be within", id="n-negative"),
        pytest.param(Phase("burst", 10), "mode must be one of", id="unknown-mode"),
        pytest.param(Phase("step", 10), "needs a rate", id="step-without-rate"),
        pytest.param(Phase("trace", 10), "needs a CSV", id="trace-without-rows"),
        pytest.param(Phase("trace", 10, trace=((0, 10), (5, 9000))), "trace row", id="trace-rate-too-high"),
        pytest.param(Phase("ramp", 10, rate=10, rate_start=-5), "rate-start", id="ramp-start-negative"),
        pytest.param(Phase("high", 10, calibrate_s=60), "calibration target", id="calibration-absurd"),
        pytest.param(Phase("step", 10, rate=1, arrival="bursty"), "arrival", id="unknown-arrival"),
    ],
)
def test_absurd_parameters_are_refused(phase: Phase, fragment: str) -> None:
    with pytest.raises(LoadParameterError) as info:
        check_phases([phase])
    assert any(fragment in p for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(LoadParameterError) as info:
        check_phases([Phase("step", -1, rate=9999), Phase("high", 5, n=99, concurrency=5000)])
    assert len(info.value.problems) == 4


def test_sane_phases_pass() -> None:
    check_phases([Phase("low", 10), Phase("high", 30, n=30), Phase("idle", 5), Phase("step", 10, rate=50)])


def test_uniform_schedule_is_evenly_spaced() -> None:
    offsets = list(send_offsets(Phase("step", 1.0, rate=10)))
    assert offsets == pytest.approx([i / 10 for i in range(10)])


def test_ramp_sends_the_integral_of_its_rate() -> None:
    # 0 -> 20 req/s over 10 s: the area under the rate is 100 requests, denser at the end.
    offsets = list(send_offsets(Phase("ramp", 10.0, rate=20, rate_start=0)))
    assert 95 <= len(offsets) <= 101
    first_half = sum(1 for t in offsets if t < 5)
    assert 20 <= first_half <= 30  # a quarter of the area lies in the first half
    assert offsets == sorted(offsets)
    assert all(0 <= t < 10 for t in offsets)


def test_poisson_schedule_has_the_planned_mean_rate() -> None:
    offsets = list(send_offsets(Phase("step", 100.0, rate=20, arrival="poisson"), random.Random(7)))
    assert 1800 <= len(offsets) <= 2200
    assert offsets == sorted(offsets)


def test_trace_is_piecewise_constant(tmp_path: Path) -> None:
    csv_path = tmp_path / "rates.csv"
    csv_path.write_text("t,rate\n0,2.2\n# quiet spell\n2,0\n3,10\n")
    rows = read_trace(csv_path)
    assert rows == ((0.0, 2.2), (2.0, 0.0), (3.0, 10.0))
    phase = Phase("trace", 4.0, trace=rows)
    rate = rate_function(phase)
    assert [rate(t) for t in (0, 1.9, 2.5, 3, 100)] == [2.2, 2.2, 0, 10, 10]
    offsets = list(send_offsets(phase))
    # 2 s at 2.2/s: sends at 0, 1/2.2, ... (5 of them), the integral is 4.4 at t=2; nothing while
    # silent; at 10/s the 5th, 6th, ... 14th targets fall at 3.06, 3.16, ... 3.96.
    assert offsets[:5] == pytest.approx([i / 2.2 for i in range(5)], abs=1e-6)
    assert sum(1 for t in offsets if 2 <= t < 3) == 0
    assert offsets[5:] == pytest.approx([3.06 + i / 10 for i in range(10)], abs=1e-6)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("t,rate\n1,abc\n", "must be numbers"),
        ("t,rate\n1\n", "expected 't,rate'"),
        ("t,rate\n", "no t,rate rows"),
    ],
)
def test_bad_trace_files_say_where(tmp_path: Path, content: str, fragment: str) -> None:
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(content)
    with pytest.raises(LoadParameterError) as info:
        read_trace(csv_path)
    assert fragment in str(info.value)


def test_missing_trace_file_is_a_parameter_error(tmp_path: Path) -> None:
    with pytest.raises(LoadParameterError, match="cannot read trace"):
        read_trace(tmp_path / "nope.csv")


def test_parse_phases_copies_the_base() -> None:
    base = Phase("low", 20, n=31, concurrency=4)
    phases = parse_phases("low:10, high:30,step:5@40", base)
    assert [(p.mode, p.duration_s, p.rate) for p in phases] == [
        ("low", 10, None),
        ("high", 30, None),
        ("step", 5, 40),
    ]
    assert all(p.n == 31 and p.concurrency == 4 for p in phases)
    with pytest.raises(LoadParameterError, match="mode:seconds"):
        parse_phases("high:soon", base)
