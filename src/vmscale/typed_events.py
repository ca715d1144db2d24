"""Typed events: one frozen dataclass per kind, published on the event bus as ``(TYPE, to_data())``.

The integrations (metric sources, lifecycle hooks, decision webhooks, notifiers) report what they
did through a ``Publish`` callable they are given, so they never know about the bus, and tests
collect the very objects::

    seen: list[TypedEvent] = []
    hooks = LifecycleHooks(configs, publish=seen.append)
    ...
    bus_publisher(service.events)       # what the composition root passes instead

Subscribers of the bus (SSE, the JSONL log, the dashboard) see ``type`` and a plain ``data`` dict,
the same shape as every other event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class TypedEvent:
    TYPE: ClassVar[str] = "event"

    def to_data(self) -> dict[str, Any]:
        return asdict(self)


Publish = Callable[[TypedEvent], None]


class _Bus(Protocol):
    def publish(self, type_: str, data: dict[str, Any]) -> Any: ...


def bus_publisher(bus: _Bus) -> Publish:
    """A ``Publish`` that puts each event on ``bus`` (``vmscale.events.EventBus``); thread-safe as
    the bus is, so workers may publish from their own threads."""

    def publish(event: TypedEvent) -> None:
        bus.publish(event.TYPE, event.to_data())

    return publish


def discard(event: TypedEvent) -> None:
    """A ``Publish`` that drops everything (the default where nobody listens)."""
