"""The calls the controller makes, in the order it makes them, on every integration built from one
config: external metrics, decision webhooks, lifecycle hooks, the original client's messages and
the file_sd file. Each call returns at once; the effects arrive on their own threads."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.original_support import AUTHKEY, original_client, two_ports
from tests.integration.webhook_support import webhook_server
from tests.support.wait import wait_until
from vmscale.config import parse_config
from vmscale.errors import ConfigError
from vmscale.event_kinds import DecisionApplied, EventKind
from vmscale.hooks import HookCalled, HookSubject
from vmscale.integrations import Integrations
from vmscale.notify.file_sd import ScrapeTarget
from vmscale.ports import free_port


def test_a_group_lifetime_through_the_integrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORIGINAL_AUTHKEY_TEST", AUTHKEY.decode())
    ports = two_ports()
    sd_path = tmp_path / "sd.json"
    seen: list[EventKind] = []
    with webhook_server(200) as receiver, original_client(ports) as client:
        cfg = parse_config(
            {
                "group": {"name": "web"},
                "metrics": {
                    "prometheus": [{"name": "queue", "url": f"http://127.0.0.1:{free_port()}", "query": "q"}]
                },
                "policies": [{"kind": "target", "metric": "queue", "target": 5}],
                "hooks": {"launch": [{"name": "ok", "command": ["true"]}]},
                "notify": {
                    "webhooks": [{"url": receiver.url}],
                    "file_sd": {"path": str(sd_path)},
                    "original_client": {
                        "enabled": True,
                        "authkey_env": "ORIGINAL_AUTHKEY_TEST",
                        "launching_port": ports[0],
                        "launched_port": ports[1],
                        "launched": ["VM Launched", "{url}"],
                    },
                },
            }
        )
        with ThreadPoolExecutor(4) as pool:
            integ = Integrations(cfg, executor=pool, publish=seen.append)
            try:
                # A tick: Prometheus is down, so the metric has no data and says why.
                wait_until(
                    lambda: (
                        "cannot reach Prometheus" in integ.external_metrics(["web-1"]).notes.get("queue", "")
                    ),
                    "the metric's no-data note",
                    30,
                )
                # A scale-up: the webhook and the original client hear of it (a decision that
                # changes nothing is not sent).
                integ.decided(DecisionApplied(2, 1, "up", "queue 12 over target 5", "target", "autoscaler"))
                integ.decided(DecisionApplied(2, 2, "none", "paused", "", "alice", action="paused"))
                # The new instance passes its health check: launch hooks, then rotation.
                subject = HookSubject("web", "web-2", "http://127.0.0.1:18102")
                phase = integ.lifecycle("launch", subject).result(timeout=30)
                assert phase.result == "continue"
                integ.instance_ready("web-2", subject.endpoint)
                integ.endpoints_changed(
                    [ScrapeTarget("web-1", "http://127.0.0.1:18101"), ScrapeTarget("web-2", subject.endpoint)]
                )
                assert integ.lifecycle("terminate", subject).result(timeout=5).calls == ()  # none configured
                wait_until(
                    lambda: receiver.count() == 1 and len(client.servers) == 2, "the notifications", 30
                )
            finally:
                integ.close(group_removed=True)
    (body,) = receiver.received
    assert body["decision"]["direction"] == "up" and body["actor"] == "autoscaler"
    assert client.heard == {ports[0]: ["VM Launching"], ports[1]: ["VM Launched", "http://127.0.0.1:18102"]}
    assert json.loads(sd_path.read_text()) == [], "the file is emptied when the group is removed"
    assert [e.hook for e in seen if isinstance(e, HookCalled)] == ["ok"]
    kinds = {e.TYPE for e in seen}
    assert {"metric_source", "webhook", "original_client", "hook", "file_sd"} <= kinds


def test_a_missing_authkey_stops_the_start_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_AUTHKEY_VAR", raising=False)
    cfg = parse_config(
        {"notify": {"original_client": {"enabled": True, "authkey_env": "NO_SUCH_AUTHKEY_VAR"}}}
    )
    with pytest.raises(ConfigError) as info:
        Integrations(cfg)
    assert "NO_SUCH_AUTHKEY_VAR is not set" in info.value.problems[0]
