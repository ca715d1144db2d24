"""The group's golden snapshot as operators see it: being made, ready (which, how large), or failed.

With ``launch = "clone"`` the controller asks the provider, once at start and on a worker, to make
the group's golden snapshot (``Cloner.prepare``: a guest booted and saved, 20-40 s under TCG), so the
first scale-up restores a clone instead of waiting for it. Until this existed the only trace of
that was an error when it failed: an operator could not tell whether the first scale-up would take
a second or forty. ``GoldenTracker`` owns that answer (``vmscale status`` shows it, the API's group
status carries it) and publishes a ``golden`` event at each change (in the event log, the SSE
stream and ``vmscale logs`` like any other event).

A failure is not fatal: the group serves on, and the first clone launch makes the golden itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from vmscale.controller.operations import OpKind, OpResult
from vmscale.event_kinds import FieldsEvent, Publish
from vmscale.providers.base import GoldenSnapshot

log = logging.getLogger("vmscale.controller")

Stage = Literal["making", "ready", "failed"]


@dataclass(frozen=True, slots=True)
class GoldenChanged(FieldsEvent):
    """``golden``: the group's golden snapshot is being made, is ready (``made_now`` False: one
    made by an earlier run was found complete), or could not be made (``error``)."""

    TYPE: ClassVar[str] = "golden"
    stage: Stage
    key: str = ""
    size_mb: float = 0.0
    boot_s: float = 0.0
    save_s: float = 0.0
    made_now: bool = False
    error: str = ""


class GoldenTracker:
    """One group's golden as last heard of. The loop changes it; API reads take ``view()`` from
    another thread, so each change swaps in a whole new dictionary (one assignment)."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._view: dict[str, Any] | None = None  # None: the group has not asked for one

    def view(self) -> dict[str, Any] | None:
        """For the group status: the stage, since when, and the golden (or why there is none)."""
        return None if self._view is None else dict(self._view)

    def making(self, now_wall: float) -> None:
        self._view = {"state": "making", "since": now_wall}
        self._publish(GoldenChanged("making"))

    def collected(self, results: Iterable[OpResult], now_wall: float) -> None:
        """The prepare call's result among a tick's finished calls (the error itself is reported
        by the reconciler, like any failed provider call)."""
        for r in results:
            if r.kind is not OpKind.PREPARE:
                continue
            if r.error is not None:
                self._failed(f"{type(r.error).__name__}: {r.error}", now_wall)
            else:
                self._ready(r.value, now_wall)

    def _ready(self, golden: GoldenSnapshot | None, now_wall: float) -> None:
        if golden is None:  # the provider boots every instance after all: nothing to show
            self._view = None
            return
        self._view = {"state": "ready", "since": now_wall, **golden.to_dict()}
        log.info(
            "golden snapshot %s %s: %.0f MiB (booted in %.1f s, saved in %.1f s)",
            golden.key, "made" if golden.made_now else "found ready", golden.size_mb, golden.boot_s,
            golden.save_s,
        )  # fmt: skip
        self._publish(
            GoldenChanged("ready", golden.key, golden.size_mb, golden.boot_s, golden.save_s, golden.made_now)
        )

    def _failed(self, error: str, now_wall: float) -> None:
        self._view = {
            "state": "failed",
            "since": now_wall,
            "error": error,
            "next": "the first clone launch makes it",
        }
        self._publish(GoldenChanged("failed", error=error))
