"""The original client, unchanged: a listener written the way the seed experiment's client is
(``multiprocessing.connection.Listener`` with an authkey, one connection per port, "VM Launching"
then "VM Launched") hears both messages from the notifier, takes the new instance's URL, and its
requests (``GET /{n}`` -> ``input``, ``result``, ``server``) are answered by a real fib backend.
Also: a wrong authkey, a listener that is not up yet, one that never completes the handshake."""

from __future__ import annotations

import socket
import threading
import time
from multiprocessing.connection import Listener
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.original_support import AUTHKEY, original_client, two_ports
from tests.integration.test_backend_process import running_backend
from tests.support.wait import wait_until
from vmscale.config.notify import OriginalClientConfig
from vmscale.errors import ConfigError
from vmscale.event_kinds import EventKind
from vmscale.notify.original import OriginalClientNotified, OriginalClientNotifier, read_authkey


def notifier(ports: tuple[int, int], seen: list[EventKind], **cfg: Any) -> OriginalClientNotifier:
    settings = {
        "enabled": True,
        "authkey_env": "ORIGINAL_TEST_AUTHKEY",
        "launching_port": ports[0],
        "launched_port": ports[1],
        "timeout_s": 2.0,
        "retry_for_s": 20.0,
        **cfg,
    }
    return OriginalClientNotifier(
        OriginalClientConfig.model_validate(settings),
        "web",
        publish=seen.append,
        environ={"ORIGINAL_TEST_AUTHKEY": AUTHKEY.decode()},
    )


def sent(seen: list[EventKind]) -> list[OriginalClientNotified]:
    return [e for e in seen if isinstance(e, OriginalClientNotified)]


def test_the_original_client_hears_both_messages_and_its_requests_are_answered() -> None:
    ports = two_ports()
    seen: list[EventKind] = []
    with running_backend(name="web-2") as (url, _proc), original_client(ports, second_vm_url=url) as client:
        n = notifier(ports, seen)
        n.instance_ready("web-1", "http://127.0.0.1:1")  # before any scale-up: not announced
        n.scale_up_decided(desired=2, current=1)
        n.instance_ready("web-2", url)
        n.scale_up_decided(desired=3, current=2)  # the original's listeners take one connection each
        wait_until(lambda: len(sent(seen)) == 2, "both messages delivered", 30)
        n.close()
        assert client.heard == {ports[0]: ["VM Launching"], ports[1]: ["VM Launched"]}
        assert [(e.kind, e.outcome, e.messages) for e in sent(seen)] == [
            ("launching", "sent", ("VM Launching",)),
            ("launched", "sent", ("VM Launched",)),
        ]
        # The original client now spreads its requests over both servers; the new one answers
        # them in the original's format.
        resp = httpx.get(f"{client.servers[-1]}/20", timeout=30)
        assert resp.status_code == 200
        assert resp.json() == {"input": 20, "result": 6765, "server": "web-2"}


def test_the_url_can_be_part_of_the_message() -> None:
    ports = two_ports()
    seen: list[EventKind] = []
    with original_client(ports) as client:
        n = notifier(
            ports, seen, launched=["VM Launched", "{url}"], launching=["VM Launching ({current}->{desired})"]
        )
        n.scale_up_decided(desired=2, current=1)
        n.instance_ready("web-2", "http://127.0.0.1:18102")
        wait_until(lambda: len(sent(seen)) == 2, "both messages delivered", 30)
        n.close()
        assert client.heard[ports[0]] == ["VM Launching (1->2)"]
        assert client.heard[ports[1]] == ["VM Launched", "http://127.0.0.1:18102"]
        assert client.servers == ["http://first-vm", "http://127.0.0.1:18102"]


def test_a_listener_that_comes_up_late_is_retried() -> None:
    ports = two_ports()
    seen: list[EventKind] = []
    n = notifier(ports, seen)
    n.scale_up_decided(desired=2, current=1)  # nobody listens yet: refused, retried
    time.sleep(0.5)  # let a few attempts be refused before the client starts (not a wait for a result)
    with original_client(ports, second_vm_url="http://x") as client:
        wait_until(lambda: sent(seen), "the launching message", 30)
        n.close()
        assert client.heard[ports[0]] == ["VM Launching"]
    (event,) = sent(seen)
    assert event.outcome == "sent" and event.attempts > 1


def test_a_wrong_authkey_is_reported_not_retried() -> None:
    ports = two_ports()
    seen: list[EventKind] = []
    listener = Listener(("localhost", ports[0]), authkey=b"another key")
    errors: list[BaseException] = []

    def accept() -> None:
        try:
            listener.accept()
        except Exception as exc:  # the listener's side of a failed handshake
            errors.append(exc)

    threading.Thread(target=accept, daemon=True).start()
    n = notifier(ports, seen)
    n.scale_up_decided(desired=2, current=1)
    wait_until(lambda: sent(seen), "the failure", 30)
    n.close()
    listener.close()
    (event,) = sent(seen)
    assert event.outcome == "failed" and event.attempts == 1
    assert "refused the authkey" in event.error


def test_a_listener_that_never_accepts_is_given_up_within_the_timeout() -> None:
    ports = two_ports()
    seen: list[EventKind] = []
    with socket.socket() as sock:  # listens (TCP handshake done by the kernel) but never accepts
        sock.bind(("127.0.0.1", ports[0]))
        sock.listen(5)
        n = notifier(ports, seen, host="127.0.0.1", timeout_s=3.0)
        n.scale_up_decided(desired=2, current=1)
        # The delivery can only end after the 3 s handshake wait: the call returned before it.
        assert not sent(seen), "the call waited for the delivery"
        wait_until(lambda: sent(seen), "the failure", 30)
        n.close()
    (event,) = sent(seen)
    assert event.outcome == "failed" and event.attempts == 1
    assert "did not complete the authkey handshake within 3 s" in event.error


def test_the_authkey_comes_from_a_file_or_the_environment_never_the_config(tmp_path: Path) -> None:
    key = tmp_path / "authkey"
    key.write_text("from-a-file\nignored second line\n")
    cfg = OriginalClientConfig(enabled=True, authkey_file=str(key))
    assert read_authkey(cfg) == b"from-a-file"
    cfg = OriginalClientConfig(enabled=True, authkey_env="ORIG_KEY")
    assert read_authkey(cfg, {"ORIG_KEY": "from-env"}) == b"from-env"
    with pytest.raises(ConfigError) as info:
        read_authkey(cfg, {})
    assert info.value.problems == [
        "notify.original_client.authkey_env: the variable ORIG_KEY is not set (or empty); "
        "export the listeners' authkey in it"
    ]
    key.write_text("")
    with pytest.raises(ConfigError, match="is empty; put the authkey on its first line"):
        read_authkey(OriginalClientConfig(enabled=True, authkey_file=str(key)))
