"""The original student client's notifier: the socket messages its client waits for.

The seed experiment's client listened on two localhost ports with ``multiprocessing.connection``
listeners sharing an authkey, each accepting one connection: on 6000 it heard "VM Launching" when
the monitor saw the overload, on 6001 "VM Launched" when the second VM served, and then added that
VM's URL to the servers it sends requests to. (The original source is not in this repository;
the defaults follow its description, and every message is configurable, so a client that expects
the URL in the message, or in a second message, is served too.)

    notifier = OriginalClientNotifier(cfg.notify.original_client, "web", publish=bus_publisher(bus))
    notifier.scale_up_decided(desired=2, current=1)          # sends `launching` on launching_port
    notifier.instance_ready("web-2", "http://127.0.0.1:18102")  # sends `launched` on launched_port

Both calls return at once: one worker thread delivers in order (launching before launched). Each
delivery connects as a ``multiprocessing.connection.Client`` would, but bounded: the TCP connect
and the authkey handshake each wait at most ``timeout_s`` (the standard ``Client`` has no
timeout). A listener that refuses the connection (not listening yet) is retried for
``retry_for_s``; one that accepted the TCP connection but never completes the handshake is not
retried (a second attempt would sit in its backlog and reach it as a dead connection), nor is a
wrong authkey. Each delivery ends in an ``OriginalClientNotified`` event.

By default only the first scale-up is announced, with the first instance that becomes ready after
it, because each of the original's listeners accepts one connection; ``every_scale_up`` announces
each scale-up and each instance it adds.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from vmscale.config.notify import OriginalClientConfig
from vmscale.errors import ConfigError
from vmscale.event_kinds import FieldsEvent, Publish, discard

Kind = Literal["launching", "launched"]
RETRY_PAUSE_S = 0.2  # between attempts on a refused connection


@dataclass(frozen=True, slots=True)
class OriginalClientNotified(FieldsEvent):
    TYPE: ClassVar[str] = "original_client"
    kind: Kind
    address: str
    messages: tuple[str, ...]
    outcome: Literal["sent", "failed"]
    attempts: int
    error: str = ""


class DeliveryFailed(Exception):
    """Internal: the message could not be delivered; ``retry`` says whether another try may help."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def read_authkey(cfg: OriginalClientConfig, environ: Mapping[str, str] = os.environ) -> bytes:
    """The listeners' authkey, from the file's first line or the environment variable; a one-line
    ConfigError naming the setting when it is missing or empty."""
    where = "notify.original_client"
    if cfg.authkey_file:
        try:
            lines = Path(cfg.authkey_file).expanduser().read_bytes().splitlines()
        except OSError as exc:
            raise ConfigError(
                [f"{where}.authkey_file: cannot read {cfg.authkey_file!r}: {exc.strerror or exc}"]
            ) from None
        key = lines[0].strip() if lines else b""
        if not key:
            raise ConfigError(
                [f"{where}.authkey_file: {cfg.authkey_file!r} is empty; put the authkey on its first line"]
            )
        return key
    value = environ.get(cfg.authkey_env, "")
    if not value:
        problem = f"{where}.authkey_env: the variable {cfg.authkey_env} is not set (or empty)"
        raise ConfigError([f"{problem}; export the listeners' authkey in it"])
    return value.encode()


def connect(host: str, port: int, authkey: bytes, timeout_s: float) -> Connection:
    """``multiprocessing.connection.Client((host, port), authkey=...)``, with every wait bounded."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except ConnectionRefusedError:
        raise DeliveryFailed(f"nothing listens on {host}:{port} (connection refused)", retry=True) from None
    except OSError as exc:  # timeout, unreachable, unknown host
        raise DeliveryFailed(f"cannot connect to {host}:{port}: {exc}", retry=True) from None
    try:
        sock.settimeout(None)  # a blocking socket again, so that Connection can use it...
        tv = struct.pack("ll", int(timeout_s), int((timeout_s % 1) * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)  # ...with reads and writes bounded
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        conn = Connection(sock.detach())
    except OSError as exc:
        sock.close()
        raise DeliveryFailed(f"cannot set up the connection to {host}:{port}: {exc}", retry=False) from None
    try:
        answer_challenge(conn, authkey)  # the order multiprocessing's Client uses
        deliver_challenge(conn, authkey)
    except AuthenticationError:
        conn.close()
        raise DeliveryFailed(
            f"{host}:{port} refused the authkey (the listener uses a different one)", retry=False
        ) from None
    except (BlockingIOError, TimeoutError):
        conn.close()
        raise DeliveryFailed(
            f"{host}:{port} accepted the connection but did not complete the authkey handshake within "
            f"{timeout_s:g} s (is it calling accept()?)",
            retry=False,
        ) from None
    except (EOFError, OSError) as exc:
        conn.close()
        raise DeliveryFailed(
            f"{host}:{port} closed the connection during the handshake: {exc!r}", retry=False
        ) from None
    return conn


class OriginalClientNotifier:
    def __init__(
        self,
        cfg: OriginalClientConfig,
        group: str,
        *,
        authkey: bytes | None = None,
        publish: Publish = discard,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.cfg = cfg
        self.group = group
        self._authkey = authkey if authkey is not None else read_authkey(cfg, environ)
        self._publish = publish
        self._lock = threading.Lock()
        self._announced = False
        self._pending_launched = 0  # instances whose "launched" message is still owed
        self._jobs: queue.Queue[tuple[Kind, int, tuple[str, ...]] | None] = queue.Queue(maxsize=64)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vmscale-original-client", daemon=True)
        self._thread.start()

    def scale_up_decided(self, desired: int, current: int) -> None:
        """A scale-up was decided: send the ``launching`` messages (the first only, by default)."""
        with self._lock:
            if desired <= current or (self._announced and not self.cfg.every_scale_up):
                return
            self._announced = True
            self._pending_launched += (desired - current) if self.cfg.every_scale_up else 1
        fields = {"group": self.group, "desired": desired, "current": current}
        self._enqueue("launching", self.cfg.launching_port, [m.format(**fields) for m in self.cfg.launching])

    def instance_ready(self, name: str, url: str) -> None:
        """An instance entered rotation: send the ``launched`` messages if one is owed."""
        with self._lock:
            if self._pending_launched <= 0:
                return
            self._pending_launched -= 1
        fields = {"group": self.group, "name": name, "url": url, "address": urlsplit(url).netloc}
        self._enqueue("launched", self.cfg.launched_port, [m.format(**fields) for m in self.cfg.launched])

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._jobs.put_nowait(None)
        self._thread.join(timeout=timeout_s)

    def _enqueue(self, kind: Kind, port: int, messages: list[str]) -> None:
        try:
            self._jobs.put_nowait((kind, port, tuple(messages)))
        except queue.Full:  # dozens undelivered: the client is gone; say so rather than wait
            address = f"{self.cfg.host}:{port}"
            self._publish(OriginalClientNotified(kind, address, tuple(messages), "failed", 0, "queue full"))

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self._jobs.get()
            if job is None:
                return
            self._deliver(*job)

    def _deliver(self, kind: Kind, port: int, messages: tuple[str, ...]) -> None:
        host, address = self.cfg.host, f"{self.cfg.host}:{port}"
        deadline = time.monotonic() + self.cfg.retry_for_s
        attempts = 0
        while True:
            attempts += 1
            try:
                conn = connect(host, port, self._authkey, self.cfg.timeout_s)
                try:
                    for message in messages:
                        if self.cfg.send_as == "bytes":
                            conn.send_bytes(message.encode())
                        else:
                            conn.send(message)
                finally:
                    conn.close()
            except DeliveryFailed as exc:
                if exc.retry and time.monotonic() < deadline and not self._stop.wait(RETRY_PAUSE_S):
                    continue
                self._publish(OriginalClientNotified(kind, address, messages, "failed", attempts, str(exc)))
                return
            except OSError as exc:
                error = f"sending to {address} failed: {exc}"
                self._publish(OriginalClientNotified(kind, address, messages, "failed", attempts, error))
                return
            self._publish(OriginalClientNotified(kind, address, messages, "sent", attempts))
            return
