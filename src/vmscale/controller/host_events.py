"""The events of the host step, one frozen dataclass each (their wire form is their fields).

=============  ===================  ===================================================================
``type``       class                when
=============  ===================  ===================================================================
``placement``  ``PlacementChosen``   a launch chose its host: "web-7 on h2: spread, h1 has 3 ..."
``host``       ``HostChanged``       a host's state or wish changed, a drain or a consolidation round
                                     began or ended, a copy was fenced, a host was left empty, the
                                     command for an empty host ran
``migration``  ``MigrationStep``     a live migration started, progressed, finished or failed
=============  ===================  ===================================================================

Each carries ``message``, one sentence a person reads (``vmscale logs`` prints it as it is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vmscale.event_kinds import FieldsEvent


@dataclass(frozen=True, slots=True)
class PlacementChosen(FieldsEvent):
    TYPE: ClassVar[str] = "placement"
    instance: str
    host: str  # empty when no host could take it
    message: str


@dataclass(frozen=True, slots=True)
class HostChanged(FieldsEvent):
    TYPE: ClassVar[str] = "host"
    host: str
    # cordoned, uncordoned, drain-started, drain-done, not-answering, unreachable, up, fenced,
    # consolidation, empty, command
    what: str
    message: str
    actor: str = ""
    instance: str = ""
    stayed: tuple[str, ...] = ()  # drain-done: the instances still on the host (they serve on there)


@dataclass(frozen=True, slots=True)
class MigrationStep(FieldsEvent):
    TYPE: ClassVar[str] = "migration"
    instance: str
    src: str
    dst: str
    phase: str  # started, progress, done, failed
    why: str  # drain, consolidation
    message: str
    fraction: float | None = None
    elapsed_s: float = 0.0
    total_ms: int | None = None  # libvirt's figures of the finished job
    downtime_ms: int | None = None
