"""Everything outside the instances that the controller asks or tells, built once from the config.

The outside world hears of a group at five moments; each call here returns at once (the work
runs on threads of its own, with timeouts and bounded queues):

    ext = integrations.external_metrics(ready_names)       # each full tick, before deciding
    integrations.decided(applied)                           # each applied decision
    fut = integrations.lifecycle("launch", subject)         # health passed, before rotation
    integrations.instance_ready(name, endpoint)             # it entered rotation
    integrations.endpoints_changed(targets)                 # the ready set changed
    fut = integrations.lifecycle("terminate", subject)      # drained, before destroy
    integrations.close(group_removed=True)                  # at shutdown

Three of them are events the controller publishes anyway, so ``on_event`` (an event-bus listener,
which ``Service`` registers) takes care of them: decisions, instances entering rotation, endpoint
changes. External metrics and lifecycle hooks are asked by the controller itself (they change
what it does). With nothing configured every call is a no-op, and ``lifecycle`` a done future
saying continue, so the controller needs no ``if configured`` branches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from vmscale.clock import Clock, SystemClock
from vmscale.config.hooks import HookPhase
from vmscale.config.schema import VmscaleConfig
from vmscale.event_kinds import DecisionApplied, EndpointsChanged, InstanceTransition, Publish, discard, parse
from vmscale.events import Event
from vmscale.hooks import DecisionWebhooks, HookSubject, LifecycleHooks, PhaseResult
from vmscale.metrics_sources import ExternalMetrics, SourcePoller, build_sources
from vmscale.model import Direction, InstanceState
from vmscale.notify.file_sd import FileSdWriter, ScrapeTarget
from vmscale.notify.original import OriginalClientNotifier


class Integrations:
    def __init__(
        self,
        cfg: VmscaleConfig,
        *,
        executor: Executor | None = None,
        publish: Publish = discard,
        clock: Clock | None = None,
    ) -> None:
        """Build every configured piece. Raises ``ConfigError`` (one line, naming the setting) when
        something only known at start is missing, e.g. the original client's authkey variable.
        ``executor`` runs the metric queries (default: a small pool of its own)."""
        clock = clock or SystemClock()
        self.group = cfg.group.name
        self._own_pool = (
            ThreadPoolExecutor(2, thread_name_prefix="vmscale-metrics") if executor is None else None
        )
        pool = executor or self._own_pool
        assert pool is not None
        self.metrics = SourcePoller(build_sources(cfg.metrics.sources, clock), pool, clock, publish)
        self.hooks = LifecycleHooks(cfg.hooks, publish=publish, clock=clock)
        self.webhooks = DecisionWebhooks(cfg.notify.webhooks, publish=publish, clock=clock)
        self.file_sd = (
            FileSdWriter(cfg.notify.file_sd, self.group, publish) if cfg.notify.file_sd.path else None
        )
        try:
            self.original = (
                OriginalClientNotifier(cfg.notify.original_client, self.group, publish=publish)
                if cfg.notify.original_client.enabled
                else None
            )
        except BaseException:
            self.close(group_removed=False)
            raise

    def external_metrics(self, instances: Sequence[str]) -> ExternalMetrics:
        """This tick's external metric values and "no data" notes (see ``SourcePoller.poll``)."""
        return self.metrics.poll(instances)

    def on_event(self, event: Event) -> None:
        """Event-bus listener: applied decisions, instances entering rotation and endpoint changes
        reach the webhooks, the original client and the file_sd file. Quick: queue appends, and
        a small file write when the ready set changed."""
        kind = parse(event.type, event.data)
        if isinstance(kind, DecisionApplied):
            self.decided(kind)
        elif isinstance(kind, InstanceTransition) and kind.dst == InstanceState.READY.value:
            self.instance_ready(kind.name, kind.endpoint)
        elif isinstance(kind, EndpointsChanged):
            self.endpoints_changed(ScrapeTarget(e.name, e.url) for e in kind.endpoints)

    def decided(self, applied: DecisionApplied) -> None:
        """An applied scale decision: decision webhooks, and the original client on a scale-up.
        Pause and resume, and decisions that change nothing, are not sent."""
        if applied.action != "scale" or applied.direction == Direction.NONE.value:
            return
        self.webhooks.notify(self.group, applied.to_dict(), applied.actor)
        if self.original is not None and applied.direction == Direction.UP.value:
            self.original.scale_up_decided(applied.desired, applied.previous)

    def lifecycle(self, phase: HookPhase, subject: HookSubject) -> Future[PhaseResult]:
        return self.hooks.submit(phase, subject)

    def instance_ready(self, name: str, endpoint: str) -> None:
        if self.original is not None:
            self.original.instance_ready(name, endpoint)

    def endpoints_changed(self, targets: Iterable[ScrapeTarget]) -> None:
        if self.file_sd is not None:
            self.file_sd.update(targets)

    def close(self, *, group_removed: bool) -> None:
        """Stop every worker; with ``group_removed`` the file_sd file is emptied too (Prometheus
        stops scraping instances that no longer exist; kept when the instances are kept)."""
        if group_removed and self.file_sd is not None:
            self.file_sd.clear()
        self.metrics.close()
        if self._own_pool is not None:
            self._own_pool.shutdown(wait=False, cancel_futures=True)
        self.hooks.close()
        self.webhooks.close()
        original = getattr(self, "original", None)
        if original is not None:
            original.close()
