"""A live process group with the integrations the event bus drives (no controller changes needed):
a scale-up and a scale-in reach a decision webhook; the original client, listening the way the seed
experiment's did, hears "VM Launching" and "VM Launched" with the new instance's URL and sends it a
request the new instance answers; the file_sd file follows the ready set and is emptied at the end."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.integration.live_support import live_config_data, running_service, scale_and_wait
from tests.integration.original_support import AUTHKEY, original_client, two_ports
from tests.integration.webhook_support import webhook_server
from tests.support.wait import wait_until
from vmscale.config import parse_config


def sd_instances(path: Path) -> set[str]:
    try:
        return {e["labels"]["vmscale_instance"] for e in json.loads(path.read_text())}
    except (OSError, ValueError):
        return set()


def test_a_live_group_tells_the_webhook_the_original_client_and_prometheus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VMSCALE_TEST_ORIGINAL_AUTHKEY", AUTHKEY.decode())
    ports = two_ports()
    sd_path = tmp_path / "sd" / "group.json"
    with webhook_server(200) as receiver, original_client(ports) as client:
        data = live_config_data(tmp_path / "state")
        group = data["group"]["name"]
        data["notify"] = {
            "webhooks": [{"url": receiver.url}],
            "file_sd": {"path": str(sd_path)},
            "original_client": {
                "enabled": True,
                "host": "127.0.0.1",
                "authkey_env": "VMSCALE_TEST_ORIGINAL_AUTHKEY",
                "launching_port": ports[0],
                "launched_port": ports[1],
                "launched": ["VM Launched", "{url}"],
            },
        }
        with running_service(parse_config(data, "live")) as svc:
            wait_until(lambda: sd_instances(sd_path) == {f"{group}-1"}, "the first instance in file_sd", 30)
            scale_and_wait(svc, 2)
            second = next(i for i in svc.controller.instances() if i.name != f"{group}-1")
            wait_until(lambda: len(client.servers) == 2, "the original client to add the new server", 60)
            assert client.heard[ports[0]] == ["VM Launching"]
            assert client.heard[ports[1]] == ["VM Launched", second.endpoint]
            # The original client's request, to the URL it was told, answered by the new instance.
            body = httpx.get(f"{client.servers[1]}/20", timeout=30).json()
            assert body == {"input": 20, "result": 6765, "server": second.name}
            wait_until(lambda: len(sd_instances(sd_path)) == 2, "both instances in file_sd", 30)
            scale_and_wait(svc, 1)
            wait_until(lambda: receiver.count() == 2, "the scale-in decision at the webhook", 30)
        assert sd_instances(sd_path) == set(), "the group was removed: Prometheus must stop scraping it"
    up, down = (b["decision"] for b in receiver.received)
    assert (up["direction"], up["desired"], up["actor"]) == ("up", 2, "test")
    assert (down["direction"], down["desired"]) == ("down", 1)
