"""Everything outside the instances that the controller asks or tells, built once from the config.

The controller talks to the outside world at five moments, and each call here returns at once
(the work runs on threads of its own, with timeouts and bounded queues):

    ext = integrations.external_metrics(ready_names)       # each full tick, before deciding
    integrations.decided(decision, actor="policy")          # each applied decision
    fut = integrations.lifecycle("launch", subject)         # health passed, before rotation
    integrations.instance_ready(name, endpoint)             # it entered rotation
    integrations.endpoints_changed(targets)                 # the ready set changed
    fut = integrations.lifecycle("terminate", subject)      # drained, before destroy
    integrations.close(group_removed=True)                  # at shutdown

With nothing configured every call is a no-op (and ``lifecycle`` a done future saying
continue), so the controller needs no ``if configured`` branches. See the README section
"Metrics from Prometheus, hooks and notifications" for what the controller does with the results.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, Future

from vmscale.clock import Clock, SystemClock
from vmscale.config.hooks import HookPhase
from vmscale.config.schema import VmscaleConfig
from vmscale.event_kinds import Publish, discard
from vmscale.hooks import DecisionWebhooks, HookSubject, LifecycleHooks, PhaseResult
from vmscale.metrics_sources import ExternalMetrics, SourcePoller, build_sources
from vmscale.model import Decision, Direction
from vmscale.notify.file_sd import FileSdWriter, ScrapeTarget
from vmscale.notify.original import OriginalClientNotifier


class Integrations:
    def __init__(
        self,
        cfg: VmscaleConfig,
        *,
        executor: Executor,
        publish: Publish = discard,
        clock: Clock | None = None,
    ) -> None:
        """Build every configured piece. Raises ``ConfigError`` (one line, naming the setting) when
        something only known at start is missing, e.g. the original client's authkey variable."""
        clock = clock or SystemClock()
        self.group = cfg.group.name
        self.metrics = SourcePoller(build_sources(cfg.metrics.sources, clock), executor, clock, publish)
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

    def decided(self, decision: Decision, actor: str = "policy") -> None:
        """An applied decision: decision webhooks, and the original client on a scale-up."""
        if decision.direction is Direction.NONE:
            return
        self.webhooks.notify(self.group, decision.to_dict(), actor)
        if self.original is not None and decision.direction is Direction.UP:
            self.original.scale_up_decided(decision.desired, decision.current)

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
        self.hooks.close()
        self.webhooks.close()
        original = getattr(self, "original", None)
        if original is not None:
            original.close()
