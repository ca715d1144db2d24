"""The reconcile loop: observe -> decide -> act, once per interval, level-triggered.

Every tick compares what should exist with what does, so a missed event, a crashed instance
or a controller restart heals itself on the next tick. A tick never waits for a slow provider
call: launches and terminations run in the executor and are collected on a later tick.

    tick:
      1. collect finished provider calls          (pending -> booting, terminating -> gone, failures)
      2. observe: provider.list                   (vanished instances fail; unknown ones are orphans)
      3. probe health                             (booting -> ready, ready -> failed after N misses)
      4. sample CPU (provider) and traffic (LB)
      5. decide with the policy set               (unless paused)
      6. act: launch / resume from warm pool / drain, refill the pool
      7. progress drains                          (draining -> terminating when in-flight reaches 0)
      8. sync the balancer, publish the tick, update metrics

This module holds the loop, the decide step, the bookkeeping every step shares (state changes,
error reports) and the control-plane side the API calls. The steps live beside it, each a set of
functions over the controller: ``act`` (1, 6: provider calls, warm pool, scale-in),
``observe`` (2-4: existence, health, samples) and ``balancer`` (7, 8: drains, balancer, publishing).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import Executor
from typing import Any

from vmscale.clock import Clock, SystemClock
from vmscale.config.schema import VmscaleConfig
from vmscale.control import GroupStatus, InstanceInfo
from vmscale.controller import act, balancer, observe
from vmscale.controller.executor import worker_pool
from vmscale.controller.managed import Managed
from vmscale.events import EventBus
from vmscale.health import HealthChecker, HttpHealthChecker
from vmscale.lb.base import LoadBalancer
from vmscale.metrics import ControllerMetrics
from vmscale.model import Decision, Direction, InstanceState, Metric, Sample, Snapshot, direction_of
from vmscale.policy import PolicySet, build_policy_set, decision_record
from vmscale.policy import observe as observe_snapshot
from vmscale.providers.base import Provider
from vmscale.store import Store

S = InstanceState
log = logging.getLogger("vmscale.controller")

FAST_POLL_S = 0.1  # how often booting and draining instances are re-checked between full ticks


class Controller:
    def __init__(
        self,
        cfg: VmscaleConfig,
        provider: Provider,
        store: Store,
        *,
        lb: LoadBalancer | None = None,
        health: HealthChecker | None = None,
        clock: Clock | None = None,
        events: EventBus | None = None,
        metrics: ControllerMetrics | None = None,
        executor: Executor | None = None,
        policy_set: PolicySet | None = None,
    ) -> None:
        self.cfg = cfg
        self.group_name = cfg.group.name
        self.provider = provider
        self.store = store
        self.lb = lb
        self.clock = clock or SystemClock()
        self.health = health or HttpHealthChecker(cfg.health.path, cfg.health.timeout_s)
        self.events = events or EventBus(clock=self.clock.now)
        self.metrics = metrics or ControllerMetrics(self.group_name)
        self.executor = executor or worker_pool()
        self.policies = policy_set or build_policy_set(
            cfg.policies, min_count=cfg.group.min, max_count=cfg.group.max
        )
        self.table: dict[str, Managed] = {}
        self.desired = cfg.group.initial_count
        self.paused = False
        self.policy_state = self.policies.initial_state()
        self._saved_policy_state: dict[str, Any] = {}
        self.last_decision: dict[str, Any] | None = None
        self.last_scale_up_at: float | None = None
        self.launch_failures = 0
        self.next_launch_at = 0.0
        self.provider_failures = 0
        self.next_observe_at = 0.0
        self.sample_failures = 0
        self.next_sample_at = 0.0
        self._endpoints: list[dict[str, str]] = []
        self._group_latency: float | None = None
        self._group_rps: float | None = None
        self._lock = threading.RLock()  # guards table/desired/paused between the loop and API calls
        self._history: list[dict[str, Any]] = []
        self.recovered = False
        self._wake = threading.Event()

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        """Reconcile until ``stop`` is set. Errors in a tick are reported, never fatal.

        A *full* tick (observe, sample, decide, act) runs every ``interval_s``, so policies see one
        sample per interval whatever else happens. Between full ticks the loop wakes for *fast*
        ticks (collect, probe, act; no sampling, no decision) when a provider call finishes or a
        person changes the desired count, and polls every ``FAST_POLL_S`` while an instance boots
        or drains: a resumed warm instance serves within milliseconds of the decision instead of
        waiting for the next interval.
        """
        if not self.recovered:
            self.recover()
        interval = self.cfg.group.interval_s
        next_full = self.clock.monotonic()
        while not stop.is_set():
            self._wake.clear()
            full = self.clock.monotonic() >= next_full
            try:
                self.tick(full=full)
            except Exception as exc:  # keep the loop alive; the error is visible in the log and events
                log.exception("tick failed")
                self._error("tick", f"{type(exc).__name__}: {exc}")
            now = self.clock.monotonic()
            if full:
                next_full = max(next_full + interval, now)  # a slow tick does not cause a burst
            until = next_full
            if self._transitional():
                until = min(until, now + min(FAST_POLL_S, interval))
            while not stop.is_set() and not self._wake.is_set():
                left = until - self.clock.monotonic()
                if left <= 0:
                    break
                self._wake.wait(min(left, 0.1))

    def wake(self) -> None:
        """Ask the loop for a fast tick now (thread-safe)."""
        self._wake.set()

    def _transitional(self) -> bool:
        with self._lock:
            return any(
                m.state in (S.BOOTING, S.DRAINING) and not m.busy and not (m.warm and m.state is S.WARM)
                for m in self.table.values()
            )

    def recover(self) -> None:
        from vmscale.controller.recovery import recover

        with self._lock:
            recover(self)
            self.recovered = True

    def tick(self, full: bool = True) -> None:
        now = self.clock.now()
        with self._lock:
            act.collect_ops(self, now)
            if full:
                self.metrics.ticks.labels(self.group_name).inc()
                observe.observe(self, now)
            observe.probe(self, now, full)
            if full:
                observe.sample(self, now)
                if not self.paused:
                    self._decide(now)
            act.apply_desired(self, now)
            balancer.progress_drains(self, now)
            balancer.sync_lb(self)
            balancer.publish(self, now, full)

    def _backoff(self, failures: int) -> float:
        """Exponential back-off: ``backoff_initial_s`` doubled per failure, capped at ``backoff_max_s``."""
        return float(min(self.cfg.launch.backoff_max_s, self.cfg.launch.backoff_initial_s * 2**failures))

    # ------------------------------------------------------------------ 5. decide

    def snapshot(self, now: float) -> Snapshot:
        since = now - self.cfg.group.history_s
        group_samples = (Sample(t=now, latency_p95=self._group_latency, rps=self._group_rps),)
        return Snapshot(
            now=now,
            desired=self.desired,
            min_count=self.cfg.group.min,
            max_count=self.cfg.group.max,
            instances=tuple(
                m.snapshot(since)
                for m in self.table.values()
                if m.in_group or (m.state is S.DRAINING and not m.warm)
            ),
            group_samples=group_samples,
        )

    def _decide(self, now: float) -> None:
        snap = self.snapshot(now)
        obs = observe_snapshot(snap)
        decision, self.policy_state = self.policies.decide_observed(obs, self.policy_state)
        for metric in Metric:
            self.metrics.observe_policy_metric(metric, obs.metric(metric).mean)
        if decision.desired != self.desired:
            record = decision_record(snap, decision, self.policy_state)
            self._apply(decision, "autoscaler", now, record)
        state = self.policy_state.to_dict()
        if state != self._saved_policy_state:
            self._saved_policy_state = state
            self._save_group(now)

    def _apply(self, decision: Decision, actor: str, now: float, record: dict[str, Any]) -> None:
        before = self.desired
        self.desired = decision.desired
        if decision.direction is Direction.UP:
            self.last_scale_up_at = now
        self.metrics.decisions.labels(self.group_name, decision.policy, decision.direction.value).inc()
        data = {**decision.to_dict(), "actor": actor, "applied": True, "previous": before}
        self.last_decision = {**data, "t": now}
        self.store.append_decision(self.group_name, now, actor, {**record, **data})
        self._save_group(now)
        self.events.publish("decision", data)
        log.info(
            "scale %s %d -> %d by %s: %s",
            decision.direction.value,
            before,
            decision.desired,
            actor,
            decision.reason,
        )

    def _save_group(self, now: float) -> None:
        self.store.save_group(self.group_name, self.desired, self.paused, self.policy_state.to_dict(), now)

    # ------------------------------------------------------------------ state changes and reports

    def _set_state(self, m: Managed, dst: InstanceState, now: float, reason: str) -> None:
        src = m.transition(dst, now)
        if src is dst:
            return
        if dst is S.GONE:  # an instance that left must not report its last CPU forever
            self.metrics.forget_instance(m.name)
        self.store.put_instance(m.row(self.group_name), now, src=src.value, reason=reason)
        self._emit_instance(m, src.value, reason)

    def _emit_instance(self, m: Managed, src: str, reason: str) -> None:
        log.info("%s %s -> %s: %s", m.name, src, m.state.value, reason)
        self.events.publish(
            "instance",
            {"name": m.name, "from": src, "to": m.state.value, "reason": reason, "endpoint": m.endpoint},
        )

    def _fail(self, m: Managed, now: float, reason: str) -> None:
        m.error = reason
        balancer.remove_from_lb(self, m)
        self._set_state(m, S.FAILED, now, reason)

    def _provider_error(
        self, op: str, exc: BaseException, name: str | None, retry_in_s: float | None = None
    ) -> None:
        kind = type(exc).__name__
        self.metrics.provider_errors.labels(self.group_name, op, kind).inc()
        msg = f"{op} failed ({kind}): {exc}"
        if retry_in_s is not None:
            msg += f"; retrying in {retry_in_s:g}s"
        self._error(f"provider.{op}", msg, name)

    def _error(self, where: str, message: str, instance: str | None = None) -> None:
        log.warning("%s: %s", where, message)
        self.events.publish("error", {"where": where, "message": message, "instance": instance})

    # ------------------------------------------------------------------ ControlPlane (API side)

    def group(self) -> GroupStatus:
        with self._lock:
            counts: dict[str, int] = {}
            for m in self.table.values():
                counts[m.state.value] = counts.get(m.state.value, 0) + 1
            return GroupStatus(
                name=self.group_name,
                desired=self.desired,
                actual=sum(1 for m in self.table.values() if m.in_group),
                ready=counts.get(S.READY.value, 0),
                min=self.cfg.group.min,
                max=self.cfg.group.max,
                paused=self.paused,
                provider=self.provider.kind,
                lb=self.lb.kind if self.lb is not None else "none",
                frontend_url=self.lb.frontend_url() if self.lb is not None else None,
                policies=list(self.policies.names),
                states=counts,
                last_decision=self.last_decision,
                warm=counts.get(S.WARM.value, 0),
            )

    def instances(self) -> list[InstanceInfo]:
        with self._lock:
            return [
                InstanceInfo(
                    name=m.name,
                    state=m.state.value,
                    endpoint=m.endpoint,
                    vcpus=m.vcpus,
                    cpu=m.latest_cpu(),
                    launched_at=m.launched_at,
                    ready_at=m.ready_at,
                    details=dict(m.details),
                )
                for m in sorted(self.table.values(), key=lambda m: m.index)
            ]

    def endpoints(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._endpoints)

    def set_desired(self, count: int, actor: str) -> GroupStatus:
        lo, hi = self.cfg.group.min, self.cfg.group.max
        if not lo <= count <= hi:
            raise ValueError(f"desired must be within [min, max] = [{lo}, {hi}], got {count}")
        with self._lock:
            now = self.clock.now()
            d = Decision(
                count,
                direction_of(self.desired, count),
                f"manual: set to {count} by {actor}",
                "manual",
                self.desired,
            )
            self._apply(d, actor, now, {"now": now, "manual": True})
        self.wake()
        return self.group()

    def set_paused(self, paused: bool, actor: str) -> GroupStatus:
        with self._lock:
            now = self.clock.now()
            self.paused = paused
            self._save_group(now)
            verb = "paused" if paused else "resumed"
            self.store.append_decision(self.group_name, now, actor, {"action": verb, "actor": actor})
            self.events.publish(
                "decision",
                {
                    "action": verb,
                    "actor": actor,
                    "applied": True,
                    "reason": f"automatic scaling {verb} by {actor}",
                    "direction": "none",
                    "desired": self.desired,
                    "policy": "manual",
                    "current": self.desired,
                    "figures": {},
                },
            )
        return self.group()

    def history(self, since: float | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [h for h in self._history if since is None or h["t"] > since]

    def decisions(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.store.decisions(self.group_name, limit)

    # ------------------------------------------------------------------ shutdown

    def shutdown(self, *, terminate: bool = True, timeout_s: float = 60.0) -> None:
        """Stop acting; with ``terminate`` remove every instance this group owns, and wait for it."""
        with self._lock:
            now = self.clock.now()
            self._save_group(now)
            if terminate:
                for m in list(self.table.values()):
                    if m.op is not None:
                        with contextlib.suppress(Exception):
                            m.op.result(timeout=timeout_s)
                        m.op = None
                    act.terminate(self, m, now, "shutdown")
                for m in list(self.table.values()):
                    if m.op is not None:
                        try:
                            m.op.result(timeout=timeout_s)
                            self._set_state(m, S.GONE, self.clock.now(), "terminated at shutdown")
                            del self.table[m.name]
                        except Exception as exc:
                            self._provider_error("terminate", exc, m.name)
                # A clean stop that removed everything starts afresh next time, at the configured count.
                self.desired = self.cfg.group.initial_count
                self._save_group(self.clock.now())
        self.health.close()
