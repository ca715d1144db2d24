"""The scenario benchmark's contenders, load shapes and goal judgement (the parts that are pure)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from vmscale.bench.runner import group_config
from vmscale.bench.scenario import LENGTHS, SHAPES, contenders, judge, phases
from vmscale.workload.load_plan import check_phases, rate_function, send_offsets


def test_the_hpa_contender_is_the_hpa_as_it_ships() -> None:
    hpa = contenders("process", 2)["hpa"]
    (policy,) = hpa.policies
    assert hpa.interval_s == 15.0, "the HPA controller's sync period"
    assert (policy["target"], policy["tolerance"], policy["down_stabilization_s"]) == (80.0, 0.1, 300.0)


def test_every_contender_is_a_valid_group(tmp_path: Any) -> None:
    for provider in ("process", "libvirt"):
        for c in contenders(provider, 2).values():
            cfg = group_config(tmp_path / c.name, provider=provider, **c.config_args())  # type: ignore[arg-type]
            assert cfg.group.max == c.max_count
    assert "vmscale-clone" not in contenders("process", 2), "clones are a libvirt thing"
    vertical = contenders("process", 2)["vmscale-vertical"]
    assert vertical.max_count * vertical.sections["max_vcpus"] == 2, "no more vCPUs than the host has"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("key", sorted(LENGTHS))
def test_every_shape_is_valid_open_loop_load(shape: str, key: tuple[str, bool]) -> None:
    ps = phases(shape, LENGTHS[key], 30, 5.0, overload=1.3, ramp_to=1.6, burst=1.6)
    check_phases(ps)
    assert ps[-1].mode == "idle" and ps[-1].duration_s == LENGTHS[key].idle_s


def test_bursts_come_every_period_at_the_burst_rate() -> None:
    lengths = LENGTHS[("process", False)]
    train = phases("bursts", lengths, 30, 5.0, overload=1.3, ramp_to=1.6, burst=2.0)[0]
    rate = rate_function(train)
    quiet = (lengths.period_s - lengths.burst_s) / 2
    for k in range(lengths.bursts):
        start = k * lengths.period_s + quiet
        assert rate(start + 1) == 10.0 and rate(start - 1) == 1.5 and rate(start + lengths.burst_s + 1) == 1.5
    sent = list(send_offsets(train))
    expected = lengths.bursts * (lengths.burst_s * 10.0 + (lengths.period_s - lengths.burst_s) * 1.5)
    assert len(sent) == pytest.approx(expected, abs=3)


def fig(over: float, inst: float, vcpu: float | None = None) -> dict[str, Any]:
    return {"over_slo_2s": over, "instance_seconds": inst, "vcpu_seconds": vcpu if vcpu is not None else inst}


def test_judge_picks_the_best_affordable_variant_and_says_which_goals_it_meets() -> None:
    medians = {
        "original": fig(40, 200),
        "hpa": fig(30, 260),
        "vmscale": fig(12, 180),
        "vmscale-vertical": fig(8, 120, 190),
        "vmscale-warm": fig(2, 260),  # fewest seconds, but it costs more than the original
    }
    verdict = judge(medians, 2.0, {"vmscale", "vmscale-vertical", "vmscale-warm"})
    assert verdict["best"] == "vmscale-vertical"
    assert verdict["over_slo_2s_best_over_original"] == pytest.approx(0.2)
    assert verdict["over_slo_2s_best_over_hpa"] == pytest.approx(0.267, abs=1e-3)
    assert verdict["goals"] == {
        "<= 1/4 of the original's seconds over the SLO": True,
        "<= 1/2 of the HPA defaults'": True,
        "<= 1.0x the original's instance- or vCPU-seconds": True,
    }


def test_judge_with_nothing_affordable_names_the_best_anyway_and_fails_the_cost_goal() -> None:
    medians = {"original": fig(0, 100), "hpa": fig(0, 100), "vmscale": fig(0, 150)}
    verdict = judge(medians, 2.0, {"vmscale"})
    assert verdict["best"] == "vmscale" and verdict["over_slo_2s_best_over_original"] == 0.0
    assert verdict["goals"]["<= 1.0x the original's instance- or vCPU-seconds"] is False
    assert (
        judge({"original": fig(5, 1), "vmscale": fig(1, 1)}, 2.0, {"vmscale"})["over_slo_2s_best_over_hpa"]
        is None
    )
    assert math.isinf(
        judge({"original": fig(0, 1), "vmscale": fig(1, 1)}, 2.0, {"vmscale"})[
            "over_slo_2s_best_over_original"
        ]
    )


def test_a_run_starts_only_once_the_warm_pool_is_parked(tmp_path: Any) -> None:
    # A warm-pool contender whose first scale-up came before its pool was filled would boot cold and
    # be judged for a path it does not stand for.
    from types import SimpleNamespace

    from vmscale.bench.runner import settled

    warm = contenders("process", 2)["vmscale-warm"]
    cfg = group_config(tmp_path / "warm", provider="process", **warm.config_args())  # type: ignore[arg-type]

    def svc(ready: int, warm: int) -> Any:
        group = SimpleNamespace(ready=ready, warm=warm)
        return SimpleNamespace(controller=SimpleNamespace(group=lambda: group))

    assert cfg.warm_pool.size == 1
    assert not settled(svc(ready=1, warm=0), cfg), "serving, but the pool is still empty"
    assert not settled(svc(ready=0, warm=1), cfg)
    assert settled(svc(ready=1, warm=1), cfg)
