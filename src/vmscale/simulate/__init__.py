"""The what-if simulator: a closed-loop replay of a demand trace over the real policy code.

    run = simulate(build_policy_set(cfg.policies, min_count=1, max_count=8), load_trace(path), SimParams())
    summarise(run).unserved_seconds

Pure (no clock, no I/O beyond reading the trace file): ``engine`` steps the model, ``summary``
turns a run into figures, ``trace`` reads the CSV. The PNG plot is in ``vmscale.simulate_plot`` so
that this package never imports matplotlib.
"""

from __future__ import annotations

from vmscale.simulate.engine import MONDAY_1970, Run, ScaleChange, SimParams, Timeline, simulate
from vmscale.simulate.sets import ORIGINAL_RULE, comparison_sets, params_from_config
from vmscale.simulate.summary import Summary, compare, run_to_dict, summarise
from vmscale.simulate.trace import Trace, TraceError, load_trace, parse_trace

__all__ = [
    "MONDAY_1970",
    "ORIGINAL_RULE",
    "Run",
    "ScaleChange",
    "SimParams",
    "Summary",
    "Timeline",
    "Trace",
    "TraceError",
    "compare",
    "comparison_sets",
    "load_trace",
    "params_from_config",
    "parse_trace",
    "run_to_dict",
    "simulate",
    "summarise",
]
