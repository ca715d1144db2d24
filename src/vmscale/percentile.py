"""The one percentile definition every figure in vmscale uses (reports, the load client, the
benchmarks, HAProxy's per-request latencies).

Linear interpolation between closest ranks — numpy's default, Excel's PERCENTILE.INC and
``statistics.quantiles(method="inclusive")`` — so any figure can be checked by hand: for sorted
x[0..n-1], rank = q/100 * (n - 1) and the value is interpolated between its two neighbours.
``statistics.quantiles`` itself is not used: it computes every cut point at once and, on Python
3.11, refuses a single value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (q in 0..100) of ``values``, in any order; None when there are none."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    xs = sorted(values)
    if not xs:
        return None
    rank = q / 100.0 * (len(xs) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)
