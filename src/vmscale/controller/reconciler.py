"""The reconciler: makes what exists match the desired count, one level-triggered step at a time.

    collect   finished provider calls: launched -> booting, terminated -> gone, parked -> warm,
              resized -> in transit (``resizes.py``), the golden prepared (or why not), ...
    observe   the provider's list against the table: what vanished fails, what is unknown is an
              orphan (recorded as failed, so the plan's clean-up removes it), a size that differs
              is taken from the provider; the listing goes on to the host step (silent hosts, fencing)
    probe     health: booting -> ready (or parked, for the pool); ready -> failed after N misses;
              a resize in transit has arrived once the workload reports the new size
    sample    one sample per instance: CPU from the provider, traffic from the balancer, requests in
              flight from the probe; returns the group's traffic figures
    execute   the scale plan (``vmscale.plan.scale``) for the desired count (and, vertical-first,
              the decision's sizes and named removals)
    drains    draining -> terminating once nothing is in flight, or at the drain timeout
    sync      the balancer's server set, every tick

It knows nothing of policies or the API: it is handed the desired count. Every call to the
provider that can fail over and over (launch, list, sample, resize, each instance's terminate)
backs off with the same rule (``Backoff``).
"""

from __future__ import annotations

from dataclasses import dataclass

from vmscale.config.schema import GroupSettings
from vmscale.controller import resizes
from vmscale.controller.actions import Actions
from vmscale.controller.backoff import Backoff
from vmscale.controller.fleet import Facts, Fleet, Instance, Purpose
from vmscale.controller.membership import Membership, Traffic
from vmscale.controller.operations import HOST_KINDS, PREPARE_KEY, Operations, OpKind, OpResult
from vmscale.controller.probe import Prober
from vmscale.controller.reporting import ErrorReporter
from vmscale.errors import InstanceNotFoundError, NotLeaderError, PermanentProviderError, ProviderError
from vmscale.metrics import ControllerMetrics
from vmscale.metrics_sources import ExternalMetrics
from vmscale.model import InstanceState, Sample
from vmscale.plan.scale import Member, Shape, plan_scale
from vmscale.providers.base import ProviderInstance, ProviderRoles, ProviderStatus

S = InstanceState


@dataclass(slots=True)
class Backoffs:
    """The reconciler's own back-offs (each instance holds the one for its terminate)."""

    launch: Backoff
    listing: Backoff
    sampling: Backoff
    resize: Backoff


class Reconciler:
    def __init__(
        self,
        cfg: GroupSettings,
        fleet: Fleet,
        ops: Operations,
        actions: Actions,
        membership: Membership,
        roles: ProviderRoles,
        prober: Prober,
        report: ErrorReporter,
        metrics: ControllerMetrics,
    ) -> None:
        self._cfg = cfg
        self.fleet = fleet
        self.ops = ops
        self.actions = actions
        self.membership = membership
        self.roles = roles
        self.prober = prober
        self.report = report
        self._metrics = metrics
        first = Backoff(cfg.launch.backoff_initial_s, cfg.launch.backoff_max_s)
        self.backoffs = Backoffs(first, first, first, first)

    @property
    def _group(self) -> str:
        return self._cfg.group.name

    # ------------------------------------------------------------------ collect

    def collect(self, now_wall: float, now: float) -> list[OpResult]:
        """Finished calls; first of all, whether this controller still leads (every tick starts
        here: a leader past its renew deadline stops before it acts). Acts on the lifecycle calls
        and returns the others (the host step's: migrations, fencing, host commands; the golden
        snapshot's) for their owners."""
        self.ops.check("tick")
        others = []
        for result in self.ops.collect():
            if isinstance(result.error, NotLeaderError):
                raise result.error  # the fence refused the call in the worker: stop this tick
            inst = self.fleet.get(result.name)
            if result.kind in HOST_KINDS:
                others.append(result)
            elif inst is not None:
                self._finished(inst, result, now_wall, now)
            elif result.kind is OpKind.PREPARE:
                self._prepared(result)
                others.append(result)  # for the golden's status (``GoldenTracker``)
        return others

    def _prepared(self, r: OpResult) -> None:
        """The golden snapshot was made ahead (or could not be: the first clone launch makes it)."""
        if r.error is not None:
            self.report.provider_error("prepare", r.error, r.name.removeprefix(PREPARE_KEY))

    def _finished(self, inst: Instance, r: OpResult, now_wall: float, now: float) -> None:
        if r.kind in (OpKind.LAUNCH_HOOK, OpKind.TERMINATE_HOOK):
            self._hooks_answered(inst, r, now_wall, now)
            return
        if r.kind is OpKind.RESIZE:
            self.backoffs.resize = resizes.resize_finished(
                inst, r, self.fleet, self.report, self.backoffs.resize, now
            )
            return
        if r.kind is OpKind.LAUNCH:
            if r.error is not None:
                self._capacity_failed(inst, r.error, now, "launch", "launch failed")
                return
            self._metrics.launch_seconds.labels(self._group).observe(now - r.started)
            inst.facts = Facts(r.value.endpoint, r.value.vcpus, dict(r.value.details))
            self.fleet.move(inst, S.BOOTING, f"started by the {self.roles.lifecycle.kind} provider")
        elif r.kind is OpKind.TERMINATE:
            if r.error is None or isinstance(r.error, InstanceNotFoundError):
                self._metrics.terminate_seconds.labels(self._group).observe(now - r.started)
                self.fleet.move(inst, S.GONE, "terminated")
                return
            inst.timers.terminate = inst.timers.terminate.failed(now)
            self.report.provider_error("terminate", r.error, inst.name, inst.timers.terminate)
        elif r.kind is OpKind.PAUSE:
            if r.error is not None:
                self._capacity_failed(inst, r.error, now, "pause", "could not park for the warm pool")
                return
            self.fleet.move(inst, S.WARM, f"parked in the warm pool ({self._cfg.warm_pool.kind})")
        elif r.kind is OpKind.RESUME:
            if r.error is not None:
                self._capacity_failed(inst, r.error, now, "resume", "could not resume from the warm pool")
                return
            inst.health.failures = 0
            inst.timers.launched = now  # the boot timeout counts from the resume, not the first launch
            self.fleet.move(inst, S.BOOTING, "resumed from the warm pool")

    def _hooks_answered(self, inst: Instance, r: OpResult, now_wall: float, now: float) -> None:
        """A launch hook that says continue lets the instance into rotation; abandon (or a hook
        runner that broke) replaces it, backing off launches as a failed launch would. Terminate
        hooks only delay: the instance is destroyed whatever they answer."""
        verdict = r.value.result if r.error is None else "abandon"
        why = r.value.reason if r.error is None else f"launch hooks failed: {r.error}"
        if r.kind is OpKind.TERMINATE_HOOK:
            self.actions.destroy(inst, f"stopped after its terminate hooks ({why})")
        elif verdict == "continue":
            self._become_ready(inst, now_wall, now)
        else:
            self.backoffs.launch = self.backoffs.launch.failed(now)
            self.actions.fail(inst, why)

    def _capacity_failed(self, inst: Instance, exc: BaseException, now: float, op: str, what: str) -> None:
        """A call that was to bring capacity (launch, park, resume) failed: back off new launches (a
        permanent error waits the longest), report, and replace the instance."""
        self.backoffs.launch = self.backoffs.launch.failed(
            now, permanent=isinstance(exc, PermanentProviderError)
        )
        self.report.provider_error(op, exc, inst.name, self.backoffs.launch)
        self.actions.fail(inst, f"{what}: {exc}")

    # ------------------------------------------------------------------ observe

    def observe(self, now: float) -> dict[str, ProviderInstance] | None:
        """Returns the listing (for the host step, which handles what its hosts' silence means),
        or None when there was none this tick."""
        if not self.backoffs.listing.ready(now):
            return None
        try:
            listed = {p.name: p for p in self.roles.lifecycle.list(self._group)}
        except ProviderError as exc:
            self.backoffs.listing = self.backoffs.listing.failed(now)
            self.report.provider_error("list", exc, None, self.backoffs.listing)
            return None
        self.backoffs.listing = self.backoffs.listing.succeeded()
        for inst in self.fleet:
            if self.ops.busy(inst.name):
                continue
            p = listed.get(inst.name)
            if inst.state in (S.BOOTING, S.READY, S.DRAINING, S.WARM):
                if p is None or p.status is ProviderStatus.STOPPED:
                    self.actions.fail(inst, "vanished: the provider no longer reports it running")
                else:
                    resizes.listed(inst, p.vcpus, self.fleet)
            elif inst.state is S.TERMINATING and p is None:
                self.fleet.move(inst, S.GONE, "confirmed gone")
        for name, p in listed.items():
            if name not in self.fleet:
                # Not ours any more (or never recorded): remove it rather than let it cost money.
                orphan = Instance(
                    name,
                    _index_of(name),
                    S.FAILED,
                    self.actions.new_timers(now),
                    facts=Facts(p.endpoint, p.vcpus),
                )
                self.fleet.add(
                    orphan, "orphan: exists at the provider but not in the state database", src="(unknown)"
                )
        return listed

    # ------------------------------------------------------------------ probe

    def probe(self, now_wall: float, now: float, *, full: bool) -> None:
        """Booting -> ready (or parked), ready -> failed after ``unhealthy_threshold`` misses in a row.
        Ready instances are probed on full ticks only, so the threshold keeps meaning "consecutive
        intervals" however often fast ticks run; a ready one with a resize in transit is probed on
        fast ticks too (only to see the resize arrive: a miss there counts for nothing)."""
        states = (S.BOOTING, S.READY, S.DRAINING) if full else (S.BOOTING, S.DRAINING)
        targets = [
            i
            for i in self.fleet
            if not self.ops.busy(i.name)
            and i.facts.endpoint
            and (i.state in states or (i.state is S.READY and i.timers.resize is not None))
        ]
        if not targets:
            return
        results = self.prober.check_all(targets)
        hc = self._cfg.health
        for inst in targets:
            r = results[inst.name]
            inst.health.inflight = r.inflight
            if r.ok and r.cpus is not None:
                inst.health.cpus = r.cpus
            if r.ok and inst.timers.resize is not None:
                resizes.follow(inst, self.fleet, self._metrics, now, hc.boot_timeout_s)
            if inst.state is S.READY and not full:
                continue
            if inst.state is S.BOOTING:
                if r.ok and inst.purpose is Purpose.POOL:
                    self.actions.park(inst, self._cfg.warm_pool.kind)
                elif r.ok and not self.actions.run_launch_hooks(inst):
                    self._become_ready(inst, now_wall, now)
                elif now - inst.timers.launched > hc.boot_timeout_s:
                    log = inst.facts.details.get("console_log")
                    hint = f" (console log: {log})" if log else ""
                    self.actions.fail(inst, f"not ready within boot_timeout_s={hc.boot_timeout_s:g}{hint}")
            elif inst.state is S.READY:
                if r.ok:
                    inst.health.failures = 0
                    continue
                inst.health.failures += 1
                self._metrics.health_failures.labels(self._group).inc()
                if inst.health.failures >= hc.unhealthy_threshold:
                    self._metrics.replacements.labels(self._group).inc()
                    self.actions.fail(
                        inst, f"health check failed {inst.health.failures} times in a row: {r.error}"
                    )

    def _become_ready(self, inst: Instance, now_wall: float, now: float) -> None:
        inst.ready_at = now_wall
        inst.health.failures = 0
        self.fleet.move(inst, S.READY, "health check passed")
        if inst.timers.wanted_at is not None:
            self._metrics.time_to_ready.labels(self._group).observe(now - inst.timers.wanted_at)
        self.membership.add(inst)
        self.backoffs.launch = self.backoffs.launch.succeeded()

    # ------------------------------------------------------------------ sample

    def sample(self, now_wall: float, now: float, external: ExternalMetrics | None = None) -> Traffic:
        """One sample per live instance (with this tick's external metrics, if any); returns the
        group's traffic figures."""
        names = [i.name for i in self.fleet if i.state in (S.BOOTING, S.READY, S.DRAINING)]
        cpu: dict[str, float] = {}
        if names and self.backoffs.sampling.ready(now):
            try:
                cpu = self.roles.sampler.sample(names)
                self.backoffs.sampling = self.backoffs.sampling.succeeded()
            except ProviderError as exc:
                self.backoffs.sampling = self.backoffs.sampling.failed(now)
                self.report.provider_error("sample", exc, None, self.backoffs.sampling)
        for name in names:
            if self.ops.kind_of(name) is OpKind.RESIZE:
                # A percentage of the old size or the new? Neither is right mid-call: no value (on
                # the way up the policies count a missing sample as idle, the HPA's rule).
                cpu.pop(name, None)
        stats = self.membership.stats()
        # A p95 is a p95: a balancer's mean response time is never passed off as one.
        backend = self.membership.backend_stats()
        lat = [s.latency_p95_s for s in stats.values() if s.latency_p95_s is not None]
        group_p95 = backend.latency_p95_s if backend is not None else (max(lat) if lat else None)
        for name in names:
            inst = self.fleet.get(name)
            if inst is None:
                continue
            st = stats.get(name)
            inflight = inst.health.inflight
            inst.samples.append(
                Sample(
                    t=now_wall,
                    cpu=cpu.get(name),
                    rps=st.rate_rps if st else None,
                    latency_p95=st.latency_p95_s if st else None,
                    inflight=inflight / max(1, inst.facts.vcpus) if inflight is not None else None,
                    extra=external.instance_extra(name) if external is not None else {},
                )
            )
            if name in cpu:
                self._metrics.set_instance_cpu(name, cpu[name])
        return Traffic(group_p95, sum(s.rate_rps for s in stats.values()) if stats else None)

    # ------------------------------------------------------------------ execute, drains, sync

    def execute(self, desired: int, now: float, wanted_at: float | None, shape: Shape = Shape()) -> None:
        """Carry out the scale plan for ``desired`` and, vertical-first, the decision's ``shape``
        (see ``vmscale.plan.scale``): resizes first, then resumes and launches, then removals."""
        members = [
            Member(
                i.name,
                i.index,
                i.state,
                pool=i.purpose is Purpose.POOL,
                busy=self.ops.busy(i.name),
                cpu=i.latest_cpu(),
                retry_ready=i.timers.terminate.ready(now),
                vcpus=i.facts.vcpus,
            )
            for i in self.fleet
        ]
        can_launch = self.backoffs.launch.ready(now)
        plan = plan_scale(
            members,
            desired,
            self._cfg.warm_pool.size,
            can_launch=can_launch,
            shape=shape,
            can_resize=self.roles.resizer is not None and self.backoffs.resize.ready(now),
        )
        wanted = wanted_at if wanted_at is not None else now
        for name, vcpus in plan.resize:
            if (inst := self.fleet.get(name)) is not None:
                self.actions.resize(inst, vcpus, shape.reason or "resize asked for", wanted)
        for name in plan.resume:
            inst = self.fleet.get(name)
            if inst is not None:
                self.actions.resume(inst, wanted)
        for _ in range(plan.launch):
            self.actions.launch(pool=False, wanted_at=wanted)
        for name, reason in plan.drain:
            if (inst := self.fleet.get(name)) is not None:
                self.actions.drain(inst, reason)
        for name, reason in plan.stop:
            if (inst := self.fleet.get(name)) is not None:
                self.actions.terminate(inst, reason)
        for _ in range(plan.launch_pool):
            self.actions.launch(pool=True, wanted_at=None)

    def progress_drains(self, now: float) -> None:
        """Terminate draining instances once nothing is in flight, or at the drain timeout."""
        dc = self._cfg.drain
        draining = [i for i in self.fleet if i.state is S.DRAINING and not self.ops.busy(i.name)]
        if not draining:
            return
        stats = self.membership.stats()
        for inst in draining:
            if inst.timers.drain_started is None:
                # Adopted mid-drain after a restart: the wait (and its timeout) starts again now.
                inst.timers.drain_started = now
            waited = now - inst.timers.drain_started
            if waited < dc.grace_s:
                continue
            st = stats.get(inst.name)
            inflight = st.sessions_current if st is not None else inst.health.inflight
            if inflight == 0:
                self.actions.terminate(inst, "drained: no requests in flight")
            elif waited >= dc.timeout_s:
                self.actions.terminate(inst, f"drain timeout after {dc.timeout_s:g}s ({inflight} in flight)")

    def sync_balancer(self) -> None:
        self.membership.sync(self.fleet)

    def transitional(self) -> bool:
        """Something is worth polling faster than the interval: a boot, a drain or a resize in
        progress."""
        return any(
            (i.state in (S.BOOTING, S.DRAINING) or (i.state is S.READY and i.timers.resize is not None))
            and not self.ops.busy(i.name)
            for i in self.fleet
        )


def _index_of(name: str) -> int:
    """The instance number in ``GROUP-N`` (orphans with other names sort last)."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 10_000
