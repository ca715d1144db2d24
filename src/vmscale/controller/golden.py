"""The group's golden snapshot as operators see it: being made, ready (which, how large), or failed.

With ``launch = "clone"`` the controller asks the provider, once at start and on a worker, to make
the group's golden snapshot (``Cloner.prepare``: a guest booted and saved, 20-40 s under TCG), so the
first scale-up restores a clone instead of waiting for it. Until this existed the only trace of
that was an error when it failed: an operator could not tell whether the first scale-up would take
a second or forty. ``GoldenTracker`` owns that answer (``vmscale status`` shows it, the API's group
status carries it) and publishes a ``golden`` event at each change (in the event log, the SSE
stream and ``vmscale logs`` like any other event).

A failure is not fatal: the group serves on, the first clone launch makes the golden itself, and
the check is made again (backing off). Once there is one, it is checked every ``RECHECK_S``, which
also makes a new golden ahead when the image changed under a running group.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from vmscale.controller.backoff import Backoff
from vmscale.controller.operations import OpKind, OpResult
from vmscale.errors import PermanentProviderError
from vmscale.event_kinds import FieldsEvent, Publish
from vmscale.providers.base import GoldenSnapshot

log = logging.getLogger("vmscale.controller")

Stage = Literal["making", "ready", "failed"]
# How often a clone group asks again for its golden. The key of a golden changes with the image
# (and the guest's size, workload...): after `vmscale image build` under a running group, the new
# golden is made within this long, on a worker, instead of by the next scale-up (20-40 s under TCG).
RECHECK_S = 60.0
# After failures the check backs off (60, 120, 240 s...) up to this: a golden that cannot boot (a
# broken image) would otherwise cost a guest's boot every minute. A clone launch still tries at once.
RECHECK_MAX_S = 1800.0


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
    """One group's golden as last heard of, and when to ask for it again. The loop changes it; API
    reads take ``view()`` from another thread, so each change swaps in a whole new dictionary (one
    assignment)."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._view: dict[str, Any] | None = None  # None: the group has not asked for one
        self._asks = False  # this group makes goldens (its provider restores clones)
        self._next_check = math.inf  # monotonic; set from each answer (none while one is awaited)
        self._retry = Backoff(RECHECK_S, RECHECK_MAX_S)

    def view(self) -> dict[str, Any] | None:
        """For the group status: the stage, since when, and the golden (or why there is none)."""
        return None if self._view is None else dict(self._view)

    def start(self, prepare: Callable[[], bool], now_wall: float) -> None:
        """At start: have the golden made ahead (``prepare`` starts the provider call on a worker,
        False when the group boots every instance)."""
        if prepare():
            self._asks = True
            self._view = {"state": "making", "since": now_wall}
            self._publish(GoldenChanged("making"))

    def recheck(self, prepare: Callable[[], bool], now: float) -> None:
        """On full ticks: ask again when due (``RECHECK_S`` after a golden was found or made, later
        and later after failures). The provider only looks at a file when nothing changed, and
        makes the new golden when the image (or anything else in its key) did."""
        if self._asks and now >= self._next_check and prepare():
            self._next_check = math.inf

    def collected(self, results: Iterable[OpResult], now_wall: float, now: float) -> None:
        """The prepare call's result among a tick's finished calls (the error itself is reported
        by the reconciler, like any failed provider call)."""
        for r in results:
            if r.kind is not OpKind.PREPARE:
                continue
            if r.error is not None:
                self._retry = self._retry.failed(now, permanent=isinstance(r.error, PermanentProviderError))
                self._next_check = self._retry.next_at
                self._failed(f"{type(r.error).__name__}: {r.error}", now_wall)
            else:
                self._retry = self._retry.succeeded()
                self._next_check = now + RECHECK_S
                self._ready(r.value, now_wall)

    def _ready(self, golden: GoldenSnapshot | None, now_wall: float) -> None:
        if golden is None:  # the provider boots every instance after all: nothing to show or ask
            self._view, self._asks = None, False
            return
        shown = self._view or {}
        if shown.get("state") == "ready" and (shown.get("key"), shown.get("made_at")) == (
            golden.key,
            golden.made_at,
        ):
            return  # a re-check found the same one (not one made again under the same key): no news
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
        retry = f"tried again in {self._retry.delay_s:g} s; a clone launch meanwhile makes it"
        shown = self._view or {}
        if shown.get("state") == "failed" and shown.get("error") == error:
            self._view = {**shown, "next": retry}  # the same failure again: no news, a later retry
            return
        self._view = {"state": "failed", "since": now_wall, "error": error, "next": retry}
        self._publish(GoldenChanged("failed", error=error))
