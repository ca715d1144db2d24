"""The host step: a group over several libvirt hosts, as the reconcile loop sees it.

    refresh   (full ticks) every host's facts and reachability; changes announced; the hosts a
              consolidation round emptied are checked against libvirt
    observe   (full ticks) the provider's listing: silent hosts, fencing, recorded hosts (silent.py)
    act       (full ticks) at most one live migration at a time: drains first (drain.py), then
              consolidation (consolidate.py); the moves run as MIGRATE calls (migrations.py)
    collected the host calls that finished: migrations, fencing, empty-host commands

Placement itself happens in the provider's ``launch`` (it chooses the host); each choice is
announced here as a ``placement`` event. The operators' wishes (cordon, uncordon, drain) arrive
from the API thread (``wish``) and are kept by ``HostWishes``.

``HostKeeper`` runs for a provider that plays the hosts role (``hosts.role.HostsRole``) and can
migrate; every other provider gets ``NoHosts``, which does nothing, so the loop never asks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import cast

from vmscale.clock import Clock
from vmscale.config.hosts import ClusterConfig
from vmscale.config.schema import GroupSettings
from vmscale.control import HostInfo, InstanceInfo
from vmscale.controller.actions import Actions
from vmscale.controller.consolidate import Consolidator
from vmscale.controller.drain import Drains
from vmscale.controller.fleet import Fleet, Purpose
from vmscale.controller.host_events import PlacementChosen
from vmscale.controller.migrations import Migrations, Seat
from vmscale.controller.operations import Operations, OpKind, OpResult
from vmscale.controller.records import StoreRecorder
from vmscale.controller.reporting import ErrorReporter
from vmscale.controller.silent import SilentHosts, host_of
from vmscale.controller.wishes import ACTIONS, Action, HostWishes
from vmscale.event_kinds import Publish
from vmscale.hosts.role import HostsRole, hosts_role
from vmscale.hosts.values import HostStatus
from vmscale.hosts.watch import Reach
from vmscale.model import Decision, InstanceState
from vmscale.plan.placement import Placement
from vmscale.providers.base import Migrator, ProviderInstance, ProviderRoles

S = InstanceState


class HostKeeper:
    def __init__(
        self,
        cfg: GroupSettings,
        cluster: ClusterConfig,
        hosts: HostsRole,
        migrator: Migrator,
        fleet: Fleet,
        ops: Operations,
        actions: Actions,
        recorder: StoreRecorder,
        publish: Publish,
        report: ErrorReporter,
        clock: Clock,
    ) -> None:
        self._group = cfg.group.name
        self._hosts = hosts
        self._fleet = fleet
        self._ops = ops
        self._actions = actions
        self.wishes = HostWishes(hosts.inventory, recorder, publish, clock)
        self.silent = SilentHosts(
            fleet,
            ops,
            actions,
            hosts,
            recorder,
            publish,
            report,
            grace_s=cluster.unreachable_after_s,
            terminate_timeout_s=cfg.launch.terminate_timeout_s,
        )
        self.migrations = Migrations(ops, migrator, recorder, publish, report, clock)
        memory_mb = cfg.template.memory_mb
        self.drains = Drains(
            self.wishes,
            clock,
            memory_mb=memory_mb,
            strategy=cluster.placement.strategy,
            spread_label=cluster.placement.spread_label,
        )
        self.consolidator = Consolidator(
            cluster.consolidation, publish, ops, clock, group=cfg.group.name, memory_mb=memory_mb
        )

        def placed(p: Placement) -> None:  # from the launching worker thread
            publish(PlacementChosen(p.name, p.host or "", p.reason))

        hosts.on_placement = placed

    # ------------------------------------------------------------------ the loop's steps
    def recover(self) -> None:
        self.wishes.load()

    def refresh(self, now: float) -> None:
        statuses = self._hosts.inventory.refresh()
        self.silent.announce(statuses)
        self.consolidator.check_empty(statuses, now)

    def observe(self, listed: Mapping[str, ProviderInstance], now: float) -> None:
        answering = frozenset(s.name for s in self._hosts.inventory.statuses() if s.reach is Reach.UP)
        self.silent.observe(listed, answering, now)

    def act(self, desired: int, decision: Decision | None, now: float, *, full: bool) -> None:
        """Start the next move, if any (full ticks only: the views are then fresh)."""
        self.consolidator.observe(desired, decision, now)
        if not full or self.migrations.busy:
            return
        seats = self._seats()
        views = self._hosts.inventory.views(self._group)
        nxt = self.drains.step(views, seats)
        for name in nxt.stop:
            if (inst := self._fleet.get(name)) is not None:
                why = f"drain of {host_of(inst)}: a parked instance is not moved; the pool refills elsewhere"
                self._actions.terminate(inst, why)
        move = nxt.move
        if move is None and not self.drains.active:
            move = self.consolidator.next_move(self._unsettled(desired), views, seats, now)
        if move is not None and (inst := self._fleet.get(move.name)) is not None:
            self.migrations.start(inst, move)

    def collected(self, results: Sequence[OpResult], now: float) -> None:
        for r in results:
            if r.kind is OpKind.MIGRATE:
                outcome = self.migrations.finished(self._fleet.get(r.name), r)
                if outcome is not None:
                    self.drains.moved(outcome)
                    self.consolidator.moved(outcome)
            elif r.kind is OpKind.FENCE:
                self.silent.fenced(r)
            elif r.kind is OpKind.HOST_COMMAND:
                self.consolidator.command_done(r)

    def _seats(self) -> list[Seat]:
        return [
            Seat(
                i.name, host_of(i), i.state, i.facts.vcpus, i.purpose is Purpose.POOL, self._ops.busy(i.name)
            )
            for i in self._fleet
            if host_of(i)
        ]

    def _unsettled(self, desired: int) -> str | None:
        """Why the group is not as it will stay (a consolidation round waits), or None."""
        ready = 0
        for i in self._fleet:
            if i.purpose is Purpose.POOL and i.state is S.WARM:
                continue
            if i.state is not S.READY:
                return f"{i.name} is {i.state.value}"
            if self._ops.busy(i.name):
                return f"{i.name} is busy ({self._ops.kind_of(i.name)})"
            ready += i.purpose is Purpose.GROUP
        if ready != desired:
            return f"{ready} of {desired} instances ready"
        return None

    # ------------------------------------------------------------------ the API's side
    def hosts(self, instances: Sequence[InstanceInfo]) -> list[HostInfo]:
        on: dict[str, list[str]] = {}
        for i in instances:
            if (h := i.details.get("host")) is not None:
                on.setdefault(h, []).append(i.name)
        return [self._info(st, on.get(st.name, [])) for st in self._hosts.inventory.statuses()]

    def wish(self, name: str, action: str, actor: str, instances: Sequence[InstanceInfo]) -> HostInfo:
        if action not in ACTIONS:
            raise ValueError(f"unknown host action {action!r}: use one of {', '.join(ACTIONS)}")
        verb = cast(Action, action)
        self.wishes.set(name, verb, actor)
        return next(h for h in self.hosts(instances) if h.name == name)

    def _info(self, st: HostStatus, instances: list[str]) -> HostInfo:
        f = st.facts
        row = self.wishes.get(st.name)
        view = next((v for v in self._hosts.inventory.views(self._group) if v.name == st.name), None)
        return HostInfo(
            name=st.name,
            state=st.state,
            uri=st.uri,
            labels=dict(st.labels),
            cpus=f.cpus if f else None,
            vcpus_running=f.running_vcpus if f else None,
            vcpu_limit=view.vcpu_limit if view is not None and f else None,
            memory_total_mb=f.memory_total_mb if f else None,
            memory_free_mb=round(f.memory_free_mb, 1) if f else None,
            domains=f.domains if f else None,
            instances=sorted(instances),
            wish=None if row is None else row.view(),
            activity=self._activity(st),
            error=st.error,
            facts_age_s=None if st.facts_age_s is None else round(st.facts_age_s, 1),
        )

    def _activity(self, st: HostStatus) -> str:
        parts = []
        drain = self.drains.progress.get(st.name)
        if drain is not None:
            since = time.strftime("%H:%M:%S", time.localtime(drain.started_at))
            text = f"draining since {since}: {len(drain.moved)} moved"
            if drain.failed:
                text += f", {len(drain.failed)} failed ({', '.join(n for n, _ in drain.failed)})"
            parts.append(text)
        moving = self.migrations.current
        if moving is not None and st.name in (moving.move.src, moving.move.dst):
            m = moving.move
            pct = f"{moving.fraction:.0%}" if moving.fraction is not None else "starting"
            parts.append(
                f"moving {m.name} to {m.dst} ({pct})" if m.src == st.name else f"receiving {m.name} ({pct})"
            )
        note = self.consolidator.notes.get(st.name)
        if note and st.facts is not None and st.facts.domains == 0:
            parts.append(note)
        return "; ".join(parts)


class NoHosts:
    """The host step of a provider without hosts (process, one libvirt host): nothing to do."""

    def __init__(self, provider_kind: str) -> None:
        self._kind = provider_kind

    def recover(self) -> None:
        pass

    def refresh(self, now: float) -> None:
        pass

    def observe(self, listed: Mapping[str, ProviderInstance], now: float) -> None:
        pass

    def act(self, desired: int, decision: Decision | None, now: float, *, full: bool) -> None:
        pass

    def collected(self, results: Sequence[OpResult], now: float) -> None:
        pass

    def hosts(self, instances: Sequence[InstanceInfo]) -> list[HostInfo]:
        return []

    def wish(self, name: str, action: str, actor: str, instances: Sequence[InstanceInfo]) -> HostInfo:
        raise ValueError(
            f"the {self._kind} provider runs this group without [[cluster.hosts]]: there are no hosts "
            "to cordon or drain (list two or more hosts under [[cluster.hosts]] with the libvirt provider)"
        )


HostStep = HostKeeper | NoHosts


def build_host_step(
    cfg: GroupSettings,
    cluster: ClusterConfig,
    roles: ProviderRoles,
    provider: object,
    fleet: Fleet,
    ops: Operations,
    actions: Actions,
    recorder: StoreRecorder,
    publish: Publish,
    report: ErrorReporter,
    clock: Clock,
) -> HostStep:
    """``provider`` is the provider itself (``roles.lifecycle`` may be a wrapper of it: the fence's),
    asked whether it spreads the group over hosts."""
    hosts = hosts_role(provider)
    if hosts is None or roles.migrator is None:
        return NoHosts(roles.lifecycle.kind)
    return HostKeeper(
        cfg, cluster, hosts, roles.migrator, fleet, ops, actions, recorder, publish, report, clock
    )
