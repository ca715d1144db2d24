"""Policies on external metrics (a `[[metrics.prometheus]]` entry): per-instance values in
`Sample.extra`, one group value in the group samples, and "no data" notes that make them hold."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tests.unit.policy_helpers import T0
from vmscale.config.policy import StepAdjustment, StepPolicyConfig, TargetPolicyConfig, ThresholdPolicyConfig
from vmscale.model import Direction, InstanceSnapshot, InstanceState, Sample, Snapshot
from vmscale.policy import build_policy_set, observe

QUEUE = "queue_depth"


def ext_snap(
    per_instance: list[float | None] | None = None,
    *,
    group: float | None = None,
    notes: Mapping[str, str] | None = None,
    desired: int | None = None,
    booting: int = 0,
    older: list[float | None] | None = None,
) -> Snapshot:
    """Ready instances whose newest sample carries ``queue_depth`` (None = absent), optionally
    after an older sample with other values; ``group`` is a group-level value."""
    insts = []
    values = per_instance or []
    for i, v in enumerate(values):
        samples = []
        if older is not None and older[i] is not None:
            samples.append(Sample(T0 - 1.5, cpu=50.0, extra={QUEUE: older[i]}))
        samples.append(Sample(T0 - 0.5, cpu=50.0, extra={} if v is None else {QUEUE: v}))
        insts.append(InstanceSnapshot(f"web-{i + 1}", InstanceState.READY, samples=tuple(samples)))
    insts += [InstanceSnapshot(f"boot-{i}", InstanceState.BOOTING) for i in range(booting)]
    gs = (Sample(T0 - 0.5, extra={QUEUE: group}),) if group is not None else ()
    count = len(values) or 1
    return Snapshot(
        T0,
        desired if desired is not None else count + booting,
        1,
        10,
        tuple(insts),
        gs,
        metric_notes=dict(notes or {}),
    )


def target(value: float, **kw: object) -> TargetPolicyConfig:
    return TargetPolicyConfig(metric=QUEUE, target=value, down_stabilization_s=0, **kw)  # type: ignore[arg-type]


def test_observe_reads_only_the_newest_sample_of_each_instance() -> None:
    # web-2's series vanished this tick: its old value must not be used, it is missing.
    obs = observe(ext_snap([4.0, None, 6.0], older=[1.0, 9.0, 1.0]))
    view = obs.metric(QUEUE)
    assert (view.total, view.reporting, view.missing) == (10.0, 2, 1)
    assert view.mean == 5.0 and not view.group_level
    # Keys name metrics the same way for built-in and external ones (code reads `metric.value`).
    assert {key.value for key in obs.metrics} == {"cpu", "rps", "latency_p95", "inflight", QUEUE}


def test_observe_counts_instances_before_the_first_reporter_as_missing() -> None:
    view = observe(ext_snap([None, None, 3.0])).metric(QUEUE)
    assert (view.reporting, view.missing) == (1, 2)


def test_a_note_empties_the_view_whatever_older_samples_say() -> None:
    obs = observe(ext_snap([4.0, 6.0], notes={QUEUE: "cannot reach Prometheus"}))
    view = obs.metric(QUEUE)
    assert view.mean is None and view.missing == 2 and view.note == "cannot reach Prometheus"


def test_group_value_is_group_level() -> None:
    view = observe(ext_snap([None, None], group=30.0)).metric(QUEUE)
    assert view.group_level and view.mean == 30.0 and view.t == T0 - 0.5


@pytest.mark.parametrize(
    ("values", "desired", "expected"),
    [
        pytest.param([30.0, 30.0], 2, 6, id="per-instance-mean-over-target-scales-up"),
        pytest.param([10.0, 11.0], 2, 2, id="within-dead-band-holds"),
        pytest.param([2.0, 2.0, 2.0, 2.0], 4, 1, id="per-instance-low-scales-in"),
        pytest.param([2.0, 2.0, None, 2.0], 4, 2, id="missing-counted-as-target-damps-scale-in"),
        pytest.param([40.0, None], 2, 4, id="missing-counted-as-zero-on-scale-up"),
    ],
)
def test_target_on_a_per_instance_external_metric(
    values: list[float | None], desired: int, expected: int
) -> None:
    ps = build_policy_set([target(10.0)], min_count=1, max_count=10)
    decision, _ = ps.decide(ext_snap(values, desired=desired), ps.initial_state())
    assert decision.desired == expected, decision.reason
    assert decision.reason.count(QUEUE) >= 1


def test_target_on_a_group_value_scales_the_ready_count_by_the_ratio() -> None:
    # 3 ready, the group's queue is 90 against a target of 10 -> ceil(3 * 90 / 10) = 27, then the
    # default rate limit (+4 or +100 % per period) -> 7.
    ps = build_policy_set([target(10.0)], min_count=1, max_count=10)
    decision, _ = ps.decide(ext_snap([None, None, None], group=90.0), ps.initial_state())
    assert decision.desired == 7 and decision.direction is Direction.UP
    assert decision.figures.recommendation == 27
    assert "ceil(3*90/10)=27" in decision.reason
    # avg-per-instance semantics: a query that divides by the instance count gives KEDA's AverageValue.
    decision, _ = ps.decide(ext_snap([None, None, None], group=20.0), ps.initial_state())
    assert decision.desired == 6


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(target(10.0), id="target"),
        pytest.param(
            ThresholdPolicyConfig(metric=QUEUE, upper=50.0, lower=5.0, samples_down=1), id="threshold"
        ),
        pytest.param(
            StepPolicyConfig(
                metric=QUEUE, upper=50.0, lower=5.0, samples_down=1, steps_down=[StepAdjustment(adjustment=2)]
            ),
            id="step",
        ),
    ],
)
def test_no_data_holds_and_the_decision_says_why(policy: object) -> None:
    """A failed query must never scale a group in: every kind holds and quotes the source's note."""
    ps = build_policy_set([policy], min_count=1, max_count=10)  # type: ignore[list-item]
    note = "Prometheus rejected the query (bad_data): 1:5: parse error"
    # Old samples say the queue is empty (which alone would scale in): the note wins.
    snap = ext_snap([0.0, 0.0, 0.0, 0.0], notes={QUEUE: note}, older=[0.0, 0.0, 0.0, 0.0])
    decision, _ = ps.decide(snap, ps.initial_state())
    assert decision.desired == 4 and decision.direction is Direction.NONE
    assert f"no {QUEUE} samples from ready instances ({note})" in decision.reason


def test_no_data_on_one_metric_blocks_scale_in_by_another_policy() -> None:
    """CPU says scale in, the queue has no data: scale-in needs every policy, so the group holds."""
    cpu_low = TargetPolicyConfig(name="cpu", target=60.0, down_stabilization_s=0)
    ps = build_policy_set([cpu_low, target(10.0, name="queue")], min_count=1, max_count=10)
    snap = ext_snap([1.0, 1.0, 1.0], notes={QUEUE: "query returned no series"})
    snap = Snapshot(
        snap.now,
        snap.desired,
        1,
        10,
        tuple(
            InstanceSnapshot(i.name, i.state, samples=(Sample(T0 - 0.5, cpu=5.0),)) for i in snap.instances
        ),
        metric_notes=snap.metric_notes,
    )
    decision, _ = ps.decide(snap, ps.initial_state())
    assert decision.desired == 3, decision.reason
    assert "query returned no series" in decision.reason


def test_group_note_says_the_group() -> None:
    ps = build_policy_set([target(10.0)], min_count=1, max_count=10)
    snap = ext_snap([None, None], group=None, notes={QUEUE: "newest value is 30 s old"})
    decision, _ = ps.decide(snap, ps.initial_state())
    assert decision.desired == 2
    assert "newest value is 30 s old" in decision.reason
