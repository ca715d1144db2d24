"""Decision webhooks: every scale decision POSTed as JSON to the configured URLs, fire and forget.

    webhooks = DecisionWebhooks(cfg.notify.webhooks, publish=bus_publisher(events))
    webhooks.notify("web", decision.to_dict(), actor="policy")    # returns at once, always

Each URL has its own queue and its own worker thread, so a slow or dead receiver delays nobody
else and never the controller: ``notify`` only appends to the queues. A queue holds at most
``queue_size`` notifications; when it is full the *oldest* is dropped (the newest decision is the
one worth knowing) and the drop is counted and published. A failed delivery (no answer in time,
connection refused, 5xx, 408 or 429) is retried ``retries`` times with back-off doubling from
``backoff_s``; other 4xx answers are not retried (the receiver refused it and will again). Every
delivery ends in a ``WebhookDelivery`` event: delivered, failed (with the attempts) or dropped.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import httpx

from vmscale.clock import Clock, SystemClock
from vmscale.config.hooks import DecisionWebhookConfig
from vmscale.event_kinds import FieldsEvent, Publish, discard
from vmscale.hooks.http import Answer, Outcome, http_client, post_json

RETRYABLE_STATUS = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class WebhookDelivery(FieldsEvent):
    TYPE: ClassVar[str] = "webhook"
    url: str
    outcome: Literal["delivered", "failed", "dropped"]
    attempts: int = 0
    status: int | None = None
    error: str = ""
    dropped_total: int = 0


def worth_retrying(answer: Answer) -> bool:
    if answer.outcome in (Outcome.TIMED_OUT, Outcome.ERROR):
        return True
    return answer.status is not None and (answer.status >= 500 or answer.status in RETRYABLE_STATUS)


class _Target:
    """One URL: its bounded queue and the thread that empties it."""

    def __init__(
        self,
        cfg: DecisionWebhookConfig,
        publish: Publish,
        stop: threading.Event,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.cfg = cfg
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.dropped = 0
        self.delivered = 0
        self._busy = False  # a delivery (with its retries) is under way
        self._publish = publish
        self._stop = stop
        self._cond = threading.Condition()
        self._client = http_client(cfg.timeout_s, transport)
        self.thread = threading.Thread(target=self._run, name="vmscale-webhook", daemon=True)

    def offer(self, body: dict[str, Any]) -> None:
        with self._cond:
            if len(self.queue) >= self.cfg.queue_size:
                self.queue.popleft()
                self.dropped += 1
                dropped = self.dropped
            else:
                dropped = 0
            self.queue.append(body)
            self._cond.notify()
        if dropped:
            self._publish(WebhookDelivery(self.cfg.url, "dropped", dropped_total=dropped))

    def idle(self) -> bool:
        with self._cond:
            return not self.queue and not self._busy

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self.queue and not self._stop.is_set():
                    self._cond.wait(timeout=0.5)
                if self._stop.is_set():
                    return
                body = self.queue.popleft()
                self._busy = True
            try:
                self._deliver(body)
            finally:
                with self._cond:
                    self._busy = False

    def _deliver(self, body: dict[str, Any]) -> None:
        delay = self.cfg.backoff_s
        attempts = 0
        while True:
            attempts += 1
            answer = post_json(self._client, self.cfg.url, body, token_file=self.cfg.token_file)
            if answer.outcome is Outcome.SUCCEEDED:
                self.delivered += 1
                self._publish(WebhookDelivery(self.cfg.url, "delivered", attempts, answer.status))
                return
            if attempts > self.cfg.retries or not worth_retrying(answer) or self._stop.wait(delay):
                self._publish(
                    WebhookDelivery(self.cfg.url, "failed", attempts, answer.status, error=answer.detail)
                )
                return
            delay *= 2

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        self._client.close()


class DecisionWebhooks:
    def __init__(
        self,
        configs: Sequence[DecisionWebhookConfig],
        *,
        publish: Publish = discard,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._stop = threading.Event()
        self.targets = [_Target(c, publish, self._stop, transport) for c in configs]
        for t in self.targets:
            t.thread.start()

    def notify(self, group: str, decision: Mapping[str, Any], actor: str = "policy") -> None:
        """Queue ``decision`` (a ``Decision.to_dict()``) for every URL that wants its direction.
        Never blocks, never raises."""
        direction = str(decision.get("direction", ""))
        body = {
            "type": "decision",
            "group": group,
            "actor": actor,
            "time": self._clock.now(),
            "decision": dict(decision),
        }
        for t in self.targets:
            if direction in t.cfg.directions:
                t.offer(body)

    def idle(self) -> bool:
        """Nothing queued or being delivered (for tests and a graceful stop)."""
        return all(t.idle() for t in self.targets)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the workers (a delivery in progress ends at its timeout; the rest are dropped)."""
        self._stop.set()
        for t in self.targets:
            t.wake()
        for t in self.targets:
            t.thread.join(timeout=timeout_s)
            t.close()
