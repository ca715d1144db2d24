"""The controller's record of one instance, and the only place its state changes.

``Managed`` is mutable and private to the controller thread; everything that leaves the
controller (events, the store, the API's view, the policy's snapshot) is a frozen copy.
``transition`` enforces ``vmscale.model.TRANSITIONS``: an illegal move is a bug, so it raises.
"""

from __future__ import annotations

import collections
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from vmscale.model import LIVE_STATES, InstanceSnapshot, InstanceState, Sample, can_transition
from vmscale.store import InstanceRow


class IllegalTransition(RuntimeError):
    pass


@dataclass
class Managed:
    name: str
    index: int
    state: InstanceState
    vcpus: int = 1
    endpoint: str = ""
    warm: bool = False  # destined for, or parked in, the warm pool
    launched_at: float | None = None
    ready_at: float | None = None
    state_since: float = 0.0
    health_failures: int = 0
    inflight: int | None = None
    drain_started: float | None = None
    retry_at: float = 0.0  # earliest time to retry a failed terminate
    error: str = ""
    details: dict[str, str] = field(default_factory=dict)
    samples: collections.deque[Sample] = field(default_factory=lambda: collections.deque(maxlen=4096))
    op: Future[Any] | None = None  # the provider call in flight for this instance, if any
    op_kind: str = ""
    op_started: float = 0.0
    # The scale-up decision this instance answers, for the decision-to-ready histogram.
    wanted_at: float | None = None

    @property
    def busy(self) -> bool:
        return self.op is not None

    @property
    def resuming(self) -> bool:
        """Taken from the warm pool, resume call in flight: capacity that is already on its way."""
        return self.state is InstanceState.WARM and not self.warm

    @property
    def in_group(self) -> bool:
        """Counts toward the group's size (``actual``): live, or on its way back from the warm pool.

        Counting a resuming instance matters: a resume from a saved pool takes a second, and a tick
        that missed it would launch a second, cold instance for the same decision.
        """
        return not self.warm and (self.state in LIVE_STATES or self.resuming)

    @property
    def host_port(self) -> tuple[str, int] | None:
        if not self.endpoint:
            return None
        parts = urlsplit(self.endpoint)
        if parts.hostname is None or parts.port is None:
            return None
        return parts.hostname, parts.port

    def latest_cpu(self) -> float | None:
        for s in reversed(self.samples):
            if s.cpu is not None:
                return s.cpu
        return None

    def transition(self, dst: InstanceState, now: float) -> InstanceState:
        src = self.state
        if src is dst:
            return src
        if not can_transition(src, dst):
            raise IllegalTransition(f"{self.name}: {src.value} -> {dst.value} is not an allowed transition")
        self.state = dst
        self.state_since = now
        return src

    def snapshot(self, since: float) -> InstanceSnapshot:
        return InstanceSnapshot(
            name=self.name,
            # A policy sees a resuming instance as one still starting, which is what it is.
            state=InstanceState.PENDING if self.resuming else self.state,
            vcpus=self.vcpus,
            samples=tuple(s for s in self.samples if s.t >= since),
            launched_at=self.launched_at,
            ready_at=self.ready_at,
        )

    def row(self, group: str) -> InstanceRow:
        return InstanceRow(
            name=self.name,
            group=group,
            index=self.index,
            state=self.state.value,
            endpoint=self.endpoint,
            vcpus=self.vcpus,
            warm=self.warm,
            launched_at=self.launched_at,
            ready_at=self.ready_at,
            details=dict(self.details),
        )
