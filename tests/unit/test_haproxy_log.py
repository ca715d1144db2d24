"""The HAProxy request-log receiver: lines are parsed strictly, windows slide and stay bounded,
the p95 is a percentile (not a mean), and the receiver thread starts and stops cleanly."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from vmscale.clock import FakeClock
from vmscale.lb.haproxy_log import LOG_TAG, LatencyTracker, LogReceiver, RequestLine, parse_line


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            f"{LOG_TAG} web web-1 200 12 15", RequestLine("web", "web-1", 200, 12, 15), id="answered"
        ),
        pytest.param(
            f"{LOG_TAG} web web-2 503 -1 1002\n".encode(),
            RequestLine("web", "web-2", 503, -1, 1002),
            id="no-server-answer-bytes",
        ),
        pytest.param(
            f"<134>Nov 30 00:00:00 haproxy[12]: {LOG_TAG} web web-1 204 3 4",
            RequestLine("web", "web-1", 204, 3, 4),
            id="behind-a-syslog-header",
        ),
        pytest.param("Server web/web-1 is DOWN, reason: Layer4 connection problem", None, id="alert"),
        pytest.param(f"{LOG_TAG} web web-1 200 12", None, id="short"),
        pytest.param(f"{LOG_TAG} web web-1 OK 12 15", None, id="not-a-number"),
        pytest.param(b"\xff\xfe", None, id="garbage"),
    ],
)
def test_parse_line(raw: str | bytes, expected: RequestLine | None) -> None:
    assert parse_line(raw) == expected


def test_only_requests_a_server_answered_count() -> None:
    assert RequestLine("web", "web-1", 500, 3, 4).answered  # an error answer is still an answer
    assert not RequestLine("web", "web-1", 504, -1, 30000).answered  # timed out
    assert not RequestLine("web", "<NOSRV>", 503, -1, 0).answered  # no server at all


def feed(receiver: LogReceiver, server: str, latencies_ms: list[int], backend: str = "web") -> None:
    for ms in latencies_ms:
        receiver.handle(f"{LOG_TAG} {backend} {server} 200 {ms} {ms}".encode())


def test_p95_is_a_percentile_not_a_mean(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = LatencyTracker(window_s=10, max_samples=1000, clock=clock.monotonic)
    receiver = LogReceiver(tmp_path / "log.sock", tracker, "web")
    # 80 fast, 18 slow, 2 very slow: mean 68 ms, p95 (rank 94.05) is 200 ms
    feed(receiver, "web-1", [20] * 80 + [200] * 18 + [800] * 2)
    assert tracker.server_quantiles(95) == {"web-1": pytest.approx(0.2)}
    assert tracker.group_quantile(95) == pytest.approx(0.2)


def test_per_server_and_group_windows(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = LatencyTracker(window_s=10, max_samples=1000, clock=clock.monotonic)
    receiver = LogReceiver(tmp_path / "log.sock", tracker, "web")
    feed(receiver, "web-1", [10] * 50)
    feed(receiver, "web-2", [300] * 50)
    feed(receiver, "web-3", [999] * 5, backend="other")  # another group's line
    receiver.handle(f"{LOG_TAG} web <NOSRV> 503 -1 0".encode())
    assert tracker.server_quantiles(95) == {"web-1": pytest.approx(0.01), "web-2": pytest.approx(0.3)}
    assert tracker.group_quantile(95) == pytest.approx(0.3)
    assert tracker.group_quantile(25) == pytest.approx(0.01)
    assert receiver.ignored == 6


def test_the_window_slides_and_a_quiet_server_is_forgotten(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = LatencyTracker(window_s=10, max_samples=1000, clock=clock.monotonic)
    receiver = LogReceiver(tmp_path / "log.sock", tracker, "web")
    feed(receiver, "web-1", [900] * 20)  # an overload, 20 s ago
    clock.advance(6)
    feed(receiver, "web-2", [30] * 20)
    clock.advance(6)  # web-1's requests are now 12 s old: out of the 10 s window
    feed(receiver, "web-2", [40] * 20)
    assert tracker.server_quantiles(95) == {"web-2": pytest.approx(0.04)}
    assert tracker.group_quantile(50) == pytest.approx(0.035)
    clock.advance(11)
    assert tracker.server_quantiles(95) == {} and tracker.group_quantile(95) is None
    assert tracker.server_counts() == {}


def test_memory_is_bounded_by_max_samples(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = LatencyTracker(window_s=600, max_samples=100, clock=clock.monotonic)
    receiver = LogReceiver(tmp_path / "log.sock", tracker, "web")
    feed(receiver, "web-1", [500] * 1000)
    feed(receiver, "web-1", [5] * 100)  # only the newest 100 are kept
    assert tracker.server_counts() == {"web-1": 100}
    assert tracker.server_quantiles(95) == {"web-1": pytest.approx(0.005)}


def test_the_receiver_thread_reads_datagrams_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    tracker = LatencyTracker(window_s=60, max_samples=1000)
    receiver = LogReceiver(path, tracker, "web")
    path.write_text("left by a crashed vmscale")
    receiver.start()
    receiver.start()  # idempotent
    assert receiver.running and path.is_socket()
    assert path.stat().st_mode & 0o777 == 0o600
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        for ms in (10, 20, 30):
            sender.sendto(f"{LOG_TAG} web web-1 200 {ms} {ms}".encode(), str(path))
    deadline = time.monotonic() + 10
    while tracker.recorded < 3:  # another thread reads: poll with a deadline
        assert time.monotonic() < deadline, "the receiver did not record three lines"
        time.sleep(0.01)
    assert tracker.server_quantiles(50) == {"web-1": pytest.approx(0.02)}
    receiver.stop()
    assert not receiver.running and not path.exists()
    receiver.stop()  # idempotent
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender, pytest.raises(OSError):
        sender.sendto(b"nobody listens", str(path))  # what HAProxy sees: the line is dropped
