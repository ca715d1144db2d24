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
from vmscale.controller.executor import worker_pool
from vmscale.controller.managed import Managed
from vmscale.errors import InstanceNotFoundError, LoadBalancerError, PermanentProviderError, ProviderError
from vmscale.events import EventBus
from vmscale.health import HealthChecker, HealthResult, HttpHealthChecker
from vmscale.lb.base import LoadBalancer, Server, ServerStats
from vmscale.metrics import ControllerMetrics
from vmscale.model import Decision, Direction, InstanceState, Sample, Snapshot, direction_of
from vmscale.policy import PolicySet, build_policy_set, decision_record
from vmscale.providers.base import InstanceSpec, Provider, ProviderStatus
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
            self._collect_ops(now)
            if full:
                self.metrics.ticks.labels(self.group_name).inc()
                self._observe(now)
            self._probe(now, full)
            if full:
                self._sample(now)
                if not self.paused:
                    self._decide(now)
            self._act(now)
            self._progress_drains(now)
            self._sync_lb()
            self._publish(now, full)

    # ------------------------------------------------------------------ 1. finished provider calls

    def _collect_ops(self, now: float) -> None:
        for m in list(self.table.values()):
            if m.op is None or not m.op.done():
                continue
            fut, kind = m.op, m.op_kind
            m.op, m.op_kind = None, ""
            exc = fut.exception()
            if kind == "launch":
                self._launch_done(m, fut.result() if exc is None else None, exc, now)
            elif kind == "terminate":
                if exc is None or isinstance(exc, InstanceNotFoundError):
                    self.metrics.terminate_seconds.labels(self.group_name).observe(now - m.op_started)
                    self._set_state(m, S.GONE, now, "terminated")
                    del self.table[m.name]
                else:
                    backoff = self._backoff(2)
                    m.retry_at = now + backoff
                    self._provider_error("terminate", exc, m.name)
            elif kind == "pause":
                if exc is None:
                    self._set_state(m, S.WARM, now, f"parked in the warm pool ({self.cfg.warm_pool.kind})")
                else:
                    self._launch_failed(m, exc, now, "pause", "could not park for the warm pool")
            elif kind == "resume":
                if exc is None:
                    m.health_failures = 0
                    self._set_state(m, S.BOOTING, now, "resumed from the warm pool")
                else:
                    self._launch_failed(m, exc, now, "resume", "could not resume from the warm pool")

    def _launch_done(self, m: Managed, inst: Any, exc: BaseException | None, now: float) -> None:
        if exc is not None:
            self._launch_failed(m, exc, now, "launch", "launch failed")
            return
        self.metrics.launch_seconds.labels(self.group_name).observe(now - m.op_started)
        m.endpoint = inst.endpoint
        m.details = dict(inst.details)
        m.vcpus = inst.vcpus
        self._set_state(m, S.BOOTING, now, f"started by the {self.provider.kind} provider")

    def _launch_failed(self, m: Managed, exc: BaseException, now: float, op: str, what: str) -> None:
        """Anything that was to bring capacity (launch, park, resume) failed: back off new launches
        exponentially (a permanent error waits the longest), report, and replace the instance."""
        self.launch_failures += 1
        delay = self._backoff(self.launch_failures - 1)
        if isinstance(exc, PermanentProviderError):
            delay = self.cfg.launch.backoff_max_s
        self.next_launch_at = now + delay
        self._provider_error(op, exc, m.name, retry_in_s=delay)
        self._fail(m, now, f"{what}: {exc}")

    def _backoff(self, failures: int) -> float:
        """Exponential back-off: ``backoff_initial_s`` doubled per failure, capped at ``backoff_max_s``."""
        return float(min(self.cfg.launch.backoff_max_s, self.cfg.launch.backoff_initial_s * 2**failures))

    # ------------------------------------------------------------------ 2. observe existence

    def _observe(self, now: float) -> None:
        if now < self.next_observe_at:
            return
        try:
            listed = {p.name: p for p in self.provider.list(self.group_name)}
        except ProviderError as exc:
            self.provider_failures += 1
            delay = self._backoff(self.provider_failures)
            self.next_observe_at = now + delay
            self._provider_error("list", exc, None, retry_in_s=delay)
            return
        self.provider_failures = 0
        for m in list(self.table.values()):
            if m.busy:
                continue
            p = listed.get(m.name)
            if m.state in (S.BOOTING, S.READY, S.DRAINING, S.WARM):
                if p is None or p.status is ProviderStatus.STOPPED:
                    self._fail(m, now, "vanished: the provider no longer reports it running")
            elif m.state is S.TERMINATING and p is None:
                self._set_state(m, S.GONE, now, "confirmed gone")
                del self.table[m.name]
        for name, p in listed.items():
            if name not in self.table:
                # Not ours any more (or never recorded): remove it rather than let it cost money.
                m = Managed(
                    name=name, index=_index_of(name), state=S.FAILED, endpoint=p.endpoint, state_since=now
                )
                self.table[name] = m
                self._emit_instance(
                    m, "(unknown)", "orphan: exists at the provider but not in the state database"
                )
                self._terminate(m, now, "removing orphan")

    # ------------------------------------------------------------------ 3. health

    def _probe(self, now: float, full: bool = True) -> None:
        # Ready instances are probed once per full tick only, so `unhealthy_threshold` keeps
        # meaning "consecutive intervals", however often fast ticks run.
        states = (S.BOOTING, S.READY, S.DRAINING) if full else (S.BOOTING, S.DRAINING)
        targets = [m for m in self.table.values() if not m.busy and m.endpoint and m.state in states]
        if not targets:
            return
        results = (
            dict(
                zip(
                    [m.name for m in targets],
                    self.executor.map(
                        lambda m: self._check(m.endpoint), targets, timeout=self.cfg.health.timeout_s * 3
                    ),
                    strict=True,
                )
            )
            if len(targets) > 1
            else {targets[0].name: self._check(targets[0].endpoint)}
        )
        for m in targets:
            r = results[m.name]
            m.inflight = r.inflight
            if m.state is S.BOOTING:
                if r.ok:
                    if m.warm:
                        self._start_op(
                            m, "pause", self.provider.pause, m.name, self.cfg.warm_pool.kind, now=now
                        )
                    else:
                        self._become_ready(m, now)
                elif m.launched_at is not None and now - m.launched_at > self.cfg.health.boot_timeout_s:
                    hint = f" (console log: {m.details['console_log']})" if "console_log" in m.details else ""
                    self._fail(
                        m, now, f"not ready within boot_timeout_s={self.cfg.health.boot_timeout_s:g}{hint}"
                    )
            elif m.state is S.READY:
                if r.ok:
                    m.health_failures = 0
                else:
                    m.health_failures += 1
                    self.metrics.health_failures.labels(self.group_name).inc()
                    if m.health_failures >= self.cfg.health.unhealthy_threshold:
                        self.metrics.replacements.labels(self.group_name).inc()
                        self._fail(
                            m, now, f"health check failed {m.health_failures} times in a row: {r.error}"
                        )

    def _check(self, endpoint: str) -> HealthResult:
        try:
            return self.health.check(endpoint)
        except Exception as exc:  # a checker bug must not kill the tick
            return HealthResult(False, error=str(exc))

    def _become_ready(self, m: Managed, now: float) -> None:
        m.ready_at = now
        m.health_failures = 0
        self._set_state(m, S.READY, now, "health check passed")
        if m.wanted_at is not None:
            self.metrics.time_to_ready.labels(self.group_name).observe(now - m.wanted_at)
        if self.lb is not None and (hp := m.host_port) is not None:
            try:
                self.lb.add(Server(m.name, *hp))
            except LoadBalancerError as exc:
                self._error("lb.add", str(exc), m.name)
        self.launch_failures = 0

    # ------------------------------------------------------------------ 4. samples

    def _sample(self, now: float) -> None:
        names = [m.name for m in self.table.values() if m.state in (S.BOOTING, S.READY, S.DRAINING)]
        cpu: dict[str, float] = {}
        if names and now >= self.next_sample_at:
            try:
                cpu = self.provider.sample(names)
                self.sample_failures = 0
            except ProviderError as exc:
                # Back off like listing does: a provider that is down (libvirtd stopped) must not
                # get a failing call, and the log an error, every interval for as long as it lasts.
                self.sample_failures += 1
                delay = self._backoff(self.sample_failures)
                self.next_sample_at = now + delay
                self._provider_error("sample", exc, None, retry_in_s=delay)
        stats = self._lb_stats()
        lat = [v for s in stats.values() if (v := s.latency_p95_s or s.response_time_s) is not None]
        self._group_latency = max(lat) if lat else None
        self._group_rps = sum(s.rate_rps for s in stats.values()) if stats else None
        for name in names:
            m = self.table[name]
            st = stats.get(name)
            m.samples.append(
                Sample(
                    t=now,
                    cpu=cpu.get(name),
                    rps=st.rate_rps if st else None,
                    latency_p95=(st.latency_p95_s or st.response_time_s) if st else None,
                    inflight=m.inflight / max(1, m.vcpus) if m.inflight is not None else None,
                )
            )
            if name in cpu:
                self.metrics.instance_cpu.labels(self.group_name, name).set(cpu[name])

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
        decision, self.policy_state = self.policies.decide(snap, self.policy_state)
        for name, value in decision.figures.items():
            if name.startswith("observed_"):
                self.metrics.metric_value.labels(self.group_name, name.removeprefix("observed_")).set(value)
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

    # ------------------------------------------------------------------ 6. act

    def _act(self, now: float) -> None:
        live = [m for m in self.table.values() if m.in_group]
        need = self.desired - len(live)
        if need > 0:
            for m in self._warm_ready()[:need]:
                m.warm = False
                m.wanted_at = self.last_scale_up_at or now
                self._start_op(m, "resume", self.provider.resume, m.name, now=now)
                self.store.put_instance(m.row(self.group_name), now)
                need -= 1
            for _ in range(need):
                if not self._launch(now, warm=False):
                    break
        elif need < 0:
            for victim in self._scale_in_victims(-need):
                if victim.state is S.READY:
                    self._start_drain(victim, now)
                else:
                    self._terminate(victim, now, "scale-in before it was ready")
        for m in [m for m in self.table.values() if m.state is S.FAILED and not m.busy and now >= m.retry_at]:
            self._terminate(m, now, "cleaning up a failed instance")
        for m in [
            m for m in self.table.values() if m.state is S.TERMINATING and not m.busy and now >= m.retry_at
        ]:
            self._start_op(m, "terminate", self._terminate_call, m.name, now=now)
        # Refill the warm pool only when the group itself is where it should be, and only once the
        # capacity it is waiting for serves: on a small host a refill boot competes for the CPU
        # with the instance just resumed (a saved-pool restore took 1.3 s instead of 0.45 s with
        # a refill booting beside it).
        warm = [m for m in self.table.values() if m.warm and m.state in (S.PENDING, S.BOOTING, S.WARM)]
        arriving = any(m.in_group and m.state is not S.READY for m in self.table.values())
        if need <= 0 and not arriving:
            for _ in range(self.cfg.warm_pool.size - len(warm)):
                if not self._launch(now, warm=True):
                    break

    def _warm_ready(self) -> list[Managed]:
        return sorted(
            (m for m in self.table.values() if m.warm and m.state is S.WARM and not m.busy),
            key=lambda m: m.index,
        )

    def _scale_in_victims(self, count: int) -> list[Managed]:
        """Not-yet-serving instances first (newest first), then the least busy ready ones.

        An instance whose launch or resume call is still running cannot be stopped this tick, but
        it is still the one to stop: it is counted as a victim to come, so that a ready, serving
        instance is not drained in its place.
        """
        coming = [m for m in self.table.values() if m.in_group and m.state is not S.READY]
        unready = sorted((m for m in coming if not m.busy), key=lambda m: -m.index)
        count -= len(coming) - len(unready)
        ready = sorted(
            (m for m in self.table.values() if m.state is S.READY and not m.busy),
            key=lambda m: (m.latest_cpu() if m.latest_cpu() is not None else 0.0, -m.index),
        )
        return (unready + ready)[: max(0, count)]

    def _launch(self, now: float, *, warm: bool) -> bool:
        if now < self.next_launch_at:
            return False
        index = self._free_index()
        name = f"{self.group_name}-{index}"
        m = Managed(
            name=name,
            index=index,
            state=S.PENDING,
            vcpus=self.cfg.template.vcpus,
            warm=warm,
            launched_at=now,
            state_since=now,
            wanted_at=None if warm else (self.last_scale_up_at or now),
        )
        self.table[name] = m
        # Recorded before the provider is asked, so a crash mid-launch is found and finished or undone.
        self.store.put_instance(m.row(self.group_name), now, src="(none)", reason="launch requested")
        self._emit_instance(m, "(none)", "warm-pool launch requested" if warm else "launch requested")
        spec = InstanceSpec(
            group=self.group_name,
            name=name,
            index=index,
            vcpus=self.cfg.template.vcpus,
            memory_mb=self.cfg.template.memory_mb,
            workload_args={"fib_max_n": str(self.cfg.template.fib_max_n)},
        )
        self._start_op(m, "launch", self.provider.launch, spec, now=now)
        return True

    def _free_index(self) -> int:
        used = {m.index for m in self.table.values()}
        i = 1
        while i in used:
            i += 1
        return i

    def _start_drain(self, m: Managed, now: float) -> None:
        self._set_state(
            m, S.DRAINING, now, f"scale-in: least busy ready instance (cpu {m.latest_cpu() or 0:.0f}%)"
        )
        if self.lb is not None:
            try:
                self.lb.drain(m.name)
            except LoadBalancerError as exc:
                self._error("lb.drain", str(exc), m.name)
        # The grace counts from now, when the balancer was told, not from the tick's start: health
        # probes and sampling earlier in the tick may already have used it up.
        m.drain_started = self.clock.now()

    def _terminate(self, m: Managed, now: float, reason: str) -> None:
        if m.busy:
            return
        self._remove_from_lb(m)
        if m.state is not S.TERMINATING:
            self._set_state(m, S.TERMINATING, now, reason)
        self._start_op(m, "terminate", self._terminate_call, m.name, now=now)

    def _terminate_call(self, name: str) -> None:
        self.provider.terminate(name, graceful_timeout_s=self.cfg.launch.terminate_timeout_s)

    def _start_op(self, m: Managed, kind: str, fn: Any, *args: Any, now: float) -> None:
        m.op_kind, m.op_started = kind, now
        m.op = self.executor.submit(fn, *args)
        m.op.add_done_callback(lambda _: self._wake.set())

    def _lb_stats(self) -> dict[str, ServerStats]:
        """The balancer's per-server figures (fresh each call: drains need current sessions)."""
        if self.lb is None:
            return {}
        try:
            return self.lb.stats()
        except LoadBalancerError as exc:
            self._error("lb.stats", str(exc))
            return {}

    # ------------------------------------------------------------------ 7. drains

    def _progress_drains(self, now: float) -> None:
        stats = self._lb_stats()
        for m in [m for m in self.table.values() if m.state is S.DRAINING and not m.busy]:
            if m.drain_started is None:
                # Adopted mid-drain after a restart: the wait (and its timeout) starts again now.
                # Falling back to ``now`` on every tick instead would keep it in the grace forever.
                m.drain_started = now
            started = m.drain_started
            if now - started < self.cfg.drain.grace_s:
                continue
            st = stats.get(m.name)
            inflight = st.sessions_current if st is not None else m.inflight
            if inflight == 0:
                self._terminate(m, now, "drained: no requests in flight")
            elif now - started >= self.cfg.drain.timeout_s:
                self._terminate(
                    m, now, f"drain timeout after {self.cfg.drain.timeout_s:g}s ({inflight} in flight)"
                )

    # ------------------------------------------------------------------ 8. balancer, tick, metrics

    def _sync_lb(self) -> None:
        if self.lb is None:
            return
        servers = {}
        for m in self.table.values():
            if m.state in (S.READY, S.DRAINING) and (hp := m.host_port) is not None:
                servers[m.name] = Server(m.name, *hp)
        draining = frozenset(m.name for m in self.table.values() if m.state is S.DRAINING)
        try:
            self.lb.sync(servers, draining)
        except LoadBalancerError as exc:
            self._error("lb.sync", str(exc))

    def _remove_from_lb(self, m: Managed) -> None:
        if self.lb is None:
            return
        try:
            self.lb.remove(m.name)
        except LoadBalancerError as exc:
            self._error("lb.remove", str(exc), m.name)

    def _publish(self, now: float, full: bool) -> None:
        if full:
            self._publish_tick(now)
        self._publish_endpoints()

    def _publish_tick(self, now: float) -> None:
        counts = {s.value: 0 for s in S if s is not S.GONE}
        for m in self.table.values():
            counts[m.state.value] += 1
        for state, n in counts.items():
            self.metrics.instances.labels(self.group_name, state).set(n)
        actual = sum(1 for m in self.table.values() if m.in_group)
        ready = counts[S.READY.value]
        self.metrics.desired.labels(self.group_name).set(self.desired)
        self.metrics.actual.labels(self.group_name).set(actual)
        data = {
            "desired": self.desired,
            "actual": actual,
            "ready": ready,
            "warm": counts[S.WARM.value],
            "instances": {
                m.name: {"state": m.state.value, "cpu": m.latest_cpu()} for m in self.table.values()
            },
            "latency_p95_s": self._group_latency,
            "rps": self._group_rps,
        }
        self.events.publish("tick", data)
        self._history.append({"t": now, **data})
        cutoff = now - self.cfg.group.history_s
        while self._history and self._history[0]["t"] < cutoff:
            self._history.pop(0)

    def _publish_endpoints(self) -> None:
        eps = [
            {"name": m.name, "url": m.endpoint}
            for m in sorted(self.table.values(), key=lambda m: m.index)
            if m.state is S.READY
        ]
        if eps != self._endpoints:
            self._endpoints = eps
            self.events.publish("endpoints", {"endpoints": eps})

    # ------------------------------------------------------------------ state changes and reports

    def _set_state(self, m: Managed, dst: InstanceState, now: float, reason: str) -> None:
        src = m.transition(dst, now)
        if src is dst:
            return
        if dst is S.GONE:  # an instance that left must not report its last CPU forever
            with contextlib.suppress(KeyError):
                self.metrics.instance_cpu.remove(self.group_name, m.name)
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
        self._remove_from_lb(m)
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
                    self._terminate(m, now, "shutdown")
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


def _index_of(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 10_000
