"""Decision webhooks against a loopback receiver: delivered, retried with back-off after 5xx, not
retried after 4xx, given up when nobody answers, oldest dropped (and counted) when the queue is
full, and `notify` returns at once even while the receiver hangs."""

from __future__ import annotations

from typing import Any

from tests.integration.webhook_support import NEVER, WebhookServer, webhook_server
from tests.support.wait import wait_until
from vmscale.config.hooks import DecisionWebhookConfig
from vmscale.event_kinds import EventKind
from vmscale.hooks import DecisionWebhooks, WebhookDelivery
from vmscale.model import Decision, Direction, Figures

UP = Decision(3, Direction.UP, "cpu 92% over target 60%", "target", 2, Figures("cpu", 92.0)).to_dict()
DOWN = Decision(1, Direction.DOWN, "cpu 10% under target 60%", "target", 2).to_dict()


def webhooks(server: WebhookServer, seen: list[EventKind], **cfg: Any) -> DecisionWebhooks:
    settings = {"url": server.url, "timeout_s": 1.0, "backoff_s": 0.05, **cfg}
    return DecisionWebhooks([DecisionWebhookConfig.model_validate(settings)], publish=seen.append)


def deliveries(seen: list[EventKind]) -> list[WebhookDelivery]:
    return [e for e in seen if isinstance(e, WebhookDelivery)]


def test_a_decision_is_delivered_as_json() -> None:
    seen: list[EventKind] = []
    with webhook_server(200) as server:
        hooks = webhooks(server, seen)
        hooks.notify("web", UP, actor="policy")
        wait_until(lambda: deliveries(seen), "the delivery", 30)
        hooks.close()
        (body,) = server.received
    assert body["type"] == "decision" and body["group"] == "web" and body["actor"] == "policy"
    assert body["decision"] == UP and isinstance(body["time"], float)
    assert deliveries(seen) == [WebhookDelivery(server.url, "delivered", attempts=1, status=200)]


def test_directions_filter_what_is_sent() -> None:
    seen: list[EventKind] = []
    with webhook_server(200) as server:
        hooks = webhooks(server, seen, directions=["down"])
        hooks.notify("web", UP)
        hooks.notify("web", DOWN)
        hooks.notify("web", {**UP, "direction": "none"})
        wait_until(lambda: deliveries(seen), "the delivery", 30)
        wait_until(hooks.idle, "the queue to empty", 30)
        hooks.close()
        assert [b["decision"]["direction"] for b in server.received] == ["down"]


def test_5xx_is_retried_with_back_off_until_delivered() -> None:
    seen: list[EventKind] = []
    with webhook_server(200) as server:
        server.script = [503, 500]
        hooks = webhooks(server, seen, retries=3)
        hooks.notify("web", UP)
        wait_until(lambda: deliveries(seen), "the delivery", 30)
        hooks.close()
        assert server.count() == 3
    assert deliveries(seen) == [WebhookDelivery(server.url, "delivered", attempts=3, status=200)]


def test_a_4xx_is_not_retried() -> None:
    seen: list[EventKind] = []
    with webhook_server(404) as server:
        hooks = webhooks(server, seen, retries=3)
        hooks.notify("web", UP)
        wait_until(lambda: deliveries(seen), "the failure", 30)
        hooks.close()
        assert server.count() == 1
    (failed,) = deliveries(seen)
    assert (failed.outcome, failed.attempts, failed.status, failed.error) == ("failed", 1, 404, "HTTP 404")


def test_a_receiver_that_never_answers_is_given_up_after_the_retries() -> None:
    seen: list[EventKind] = []
    with webhook_server(NEVER) as server:
        hooks = webhooks(server, seen, retries=2, timeout_s=0.3)
        hooks.notify("web", UP)
        wait_until(lambda: deliveries(seen), "the failure", 30)
        hooks.close()
        assert server.count() == 3
    (failed,) = deliveries(seen)
    assert failed.outcome == "failed" and failed.attempts == 3 and "no answer" in failed.error


def test_a_full_queue_drops_the_oldest_and_notify_never_blocks() -> None:
    seen: list[EventKind] = []
    with webhook_server(NEVER) as server:
        server.default = NEVER
        hooks = webhooks(server, seen, retries=0, timeout_s=5.0, queue_size=2)
        hooks.notify("web", {**UP, "desired": 100})  # taken by the worker, hangs at the receiver
        wait_until(lambda: server.count() == 1, "the first delivery to be under way", 30)
        for n in range(101, 106):  # 5 more: the queue keeps the newest 2
            hooks.notify("web", {**UP, "desired": n})
        # notify returned while the receiver still holds the first request (it answers nothing for
        # 5 s), so it did not wait for a delivery: the drops are counted, nothing has ended yet.
        assert [d.dropped_total for d in deliveries(seen)] == [1, 2, 3]
        assert server.count() == 1
        server.default = 200
        wait_until(lambda: server.count() == 3, "the kept notifications to arrive", 60)
        wait_until(hooks.idle, "the queue to empty", 30)
        hooks.close()
        assert [b["decision"]["desired"] for b in server.received] == [100, 104, 105]
    dropped = [d for d in deliveries(seen) if d.outcome == "dropped"]
    assert [d.dropped_total for d in dropped] == [1, 2, 3]
