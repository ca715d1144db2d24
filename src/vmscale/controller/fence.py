"""Leadership checks in front of every call that changes the world.

Several `vmscale up` processes may share a store; one leads (``vmscale.leader``), and only the leader
may launch, terminate, pause, resume, call the user's hooks or change the balancer. Three lines of
defence, from the cheapest to the most certain:

* ``Fence.check`` — a local check on the monotonic clock (the elector's ``is_leader``: leading and
  within its renew deadline *now*). Every tick starts with it, every action runs it before it
  records anything (``Actions``, ``Membership``), and ``Operations`` runs it again in the worker
  thread right before the provider is called, so a call queued before the loss never starts.
* The fenced store: every record the controller writes goes through ``store.fenced(lease)``, which
  refuses it once another controller has taken the lease (``FencedError``). ``Actions`` records a
  step before it calls the provider, so a refused record also stops the call. Where no record
  precedes a call in the same step (a park, a repeated terminate, the user's hooks, the balancer
  sync), ``Fence.confirm`` asks the store once (``Store.check_fence``).
* The provider's own records: every instance carries the epoch it was launched under
  (``InstanceSpec.epoch``, reported in ``details["epoch"]``). ``FencedLifecycle`` raises when it
  lists, or a launch finds, an instance of a NEWER epoch than this controller's: another controller
  leads, whatever this one's clock and store say.

Each check raises ``NotLeaderError`` (``FencedError`` is one too); the loop ends the term on it and
the controller stands by (``vmscale.leadership``). ``Unfenced`` is the fence of a controller with no
rivals (tests, simulations): every check passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

from vmscale.errors import NotLeaderError
from vmscale.providers.base import InstanceSpec, Lifecycle, ProviderInstance, ProviderRoles


class Fence(Protocol):
    @property
    def epoch(self) -> int:
        """The term this controller leads in (0: no election); stamped on every launch."""
        ...

    def check(self, action: str) -> None:
        """``NotLeaderError`` unless this controller leads right now (local, no I/O)."""
        ...

    def confirm(self, action: str) -> None:
        """``check``, then ask the store whether the lease is still current (one short read)."""
        ...

    def check_epoch(self, name: str, epoch: int) -> None:
        """``NotLeaderError`` if ``name`` was launched under a newer epoch than this controller's."""
        ...


class Unfenced:
    """A controller with no rivals: every check passes."""

    epoch = 0

    def check(self, action: str) -> None:
        pass

    def confirm(self, action: str) -> None:
        pass

    def check_epoch(self, name: str, epoch: int) -> None:
        pass


class LeaseFence:
    """The fence of one term of leadership: the elector's clock check, the fenced store, the epoch."""

    def __init__(self, is_leader: Callable[[], bool], check_store: Callable[[], None], epoch: int) -> None:
        self._is_leader = is_leader
        self._check_store = check_store
        self._epoch = epoch

    @property
    def epoch(self) -> int:
        return self._epoch

    def check(self, action: str) -> None:
        if not self._is_leader():
            raise NotLeaderError(f"{action} not done: this controller no longer leads (epoch {self._epoch})")

    def confirm(self, action: str) -> None:
        self.check(action)
        self._check_store()

    def check_epoch(self, name: str, epoch: int) -> None:
        if epoch > self._epoch:
            raise NotLeaderError(
                f"{name} was launched at epoch {epoch}, after this controller's epoch {self._epoch}: "
                "another controller leads"
            )


def epoch_of(details: Mapping[str, str]) -> int:
    """The epoch an instance was launched under, from its provider details (0: before epochs)."""
    value = details.get("epoch", "0")
    return int(value) if value.isdigit() else 0


class FencedLifecycle:
    """A provider's lifecycle that steps down on an instance of a newer epoch, whether ``list``
    reports it or a ``launch`` finds it already there (adopted, not made). The leadership check
    before each call is ``Operations``' (it runs every call)."""

    def __init__(self, inner: Lifecycle, fence: Fence) -> None:
        self._inner = inner
        self._fence = fence
        self.kind = inner.kind

    def launch(self, spec: InstanceSpec) -> ProviderInstance:
        made = self._inner.launch(spec)
        self._fence.check_epoch(made.name, epoch_of(made.details))
        return made

    def terminate(self, name: str, *, graceful_timeout_s: float = 10.0) -> None:
        self._inner.terminate(name, graceful_timeout_s=graceful_timeout_s)

    def list(self, group: str) -> list[ProviderInstance]:
        listed = self._inner.list(group)
        for p in listed:
            self._fence.check_epoch(p.name, epoch_of(p.details))
        return listed

    def close(self) -> None:
        self._inner.close()


def fenced_roles(roles: ProviderRoles, fence: Fence) -> ProviderRoles:
    """``roles`` whose lifecycle watches the provider's epochs. (Every call of every role is
    checked by ``Operations`` before it starts; a role added later, such as resize or migrate, is
    fenced by being started through ``Operations`` too.)"""
    return replace(roles, lifecycle=FencedLifecycle(roles.lifecycle, fence))
