"""Steps 2-4 of a tick: what exists at the provider, whether it answers, and what it measures.

* ``observe`` compares the provider's list with the table: vanished instances fail, unknown ones
  are orphans and are removed;
* ``probe`` health-checks booting, ready and draining instances (booting -> ready; ready -> failed
  after ``unhealthy_threshold`` misses in a row);
* ``sample`` records one sample per instance: CPU from the provider, traffic from the balancer,
  requests in flight from the health probe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmscale.controller import act
from vmscale.controller.managed import Managed
from vmscale.errors import LoadBalancerError, ProviderError
from vmscale.health import HealthResult
from vmscale.lb.base import Server, ServerStats
from vmscale.model import InstanceState, Sample
from vmscale.providers.base import ProviderStatus

if TYPE_CHECKING:
    from vmscale.controller.core import Controller

S = InstanceState


def observe(ctl: Controller, now: float) -> None:
    """Compare the provider's list with the table: what vanished fails, what is unknown is an orphan
    and is removed. A failing list backs off instead of failing every interval."""
    if now < ctl.next_observe_at:
        return
    try:
        listed = {p.name: p for p in ctl.provider.list(ctl.group_name)}
    except ProviderError as exc:
        ctl.provider_failures += 1
        delay = ctl._backoff(ctl.provider_failures)
        ctl.next_observe_at = now + delay
        ctl._provider_error("list", exc, None, retry_in_s=delay)
        return
    ctl.provider_failures = 0
    for m in list(ctl.table.values()):
        if m.busy:
            continue
        p = listed.get(m.name)
        if m.state in (S.BOOTING, S.READY, S.DRAINING, S.WARM):
            if p is None or p.status is ProviderStatus.STOPPED:
                ctl._fail(m, now, "vanished: the provider no longer reports it running")
        elif m.state is S.TERMINATING and p is None:
            ctl._set_state(m, S.GONE, now, "confirmed gone")
            del ctl.table[m.name]
    for name, p in listed.items():
        if name not in ctl.table:
            # Not ours any more (or never recorded): remove it rather than let it cost money.
            m = Managed(
                name=name, index=_index_of(name), state=S.FAILED, endpoint=p.endpoint, state_since=now
            )
            ctl.table[name] = m
            ctl._emit_instance(m, "(unknown)", "orphan: exists at the provider but not in the state database")
            act.terminate(ctl, m, now, "removing orphan")


def probe(ctl: Controller, now: float, full: bool = True) -> None:
    """Health-check instances in parallel: booting -> ready (or parked, if meant for the pool),
    ready -> failed after ``unhealthy_threshold`` misses in a row."""
    # Ready instances are probed once per full tick only, so `unhealthy_threshold` keeps
    # meaning "consecutive intervals", however often fast ticks run.
    states = (S.BOOTING, S.READY, S.DRAINING) if full else (S.BOOTING, S.DRAINING)
    targets = [m for m in ctl.table.values() if not m.busy and m.endpoint and m.state in states]
    if not targets:
        return
    results = (
        dict(
            zip(
                [m.name for m in targets],
                ctl.executor.map(
                    lambda m: check(ctl, m.endpoint), targets, timeout=ctl.cfg.health.timeout_s * 3
                ),
                strict=True,
            )
        )
        if len(targets) > 1
        else {targets[0].name: check(ctl, targets[0].endpoint)}
    )
    for m in targets:
        r = results[m.name]
        m.inflight = r.inflight
        if m.state is S.BOOTING:
            if r.ok:
                if m.warm:
                    act.start_op(ctl, m, "pause", ctl.provider.pause, m.name, ctl.cfg.warm_pool.kind, now=now)
                else:
                    become_ready(ctl, m, now)
            elif m.launched_at is not None and now - m.launched_at > ctl.cfg.health.boot_timeout_s:
                hint = f" (console log: {m.details['console_log']})" if "console_log" in m.details else ""
                ctl._fail(m, now, f"not ready within boot_timeout_s={ctl.cfg.health.boot_timeout_s:g}{hint}")
        elif m.state is S.READY:
            if r.ok:
                m.health_failures = 0
            else:
                m.health_failures += 1
                ctl.metrics.health_failures.labels(ctl.group_name).inc()
                if m.health_failures >= ctl.cfg.health.unhealthy_threshold:
                    ctl.metrics.replacements.labels(ctl.group_name).inc()
                    ctl._fail(m, now, f"health check failed {m.health_failures} times in a row: {r.error}")


def check(ctl: Controller, endpoint: str) -> HealthResult:
    try:
        return ctl.health.check(endpoint)
    except Exception as exc:  # a checker bug must not kill the tick
        return HealthResult(False, error=str(exc))


def become_ready(ctl: Controller, m: Managed, now: float) -> None:
    m.ready_at = now
    m.health_failures = 0
    ctl._set_state(m, S.READY, now, "health check passed")
    if m.wanted_at is not None:
        ctl.metrics.time_to_ready.labels(ctl.group_name).observe(now - m.wanted_at)
    if ctl.lb is not None and (hp := m.host_port) is not None:
        try:
            ctl.lb.add(Server(m.name, *hp))
        except LoadBalancerError as exc:
            ctl._error("lb.add", str(exc), m.name)
    ctl.launch_failures = 0


def sample(ctl: Controller, now: float) -> None:
    """Append one sample per live instance: CPU from the provider, rate and latency from the
    balancer, requests in flight (per vCPU) from the last health probe."""
    names = [m.name for m in ctl.table.values() if m.state in (S.BOOTING, S.READY, S.DRAINING)]
    cpu: dict[str, float] = {}
    if names and now >= ctl.next_sample_at:
        try:
            cpu = ctl.provider.sample(names)
            ctl.sample_failures = 0
        except ProviderError as exc:
            # Back off like listing does: a provider that is down (libvirtd stopped) must not
            # get a failing call, and the log an error, every interval for as long as it lasts.
            ctl.sample_failures += 1
            delay = ctl._backoff(ctl.sample_failures)
            ctl.next_sample_at = now + delay
            ctl._provider_error("sample", exc, None, retry_in_s=delay)
    stats = lb_stats(ctl)
    lat = [v for s in stats.values() if (v := s.latency_p95_s or s.response_time_s) is not None]
    ctl._group_latency = max(lat) if lat else None
    ctl._group_rps = sum(s.rate_rps for s in stats.values()) if stats else None
    for name in names:
        m = ctl.table[name]
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
            ctl.metrics.set_instance_cpu(name, cpu[name])


def lb_stats(ctl: Controller) -> dict[str, ServerStats]:
    """The balancer's per-server figures (fresh each call: drains need current sessions)."""
    if ctl.lb is None:
        return {}
    try:
        return ctl.lb.stats()
    except LoadBalancerError as exc:
        ctl._error("lb.stats", str(exc))
        return {}


def _index_of(name: str) -> int:
    """The instance number in ``GROUP-N`` (orphans with other names sort last)."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 10_000
