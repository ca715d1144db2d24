"""The one percentile definition (vmscale.percentile), against values computed by hand.

Reports, the load client, the benchmarks and HAProxy's latency window all use it, so a figure in
summary.json, in `vmscale load --json`, in BENCHMARKS.md and in a p95 policy's reason means the same.
"""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmscale.percentile import percentile

XS = [7.0, 3.0, 10.0, 1.0, 5.0, 9.0, 2.0, 8.0, 4.0, 6.0]  # 1..10, shuffled


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param([], 50, None, id="empty"),
        pytest.param([3.0], 99, 3.0, id="single"),
        pytest.param([0.25], 95, 0.25, id="single-p95"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.5, id="median-between"),
        pytest.param([1.0, 2.0, 3.0, 4.0, 5.0], 50, 3.0, id="median-exact"),
        pytest.param([0.0, 10.0], 95, 9.5, id="interpolated"),
        pytest.param([1.0, 2.0], 100, 2.0, id="max"),
        pytest.param([1.0, 2.0], 0, 1.0, id="min"),
        # rank 0.5*9 = 4.5 -> 5 + 0.5*(6-5); rank 8.55 -> 9 + 0.55; rank 8.91 -> 9.91
        pytest.param(XS, 50, 5.5, id="p50-unsorted"),
        pytest.param(XS, 95, 9.55, id="p95-unsorted"),
        pytest.param(XS, 99, 9.91, id="p99-unsorted"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 95, 3.85, id="p95-of-four"),
    ],
)
def test_percentile_by_hand(values: list[float], q: float, expected: float | None) -> None:
    got = percentile(values, q)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_a_generator_is_read_once_and_sorted() -> None:
    assert percentile((x for x in XS), 50) == pytest.approx(5.5)


@pytest.mark.parametrize("q", [-1, 100.5])
def test_q_outside_0_100_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], q)


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=50), st.integers(1, 99))
def test_agrees_with_the_standard_library(values: list[float], q: int) -> None:
    expected = statistics.quantiles(values, n=100, method="inclusive")[q - 1]
    assert percentile(values, q) == pytest.approx(expected, rel=1e-9, abs=1e-6)
