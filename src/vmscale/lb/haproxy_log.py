"""A real p95 latency from HAProxy's per-request log lines.

HAProxy 2.6's statistics keep averages only (``rtime``: the mean of the last 1024 requests), so
a policy on ``latency_p95`` would be steering on a mean. Instead, the generated configuration has
the group's frontend log every request, in a format of vmscale's own (:data:`LOG_FORMAT`), to a
Unix datagram socket in the state folder. :class:`LogReceiver` reads them on a thread of its own
and feeds a :class:`LatencyTracker`, which keeps a sliding window per server and one for the
group and answers p95 queries from it.

Why this shape:

* **HAProxy never waits for vmscale.** Logging goes over datagrams: HAProxy sends without blocking
  and drops a line when the socket's buffer is full or nobody listens (vmscale restarting). A
  dropped line costs one latency sample, never a request.
* **Bounded memory.** Each window holds at most ``max_samples`` of the newest requests and none
  older than ``window_s``; a server that stops answering disappears once its window empties.
* **The figure clients feel.** ``%Ta`` is the whole active time of a request in HAProxy (queue,
  connect, server, response transfer), which is what a request through the balancer costs.
  Requests no server answered (``%Tr`` = -1: refused, timed out, aborted) count as errors
  elsewhere, not as latency.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmscale.percentile import percentile

log = logging.getLogger(__name__)

LOG_TAG = "vmscale1"  # a version tag: lines in another format (or from elsewhere) are ignored
LOG_FORMAT = f"{LOG_TAG} %b %s %ST %Tr %Ta"
_RECV_BYTES = 2048  # one line is well under 200 bytes; HAProxy's default line limit is 1024
_SOCKET_BUFFER = 1 << 20  # room for a burst of a few thousand lines between two reads
_POLL_S = 0.2  # how often the thread looks at its stop flag while no line arrives


@dataclass(frozen=True, slots=True)
class RequestLine:
    """One request as HAProxy logged it. Times are HAProxy's milliseconds."""

    backend: str
    server: str
    status: int
    response_ms: int  # %Tr: until the server's response headers; -1 when there was none
    active_ms: int  # %Ta: the whole request, as the client saw it through HAProxy

    @property
    def answered(self) -> bool:
        return self.response_ms >= 0 and self.active_ms >= 0 and not self.server.startswith("<")


def parse_line(raw: bytes | str) -> RequestLine | None:
    """A log line in :data:`LOG_FORMAT` -> RequestLine; anything else -> None.

    Tolerates a syslog header in front (if the format is changed to rfc3164) by looking for the tag.
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    at = text.find(LOG_TAG + " ")
    if at < 0:
        return None
    fields = text[at:].split()
    if len(fields) != 6:
        return None
    try:
        return RequestLine(fields[1], fields[2], int(fields[3]), int(fields[4]), int(fields[5]))
    except ValueError:
        return None


class LatencyWindow:
    """The latencies of recent requests: at most ``max_samples``, none older than ``window_s``."""

    def __init__(self, window_s: float, max_samples: int) -> None:
        self.window_s = window_s
        self._items: collections.deque[tuple[float, float]] = collections.deque(maxlen=max_samples)

    def add(self, t: float, latency_s: float) -> None:
        self._items.append((t, latency_s))

    def prune(self, now: float) -> None:
        cutoff = now - self.window_s
        while self._items and self._items[0][0] < cutoff:
            self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> list[float]:
        return [v for _, v in self._items]


class LatencyTracker:
    """Sliding windows per server and for the whole group, safe to feed and read from two threads."""

    def __init__(
        self, window_s: float, max_samples: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s = window_s
        self.max_samples = max_samples
        self._clock = clock
        self._lock = threading.Lock()
        self._servers: dict[str, LatencyWindow] = {}
        self._group = LatencyWindow(window_s, max_samples)
        self.recorded = 0

    def record(self, server: str, latency_s: float) -> None:
        now = self._clock()
        with self._lock:
            window = self._servers.get(server)
            if window is None:
                window = self._servers[server] = LatencyWindow(self.window_s, self.max_samples)
            window.add(now, latency_s)
            self._group.add(now, latency_s)
            self.recorded += 1

    def _pruned(self) -> None:
        now = self._clock()
        self._group.prune(now)
        for name in list(self._servers):
            self._servers[name].prune(now)
            if not len(self._servers[name]):
                del self._servers[name]  # a server that left (or went quiet) costs nothing

    def server_quantiles(self, q: float = 95) -> dict[str, float]:
        """Each server that answered within the window -> its q-th percentile latency, seconds."""
        with self._lock:
            self._pruned()
            copies = {name: w.values() for name, w in self._servers.items()}
        # Sorting happens outside the lock: the receiver thread is never held up by a query.
        return {name: v for name, values in copies.items() if (v := percentile(values, q)) is not None}

    def group_quantile(self, q: float = 95) -> float | None:
        with self._lock:
            self._pruned()
            values = self._group.values()
        return percentile(values, q)

    def server_counts(self) -> dict[str, int]:
        with self._lock:
            self._pruned()
            return {name: len(w) for name, w in self._servers.items()}


class LogReceiver:
    """Receives HAProxy's log datagrams on ``path`` and records the answered requests of ``backend``.

    ``start`` and ``stop`` are idempotent; ``stop`` ends the thread within about ``_POLL_S``.
    """

    def __init__(self, path: Path, tracker: LatencyTracker, backend: str) -> None:
        self.path = path
        self.tracker = tracker
        self.backend = backend
        self.received = 0
        self.ignored = 0  # malformed, another backend's, or not answered by a server
        self._sock: socket.socket | None = None
        self._inode = -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # left by a vmscale that died: HAProxy writes to the path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):  # the kernel may cap it; a smaller buffer still works
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)  # HAProxy runs as this same user; nobody else may inject lines
            self._inode = os.stat(self.path).st_ino
            sock.settimeout(_POLL_S)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"vmscale-haproxy-log-{self.backend}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data = sock.recv(_RECV_BYTES)
            except TimeoutError:
                continue
            except OSError:
                if not self._stop.is_set():
                    log.warning("HAProxy log socket %s failed; p95 latency stops", self.path, exc_info=True)
                return
            self.received += 1
            self.handle(data)

    def handle(self, data: bytes) -> None:
        """Record one datagram (public so tests can feed lines without a socket)."""
        line = parse_line(data)
        if line is None or line.backend != self.backend or not line.answered:
            self.ignored += 1
            return
        self.tracker.record(line.server, line.active_ms / 1000.0)

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            # Only our own socket: a newer receiver (a restarted vmscale adopting the same HAProxy)
            # may have bound the path since, and keeps it.
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == self._inode:
                    self.path.unlink()
