"""Which host a new instance goes to: filters say "cannot", scores say "prefer". Pure.

Modelled on the Kubernetes scheduler framework (filter plugins, then score plugins) and Nomad's
``spread`` and ``binpack`` algorithms, reduced to what a VM group needs:

* **Filters** (``FILTERS``), each a small function returning why a host cannot take the instance,
  or None: unreachable, cordoned, draining, already at ``max_instances``, memory headroom, vCPU
  overcommit. A host that fails any filter is never chosen: placement never goes past headroom.
* **Scores**: ``spread`` (default) puts the instance where the group has the fewest instances,
  counting zones (``spread_label``) first and hosts second, so losing a host or a zone costs the
  least. ``binpack`` puts it on the busiest host that still fits, preferring hosts that already run
  something, so the fewest hosts stay powered.

Every choice comes with an explanation a person can read in the event log, e.g.
``web-7 on h2: spread, h2 has 0 of the group, h1 has 3, h3 is cordoned``.

The inputs are frozen views of what libvirt reported (``HostView``); ``place_all`` places several
instances one after the other, each seeing the hosts as the previous ones left them. Ties are broken
by host name, so the same views always give the same answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

Strategy = Literal["spread", "binpack"]
MAX_NAMED = 3  # hosts named per part of an explanation; the rest are counted


@dataclass(frozen=True, slots=True)
class HostLimits:
    max_vcpu_overcommit: float = 4.0  # running vCPUs may reach cpus x this
    min_free_memory_mb: int = 512  # a launch must leave at least this much memory free
    max_instances: int = 0  # most domains of any group on the host; 0 = no limit


@dataclass(frozen=True, slots=True)
class HostView:
    """One host as placement sees it: what libvirt reported plus the controller's flags."""

    name: str
    cpus: int
    memory_free_mb: float  # memory still free for new guests (reported free, less what guests hold)
    memory_total_mb: float = 0.0  # what guests may use in all (0 = unknown: memory not in utilisation)
    running_vcpus: int = 0  # vCPUs of every running domain, any group
    domains: int = 0  # domains of any group on the host
    group_instances: int = 0  # this group's instances on the host
    labels: Mapping[str, str] = field(default_factory=dict)
    limits: HostLimits = HostLimits()
    reachable: bool = True
    cordoned: bool = False
    draining: bool = False

    def with_instance(self, vcpus: int, memory_mb: int, count: int = 1) -> HostView:
        """The host after ``count`` more (or, negative, fewer) instances of the group of this size."""
        return replace(
            self,
            running_vcpus=self.running_vcpus + vcpus * count,
            memory_free_mb=self.memory_free_mb - memory_mb * count,
            domains=self.domains + count,
            group_instances=self.group_instances + count,
        )

    @property
    def vcpu_limit(self) -> float:
        return self.cpus * self.limits.max_vcpu_overcommit

    def utilisation(self, vcpus: int = 0, memory_mb: int = 0) -> float:
        """The fuller of CPU (against the overcommit limit) and memory (against the total), 0..1+,
        with ``vcpus``/``memory_mb`` more placed on it."""
        cpu = (self.running_vcpus + vcpus) / self.vcpu_limit if self.vcpu_limit > 0 else 1.0
        if self.memory_total_mb <= 0:
            return cpu
        return max(cpu, 1.0 - (self.memory_free_mb - memory_mb) / self.memory_total_mb)


@dataclass(frozen=True, slots=True)
class Request:
    name: str
    vcpus: int = 1
    memory_mb: int = 512


@dataclass(frozen=True, slots=True)
class Placement:
    name: str
    host: str | None  # None: no host can take it
    reason: str  # the explanation for the event log
    rejected: Mapping[str, str] = field(default_factory=dict)  # host -> why it could not

    @property
    def placed(self) -> bool:
        return self.host is not None


# ------------------------------------------------------------------------------------- filters
Filter = Callable[[Request, HostView], str | None]


def unreachable(_req: Request, host: HostView) -> str | None:
    return None if host.reachable else "unreachable"


def cordoned(_req: Request, host: HostView) -> str | None:
    return "cordoned" if host.cordoned else None


def draining(_req: Request, host: HostView) -> str | None:
    return "draining" if host.draining else None


def max_instances(_req: Request, host: HostView) -> str | None:
    limit = host.limits.max_instances
    if limit and host.domains >= limit:
        return f"full ({host.domains} of max {limit} instances)"
    return None


def memory_headroom(req: Request, host: HostView) -> str | None:
    left = host.memory_free_mb - req.memory_mb
    if left < host.limits.min_free_memory_mb:
        return (
            f"short of memory ({host.memory_free_mb:.0f} MiB free, {req.memory_mb} MiB would leave "
            f"less than {host.limits.min_free_memory_mb})"
        )
    return None


def vcpu_overcommit(req: Request, host: HostView) -> str | None:
    if host.running_vcpus + req.vcpus > host.vcpu_limit:
        return (
            f"at its vCPU limit ({host.running_vcpus}+{req.vcpus} > {host.cpus} CPUs x "
            f"{host.limits.max_vcpu_overcommit:g})"
        )
    return None


FILTERS: tuple[Filter, ...] = (
    unreachable,
    draining,
    cordoned,
    max_instances,
    memory_headroom,
    vcpu_overcommit,
)


def why_not(req: Request, host: HostView) -> str | None:
    """The first filter that rules ``host`` out for ``req``, or None when it may take it."""
    for rule in FILTERS:
        problem = rule(req, host)
        if problem:
            return problem
    return None


# -------------------------------------------------------------------------------------- scores
def zone_of(host: HostView, label: str) -> str:
    """A host without the label is a zone of its own (spreading over it still spreads)."""
    return host.labels.get(label) or f"host:{host.name}"


def zone_counts(hosts: Sequence[HostView], label: str) -> Counter[str]:
    """The group's instances per zone, over every host (an instance on a cordoned host still counts)."""
    counts: Counter[str] = Counter()
    for h in hosts:
        counts[zone_of(h, label)] += h.group_instances
    return counts


def spread_key(host: HostView, zones: Counter[str], label: str) -> tuple[int, int, float, str]:
    return (zones[zone_of(host, label)], host.group_instances, host.utilisation(), host.name)


def binpack_key(host: HostView, req: Request) -> tuple[bool, float, str]:
    return (host.domains == 0, -host.utilisation(req.vcpus, req.memory_mb), host.name)


# ------------------------------------------------------------------------------------- placing
def _names(items: Sequence[str], limit: int = MAX_NAMED) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _explain(
    req: Request,
    chosen: HostView,
    others: Sequence[HostView],
    rejected: Mapping[str, str],
    strategy: Strategy,
    zones: Counter[str],
    label: str,
) -> str:
    parts = [f"{req.name} on {chosen.name}: {strategy}"]
    if strategy == "spread":
        zone = chosen.labels.get(label)
        where = f" (zone {zone} has {zones[zone_of(chosen, label)]})" if zone else ""
        parts.append(f"{chosen.name} has {chosen.group_instances} of the group{where}")
        parts += [f"{h.name} has {h.group_instances}" for h in others[:MAX_NAMED]]
    else:
        parts.append(f"{chosen.name} is the fullest that fits ({chosen.utilisation():.0%} used)")
        parts += [f"{h.name} {h.utilisation():.0%}" for h in others[:MAX_NAMED]]
    if len(others) > MAX_NAMED:
        parts.append(f"{len(others) - MAX_NAMED} more eligible")
    by_reason: dict[str, list[str]] = {}
    for name, why in rejected.items():
        by_reason.setdefault(why, []).append(name)
    for why, names in by_reason.items():
        verb = "is" if len(names) == 1 else "are"
        parts.append(f"{_names(sorted(names))} {verb} {why}")
    return ", ".join(parts)


def place(
    req: Request,
    hosts: Sequence[HostView],
    *,
    strategy: Strategy = "spread",
    spread_label: str = "zone",
) -> Placement:
    """Choose a host for ``req`` among ``hosts``, or say why none can take it."""
    rejected: dict[str, str] = {}
    eligible: list[HostView] = []
    for h in hosts:
        problem = why_not(req, h)
        if problem:
            rejected[h.name] = problem
        else:
            eligible.append(h)
    zones = zone_counts(hosts, spread_label)
    if not eligible:
        detail = "; ".join(f"{n}: {why}" for n, why in sorted(rejected.items())[:MAX_NAMED])
        more = f"; +{len(rejected) - MAX_NAMED} more" if len(rejected) > MAX_NAMED else ""
        reason = f"{req.name}: no host can take it ({detail}{more})" if hosts else f"{req.name}: no hosts"
        return Placement(req.name, None, reason, rejected)
    if strategy == "spread":
        ranked = sorted(eligible, key=lambda h: spread_key(h, zones, spread_label))
    else:
        ranked = sorted(eligible, key=lambda h: binpack_key(h, req))
    chosen, others = ranked[0], ranked[1:]
    reason = _explain(req, chosen, others, rejected, strategy, zones, spread_label)
    return Placement(req.name, chosen.name, reason, rejected)


def place_all(
    reqs: Sequence[Request],
    hosts: Sequence[HostView],
    *,
    strategy: Strategy = "spread",
    spread_label: str = "zone",
) -> tuple[list[Placement], list[HostView]]:
    """Place ``reqs`` one after the other; returns the placements and the hosts as they are left."""
    views = list(hosts)
    index = {h.name: i for i, h in enumerate(views)}
    out: list[Placement] = []
    for req in reqs:
        p = place(req, views, strategy=strategy, spread_label=spread_label)
        out.append(p)
        if p.host is not None:
            i = index[p.host]
            views[i] = views[i].with_instance(req.vcpus, req.memory_mb)
    return out, views
