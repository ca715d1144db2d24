"""Live migrations the controller runs: one at a time per group, each an asynchronous provider call
(``OpKind.MIGRATE``) so the instance is busy meanwhile and the loop never waits.

An instance being migrated stays ``ready`` and in rotation: with vmscale-assigned addresses on a
bridge its address moves with it and its connections survive the switch-over. If a migration ever
gave it a new address, the balancer follows on the same tick (``Membership.sync`` repairs a server
whose address changed). A migration that fails leaves the instance where it was, serving; the
failure is reported and the caller (a drain, a consolidation round) decides what comes next.

Progress comes from the provider on a worker thread: the latest is kept for ``vmscale hosts``
(``current``) and published as an event at most once a second.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from functools import partial

from vmscale.clock import Clock
from vmscale.controller.fleet import Facts, Instance
from vmscale.controller.host_events import MigrationStep
from vmscale.controller.operations import Operations, OpKind, OpResult
from vmscale.controller.records import StoreRecorder
from vmscale.controller.reporting import ErrorReporter
from vmscale.event_kinds import Publish
from vmscale.model import InstanceState
from vmscale.providers.base import Migrator, ProviderInstance
from vmscale.providers.migration import MigrationProgress

PROGRESS_EVERY_S = 1.0  # at most one progress event per second


@dataclass(frozen=True, slots=True)
class Seat:
    """One of the group's instances where the controller's record puts it (what drains and
    consolidation plan over)."""

    name: str
    host: str
    state: InstanceState
    vcpus: int = 1
    pool: bool = False  # launched for, or parked in, the warm pool
    busy: bool = False  # a provider call for it is running


@dataclass(frozen=True, slots=True)
class Move:
    name: str
    src: str
    dst: str
    why: str  # "drain" or "consolidation"
    note: str = ""  # why this destination (the placement's explanation)


@dataclass(frozen=True, slots=True)
class Moving:
    """The migration running now, as last reported."""

    move: Move
    started: float  # monotonic
    fraction: float | None = None
    elapsed_s: float = 0.0
    reported_at: float = 0.0  # monotonic: when the last progress event went out


@dataclass(frozen=True, slots=True)
class Moved:
    move: Move
    ok: bool
    detail: str  # the failure, or libvirt's figures


class Migrations:
    def __init__(
        self,
        ops: Operations,
        migrator: Migrator,
        recorder: StoreRecorder,
        publish: Publish,
        report: ErrorReporter,
        clock: Clock,
        *,
        timeout_s: float | None = None,
    ) -> None:
        self._ops = ops
        self._migrator = migrator
        self._recorder = recorder
        self._publish = publish
        self._report = report
        self._clock = clock
        self._timeout_s = timeout_s
        self._current: Moving | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> Moving | None:
        return self._current

    @property
    def busy(self) -> bool:
        return self._current is not None

    def start(self, inst: Instance, move: Move) -> None:
        now = self._clock.monotonic()
        with self._lock:
            self._current = Moving(move, now, reported_at=now)
        self._publish(
            MigrationStep(
                move.name,
                move.src,
                move.dst,
                "started",
                move.why,
                f"moving {move.name} from {move.src} to {move.dst} ({move.why}) by live migration; "
                f"it keeps serving" + (f": {move.note}" if move.note else ""),
            )
        )
        call = partial(
            self._migrator.migrate, move.name, move.dst, progress=self._progress, timeout_s=self._timeout_s
        )
        self._ops.start(inst.name, OpKind.MIGRATE, now, call)

    def _progress(self, p: MigrationProgress) -> None:
        """From the worker thread running the migration."""
        now = self._clock.monotonic()
        with self._lock:
            moving = self._current
            if moving is None or moving.move.name != p.name:
                return
            due = now - moving.reported_at >= PROGRESS_EVERY_S
            at = now if due else moving.reported_at
            self._current = replace(moving, fraction=p.fraction, elapsed_s=p.elapsed_s, reported_at=at)
        if due:
            m = moving.move
            done = f"{p.fraction:.0%} copied" if p.fraction is not None else "starting"
            self._publish(
                MigrationStep(
                    m.name, m.src, m.dst, "progress", m.why,
                    f"moving {m.name} to {m.dst}: {done} after {p.elapsed_s:.1f} s",
                    fraction=p.fraction, elapsed_s=p.elapsed_s,
                )
            )  # fmt: skip

    def finished(self, inst: Instance | None, r: OpResult) -> Moved | None:
        """The migration call of ``r`` ended: record where the instance is now, or report why not."""
        with self._lock:
            moving, self._current = self._current, None
        if moving is None:
            return None
        m = moving.move
        elapsed = self._clock.monotonic() - moving.started
        if r.error is not None:
            detail = str(r.error)
            self._report.provider_error("migrate", r.error, m.name)
            self._publish(
                MigrationStep(
                    m.name, m.src, m.dst, "failed", m.why,
                    f"migration of {m.name} from {m.src} to {m.dst} failed; it stays on {m.src}, serving: "
                    f"{detail}",
                    elapsed_s=elapsed,
                )
            )  # fmt: skip
            return Moved(m, False, detail)
        value: ProviderInstance = r.value
        if inst is not None:
            inst.facts = Facts(value.endpoint or inst.facts.endpoint, inst.facts.vcpus, dict(value.details))
            self._recorder.save(inst)  # its host, in the store, before anything else acts on it
        total = _int(value.details.get("migration_total_ms"))
        downtime = _int(value.details.get("migration_downtime_ms"))
        figures = f"libvirt: {total} ms in all, {downtime} ms paused" if total is not None else "no figures"
        self._publish(
            MigrationStep(
                m.name, m.src, m.dst, "done", m.why,
                f"{m.name} moved from {m.src} to {m.dst} in {elapsed:.1f} s ({figures}); "
                f"it serves at {value.endpoint}",
                fraction=1.0, elapsed_s=elapsed, total_ms=total, downtime_ms=downtime,
            )
        )  # fmt: skip
        return Moved(m, True, figures)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
