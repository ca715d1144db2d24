"""What the controller writes down, and where: the store and the decision log.

``StoreRecorder`` listens to the fleet's transitions (each one a row update plus a transition
record) and keeps the group row (desired count, pause flag, policy state). ``DecisionLog`` is where
an applied decision goes: the store, the event stream, a counter and a log line, once each.
"""

from __future__ import annotations

import logging
from typing import Any

from vmscale.clock import Clock
from vmscale.controller.fleet import FleetChange, Instance
from vmscale.event_kinds import DecisionApplied, InstanceResized
from vmscale.events import EventBus
from vmscale.metrics import ControllerMetrics
from vmscale.policy import PolicySetState
from vmscale.store import GroupRow, HostWishRow, InstanceRow, Store

log = logging.getLogger("vmscale.controller")
UNIT_KEY = "unit"  # in the saved policy state: what the policies counted ("instances" or "vcpus")


class StoreRecorder:
    def __init__(self, store: Store, group: str, clock: Clock) -> None:
        self._store = store
        self._group = group
        self._clock = clock

    def on_transition(self, inst: Instance, change: FleetChange) -> None:
        """Fleet listener: every real change is written before the provider is asked to act on it
        (a resize updates the row's vCPUs, with no transition record: the state did not change)."""
        if isinstance(change, InstanceResized):
            self._store.put_instance(inst.row(self._group), self._clock.now())
            return
        if change.src == change.dst:  # an adoption at restart: already recorded
            return
        self._store.put_instance(
            inst.row(self._group), self._clock.now(), src=change.src, reason=change.reason
        )

    def save(self, inst: Instance) -> None:
        """Write an instance's record whose facts changed without a state change (a migration
        moved it to another host)."""
        self._store.put_instance(inst.row(self._group), self._clock.now())

    def host_wishes(self) -> list[HostWishRow]:
        return self._store.host_wishes()

    def put_host_wish(self, row: HostWishRow) -> None:
        self._store.put_host_wish(row)

    def save_group(
        self, desired: int, paused: bool, state: PolicySetState, *, unit: str = "instances"
    ) -> None:
        """``unit``: what the policies count (their memory is in it; see ``Autoscaler.restore``)."""
        saved = {**state.to_dict(), UNIT_KEY: unit}
        self._store.save_group(self._group, desired, paused, saved, self._clock.now())

    def load_group(self) -> GroupRow | None:
        return self._store.load_group(self._group)

    def instances(self) -> list[InstanceRow]:
        return self._store.instances(self._group)

    def append_decision(self, actor: str, record: dict[str, Any]) -> None:
        self._store.append_decision(self._group, self._clock.now(), actor, record)

    def decisions(self, limit: int) -> list[dict[str, Any]]:
        return self._store.decisions(self._group, limit)


class DecisionLog:
    def __init__(
        self, group: str, recorder: StoreRecorder, events: EventBus, metrics: ControllerMetrics
    ) -> None:
        self._group = group
        self._recorder = recorder
        self._events = events
        self._metrics = metrics

    def applied(self, decision: DecisionApplied, record: dict[str, Any]) -> None:
        if decision.action == "scale":
            self._metrics.decisions.labels(self._group, decision.policy, decision.direction).inc()
            log.info(
                "scale %s %d -> %d by %s: %s",
                decision.direction,
                decision.previous,
                decision.desired,
                decision.actor,
                decision.reason,
            )
        else:
            log.info("automatic scaling %s by %s", decision.action, decision.actor)
        self._recorder.append_decision(decision.actor, {**record, **decision.to_dict()})
        self._events.publish(decision)
