"""What a standby controller serves: the group as the leader last recorded it in the store.

A standby runs no reconcile loop and calls neither the provider nor the balancer, but it is useful:
its API and dashboard answer from the shared store (the group row, the instance rows, the decision
history), so any controller's address shows the group, and a write sent to it is refused with the
leader's address (``NotLeaderError``; the API answers 409 and the CLI follows the address once).

What it cannot show: live CPU figures and tick history (only the leader samples), and what libvirt
reports of each host (only the leader watches them: a standby lists the configured hosts with the
operators' wishes and the group's instances on each, and leaves libvirt's figures empty); its event
stream carries nothing until it leads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from vmscale.config.hosts import HostConfig
from vmscale.config.schema import GroupSettings
from vmscale.control import GroupStatus, HostInfo, InstanceInfo
from vmscale.errors import NotLeaderError
from vmscale.events import EventBus
from vmscale.model import LIVE_STATES, InstanceState
from vmscale.store import InstanceRow, Store

_LIVE = frozenset(s.value for s in LIVE_STATES)
_READY = InstanceState.READY.value
_WARM = InstanceState.WARM.value
AT_LEADER = "seen from a standby: the host's state and libvirt's figures are at the leader"


class StoreControl:
    """``GroupControl`` over the store: reads only; every write is refused."""

    def __init__(
        self,
        cfg: GroupSettings,
        store: Store,
        events: EventBus,
        *,
        provider: str,
        lb: str,
        frontend_url: str | None,
        policies: Sequence[str],
        hosts: Sequence[HostConfig] = (),
    ) -> None:
        self.events = events
        self._hosts = list(hosts)
        self._cfg = cfg
        self._store = store
        self._provider = provider
        self._lb = lb
        self._frontend_url = frontend_url
        self._policies = list(policies)

    @property
    def _name(self) -> str:
        return self._cfg.group.name

    def _rows(self) -> list[InstanceRow]:
        return self._store.instances(self._name)

    def group(self) -> GroupStatus:
        row = self._store.load_group(self._name)
        rows = self._rows()
        by_state = Counter(r.state for r in rows)
        last = self._store.decisions(self._name, 1)
        return GroupStatus(
            name=self._name,
            desired=row.desired if row is not None else self._cfg.group.initial_count,
            actual=sum(1 for r in rows if r.state in _LIVE and not r.warm),
            ready=by_state[_READY],
            min=self._cfg.group.min,
            max=self._cfg.group.max,
            paused=row.paused if row is not None else False,
            provider=self._provider,
            lb=self._lb,
            frontend_url=self._frontend_url,
            policies=list(self._policies),
            states=dict(by_state),
            last_decision=last[-1] if last else None,
            warm=by_state[_WARM],
        )

    def instances(self) -> list[InstanceInfo]:
        return [
            InstanceInfo(
                name=r.name,
                state=r.state,
                endpoint=r.endpoint,
                vcpus=r.vcpus,
                launched_at=r.launched_at,
                ready_at=r.ready_at,
                details=dict(r.details),
            )
            for r in self._rows()
        ]

    def endpoints(self) -> list[dict[str, str]]:
        return [{"name": r.name, "url": r.endpoint} for r in self._rows() if r.state == _READY]

    def set_desired(self, count: int, actor: str) -> GroupStatus:
        raise NotLeaderError("this controller is a standby: the desired count is set at the leader")

    def set_paused(self, paused: bool, actor: str) -> GroupStatus:
        raise NotLeaderError("this controller is a standby: pause and resume at the leader")

    def history(self, since: float | None = None) -> list[dict[str, Any]]:
        return []  # tick records exist only in the leader's memory

    def decisions(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._store.decisions(self._name, limit)

    def hosts(self) -> list[HostInfo]:
        """The configured hosts as the store has them: the operators' wishes (cordoned, draining)
        and which of the group's live instances the leader placed on each. Their state is
        "cordoned" or "draining" as wished, else "unknown": whether a host answers, and libvirt's
        figures, only the leader knows (it watches the hosts; a standby connects to none)."""
        if not self._hosts:
            return []
        wishes = {w.host: w for w in self._store.host_wishes()}
        on: dict[str, list[str]] = {}
        for r in self._rows():
            if r.state in _LIVE and (host := r.details.get("host")):
                on.setdefault(host, []).append(r.name)
        infos = []
        for h in self._hosts:
            w = wishes.get(h.name)
            cordoned, draining = (w.cordoned, w.draining) if w is not None else (h.cordoned, False)
            infos.append(
                HostInfo(
                    name=h.name,
                    state="draining" if draining else "cordoned" if cordoned else "unknown",
                    uri=h.uri,
                    labels=dict(h.labels),
                    instances=sorted(on.get(h.name, [])),
                    wish=None if w is None else w.view(),
                    activity=AT_LEADER,
                )
            )
        return infos

    def host_action(self, name: str, action: str, actor: str) -> HostInfo:
        raise NotLeaderError(f"this controller is a standby: {action} {name} at the leader")
