"""Which policy sets a comparison runs, and the model parameters a config implies."""

from __future__ import annotations

from collections.abc import Sequence

from vmscale.config.policy import PolicyConfig, SimulateConfig, TargetPolicyConfig, ThresholdPolicyConfig
from vmscale.config.schema import GroupSettings
from vmscale.policy import DEFAULT_POLICY, PolicySet, build_policy_set
from vmscale.simulate.engine import MONDAY_1970, SimParams

ORIGINAL_RULE = ThresholdPolicyConfig(name="original", upper=75.0, samples_up=3, step=1, lower=None)
"""The student system's rule: CPU above 75% for 3 consecutive samples adds one instance, never removes."""


def params_from_config(
    cfg: GroupSettings,
    sim: SimulateConfig | None = None,
    *,
    boot_s: float | None = None,
    start_epoch: float = MONDAY_1970,
) -> SimParams:
    sim = sim or SimulateConfig()
    return SimParams(
        boot_s=sim.boot_s if boot_s is None else boot_s,
        step_s=sim.step_s or cfg.group.interval_s,
        capacity_rps=sim.capacity_rps,
        base_latency_s=sim.base_latency_s,
        initial=cfg.group.initial_count,
        start_epoch=start_epoch,
    )


def comparison_sets(
    cfg: GroupSettings, only: Sequence[str] = (), *, compare: bool = False
) -> dict[str, PolicySet]:
    """Named policy sets to simulate, all bound to the config's ``[min, max]``.

    Without ``compare``: the config's set (``config``), or with ``only`` each named policy alone.
    With ``compare``: the original rule, the default ``target``, each configured policy alone, and
    the whole configured set, so the table shows what each rule contributes.
    """
    lo, hi = cfg.group.min, cfg.group.max
    by_name: dict[str, PolicyConfig] = {p.name: p for p in cfg.policies}
    missing = [n for n in only if n not in by_name and n not in ("original", "target")]
    if missing:
        known = ", ".join(["original", "target", *by_name]) or "none"
        raise ValueError(f"unknown policy {', '.join(missing)} (known: {known})")
    builtin: dict[str, PolicyConfig] = {"original": ORIGINAL_RULE, "target": DEFAULT_POLICY}

    def single(name: str) -> PolicySet:
        return build_policy_set([by_name.get(name) or builtin[name]], min_count=lo, max_count=hi)

    if only:
        return {n: single(n) for n in only}
    if not compare:
        return {"config": build_policy_set(cfg.policies, min_count=lo, max_count=hi)}
    sets = {"original": single("original")}
    if "target" not in by_name:
        sets["target"] = build_policy_set([TargetPolicyConfig()], min_count=lo, max_count=hi)
    for name in by_name:
        sets[name] = single(name)
    if len(cfg.policies) > 1:
        sets["config"] = build_policy_set(cfg.policies, min_count=lo, max_count=hi)
    return sets
