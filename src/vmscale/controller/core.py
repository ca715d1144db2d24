"""The controller of one group: its parts wired together, the tick, and what the API may ask of it.

    Fleet        the instance table; the only place a state changes (store, events, metrics listen)
    Operations   provider calls in flight, one per instance, collected as frozen results
    Reconciler   collect, observe, probe, sample, execute the scale plan, drains, balancer sync
    Autoscaler   the desired count, pause, the policies' memory, manual changes
    Telemetry    the immutable view API reads are served from, tick summaries, endpoint changes
    host step    many libvirt hosts: silent hosts, fencing, drains, consolidation (hosts_step.py)

One tick, level-triggered (every tick compares what should exist with what does, so a missed event,
a crashed instance or a controller restart heals itself)::

    collect -> hosts* -> observe* -> probe -> sample* -> decide* -> execute -> drains -> moves*
            -> sync -> publish                                  (* on full ticks only, see loop.py)

Only the loop thread runs ticks. The API thread reads ``Telemetry.view`` (swapped whole each tick)
and the autoscaler's state (swapped whole under a small lock); it never waits for a tick.

One ``Controller`` is one term of leadership (``vmscale.leadership`` makes a fresh one each time its
process becomes the leader, and drops it when it stops leading). Its ``fence`` is that term's: every
action, every provider call, every balancer change and every store write is checked against it
(``fence.py``); a controller built without one has no rivals (tests, simulations).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from vmscale.clock import Clock, SystemClock
from vmscale.config.hosts import ClusterConfig
from vmscale.config.schema import GroupSettings
from vmscale.control import GroupStatus, HostInfo, InstanceInfo
from vmscale.controller import loop
from vmscale.controller.actions import Actions
from vmscale.controller.autoscaler import Autoscaler, build_snapshot, vertical_sizing
from vmscale.controller.backoff import Backoff
from vmscale.controller.executor import worker_pool
from vmscale.controller.fence import Fence, fenced_roles
from vmscale.controller.fleet import Fleet, FleetChange, Instance
from vmscale.controller.hosts_step import build_host_step
from vmscale.controller.membership import Membership
from vmscale.controller.operations import Operations
from vmscale.controller.probe import Prober
from vmscale.controller.reconciler import Reconciler
from vmscale.controller.records import DecisionLog, StoreRecorder
from vmscale.controller.recovery import recover
from vmscale.controller.reporting import ErrorReporter
from vmscale.controller.resizes import lift_growth_caps
from vmscale.controller.telemetry import Telemetry
from vmscale.event_kinds import InstanceResized
from vmscale.events import EventBus
from vmscale.health import HealthChecker, build_health_checker
from vmscale.integrations import Integrations
from vmscale.lb.base import LoadBalancer
from vmscale.lb.none import NullBalancer
from vmscale.metrics import ControllerMetrics
from vmscale.model import InstanceState
from vmscale.policy import PolicySet, build_policy_set
from vmscale.providers.base import InstanceSpec, Provider, ProviderRoles
from vmscale.store import Store

S = InstanceState


class Controller:
    def __init__(
        self,
        cfg: GroupSettings,
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
        integrations: Integrations | None = None,
        cluster: ClusterConfig | None = None,
        fence: Fence | None = None,
    ) -> None:
        """``integrations`` brings the user's lifecycle hooks and external metric sources (see
        ``vmscale.integrations``); without it the group has neither. ``cluster`` is the process's
        ``[cluster]`` (grace period, placement, consolidation) for a provider spread over hosts.
        ``events`` may be shared with other groups: this controller publishes through its group's
        view of it. ``fence`` is the term of leadership this controller acts in (``fence.py``);
        without it, it has no rivals."""
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.events = (events or EventBus(clock=self.clock.now)).for_group(cfg.group.name)
        self.metrics = metrics or ControllerMetrics(cfg.group.name)
        self._wake = threading.Event()
        executor = executor or worker_pool()
        report = ErrorReporter(cfg.group.name, self.events, self.metrics)
        recorder = StoreRecorder(store, cfg.group.name, self.clock)
        fleet = Fleet((recorder.on_transition, self._on_transition))
        ops = Operations(executor, on_done=self._wake.set, fence=fence)
        roles = fenced_roles(ProviderRoles.of(provider), ops.fence)
        membership = Membership(lb or NullBalancer(), report, ops.fence)
        actions = Actions(
            fleet,
            ops,
            roles,
            membership,
            self.clock,
            group=cfg.group.name,
            make_spec=self._spec,
            terminate_timeout_s=cfg.launch.terminate_timeout_s,
            retry=Backoff(cfg.launch.backoff_initial_s, cfg.launch.backoff_max_s),
            hooks=integrations.hooks if integrations is not None else None,
        )
        checker = health or build_health_checker(cfg.health)
        prober = Prober(checker, executor, cfg.health.timeout_s)
        self.reconciler = Reconciler(
            cfg, fleet, ops, actions, membership, roles, prober, report, self.metrics
        )
        policies = policy_set or build_policy_set(
            cfg.policies, min_count=cfg.group.min, max_count=cfg.group.max
        )
        log = DecisionLog(cfg.group.name, recorder, self.events, self.metrics)
        external = integrations.external_metrics if integrations is not None else None
        self.autoscaler = Autoscaler(
            policies,
            cfg.group,
            recorder,
            log,
            self.metrics,
            self.clock,
            external=external,
            vertical=vertical_sizing(cfg, roles.resizer),
        )
        self.host_step = build_host_step(
            cfg,
            cluster or ClusterConfig(),
            roles,
            provider,
            fleet,
            ops,
            actions,
            recorder,
            self.events.publish,
            report,
            self.clock,
        )
        self.telemetry = Telemetry(
            cfg.group.name,
            self.events,
            self.metrics,
            history_s=cfg.group.history_s,
            interval_s=cfg.group.interval_s,
        )
        self.recovered = False

    def _spec(self, name: str, index: int) -> InstanceSpec:
        t = self.cfg.template
        return InstanceSpec(
            group=self.cfg.group.name,
            name=name,
            index=index,
            vcpus=t.vcpus,
            memory_mb=t.memory_mb,
            workload_args={"fib_max_n": str(self.cfg.workload.fib.max_n)},
        )

    @property
    def fleet(self) -> Fleet:
        return self.reconciler.fleet

    def _on_transition(self, inst: Instance, change: FleetChange) -> None:
        """Fleet listener: events for every change; a gone instance's CPU series leaves /metrics."""
        self.events.publish(change)
        if isinstance(change, InstanceResized):
            loop.log.info(
                "%s resize %d -> %d vCPUs %s: %s",
                change.name,
                change.vcpus_from,
                change.vcpus_to,
                change.stage,
                change.reason,
            )
            return
        loop.log.info("%s %s -> %s: %s", change.name, change.src, change.dst, change.reason)
        if change.dst == S.GONE.value:
            self.metrics.forget_instance(change.name)

    # ------------------------------------------------------------------ the loop

    def run(
        self,
        stop: threading.Event,
        *,
        fatal: tuple[type[BaseException], ...] = (),
        on_tick: Callable[[], None] = lambda: None,
    ) -> None:
        """Reconcile until ``stop`` is set (see ``loop.run_loop`` for the schedule). An exception of a
        ``fatal`` kind ends the loop and reaches the caller; ``on_tick`` follows each tick that passed."""
        if not self.recovered:
            self.recover()
        loop.run_loop(
            self.tick,
            self.reconciler.transitional,
            self._tick_failed,
            self.clock,
            self.cfg.group.interval_s,
            stop,
            self._wake,
            fatal=fatal,
            after_tick=on_tick,
        )

    def wake(self) -> None:
        """Ask the loop for a fast tick now (thread-safe)."""
        self._wake.set()

    def recover(self) -> None:
        rec = self.reconciler
        self.host_step.recover()  # the operators' host wishes first: nothing is placed on a cordoned host
        recover(
            self.cfg.group.name,
            self.autoscaler.recorder,
            rec.roles.lifecycle,
            rec.fleet,
            rec.actions,
            self.autoscaler,
            rec.report,
            self.clock.monotonic(),
        )
        # The golden snapshot (launch = "clone"), on a worker: the group serves on meanwhile.
        self.telemetry.golden.start(rec.actions.prepare, self.clock.now())
        self.recovered = True

    def tick(self, full: bool = True) -> None:
        now, mono = self.clock.now(), self.clock.monotonic()
        rec = self.reconciler
        results = rec.collect(now, mono)
        self.telemetry.golden.collected(results, now, mono)
        self.host_step.collected(results, mono)
        decision = None
        if full:
            self.metrics.ticks.labels(self.cfg.group.name).inc()
            self.host_step.refresh(mono)
            listed = rec.observe(mono)
            if listed is not None:
                self.host_step.observe(listed, mono)
            self.telemetry.golden.recheck(rec.actions.prepare, mono)
        rec.probe(now, mono, full=full)
        traffic = self.telemetry.view.traffic
        if full:
            external = self.autoscaler.external_metrics([i.name for i in self.fleet if i.state is S.READY])
            traffic = rec.sample(now, mono, external)
            state = self.autoscaler.state
            if not state.paused:
                lift_growth_caps(self.fleet, mono)
                snap = build_snapshot(self.fleet, state.desired, self.cfg.group, traffic, now, external)
                decision = self.autoscaler.decide(snap)
        state = self.autoscaler.state
        rec.execute(state.desired, mono, state.last_scale_up, state.shape)
        rec.progress_drains(mono)
        self.host_step.act(state.desired, decision, mono, full=full)
        rec.sync_balancer()
        self.telemetry.publish(self.fleet, state.desired, traffic, now, full=full)

    def _tick_failed(self, exc: BaseException) -> None:
        self.reconciler.report.error("tick", f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ ControlPlane (API side)

    def group(self) -> GroupStatus:
        view, state = self.telemetry.view, self.autoscaler.state
        lb = self.reconciler.membership.lb
        return GroupStatus(
            name=self.cfg.group.name,
            desired=state.desired,
            actual=view.counts.actual,
            ready=view.counts.ready,
            min=self.cfg.group.min,
            max=self.cfg.group.max,
            paused=state.paused,
            provider=self.reconciler.roles.lifecycle.kind,
            lb=lb.kind,
            frontend_url=lb.frontend_url(),
            policies=list(self.autoscaler.policies.names),
            states={s: n for s, n in view.counts.by_state.items() if n},
            last_decision=state.last_decision,
            warm=view.counts.warm,
            golden=self.telemetry.golden.view(),
        )

    def instances(self) -> list[InstanceInfo]:
        return list(self.telemetry.view.instances)

    def endpoints(self) -> list[dict[str, str]]:
        return [{"name": e.name, "url": e.url} for e in self.telemetry.view.endpoints]

    def set_desired(self, count: int, actor: str) -> GroupStatus:
        self.reconciler.ops.check("set the desired count")
        self.autoscaler.set_desired(count, actor)
        self.wake()
        return self.group()

    def set_paused(self, paused: bool, actor: str) -> GroupStatus:
        self.reconciler.ops.check("pause" if paused else "resume")
        self.autoscaler.set_paused(paused, actor)
        return self.group()

    def history(self, since: float | None = None) -> list[dict[str, Any]]:
        return self.telemetry.history(since)

    def decisions(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.autoscaler.recorder.decisions(limit)

    def hosts(self) -> list[HostInfo]:
        return self.host_step.hosts(self.telemetry.view.instances)

    def host_action(self, name: str, action: str, actor: str) -> HostInfo:
        info = self.host_step.wish(name, action, actor, self.telemetry.view.instances)
        self.wake()
        return info

    # ------------------------------------------------------------------ shutdown

    def shutdown(self, *, terminate: bool = True, timeout_s: float = 60.0) -> None:
        """Stop acting (the loop has ended); with ``terminate`` remove every instance and wait for it."""
        self.autoscaler.save()
        rec = self.reconciler
        if terminate:
            for inst in self.fleet:
                rec.ops.wait(inst.name, timeout_s)
                rec.actions.destroy(inst, "shutdown")
            for inst in self.fleet:
                result = rec.ops.wait(inst.name, timeout_s)
                if result is None:
                    continue
                if result.error is None:
                    self.fleet.move(inst, S.GONE, "terminated at shutdown")
                else:
                    rec.report.provider_error("terminate", result.error, inst.name)
            self.autoscaler.reset()
        rec.prober.close()

    def abandon(self) -> None:
        """Leadership is gone: drop this term without another call or write. Provider calls that have
        not started are cancelled; one already running finishes unseen (its result is never
        collected, and the next leader's recovery finds what it did)."""
        self.reconciler.ops.abandon()
        self.reconciler.prober.close()
        self.telemetry.forget()
