"""Size and rate limits: 413 for big bodies, 429 with Retry-After past the rate, per client."""

from __future__ import annotations

import warnings

import pytest

from tests.fakes_control import WRITE_TOKEN, make_api
from vmscale.api.limits import RateLimiter
from vmscale.clock import FakeClock

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

AUTH = {"Authorization": f"Bearer {WRITE_TOKEN}"}


class TestRateLimiter:
    def test_allows_a_burst_then_refuses_with_the_wait(self) -> None:
        clock = FakeClock()
        rl = RateLimiter(2.0, burst=3, clock=clock.monotonic)
        assert [rl.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
        assert rl.acquire("a") == pytest.approx(0.5)
        clock.advance(0.5)
        assert rl.acquire("a") == 0.0

    def test_clients_have_separate_buckets(self) -> None:
        rl = RateLimiter(1.0, burst=1, clock=FakeClock().monotonic)
        assert rl.acquire("a") == 0.0
        assert rl.acquire("a") > 0
        assert rl.acquire("b") == 0.0

    def test_refills_no_higher_than_the_burst(self) -> None:
        clock = FakeClock()
        rl = RateLimiter(10.0, burst=2, clock=clock.monotonic)
        clock.advance(3600)
        assert [rl.acquire("a") == 0.0 for _ in range(3)] == [True, True, False]

    def test_memory_stays_bounded_under_many_addresses(self) -> None:
        clock = FakeClock()
        rl = RateLimiter(1.0, burst=1, clock=clock.monotonic, max_clients=100)
        for i in range(1000):
            rl.acquire(f"10.0.{i // 256}.{i % 256}")
        assert len(rl._buckets) <= 100

    def test_rejects_a_useless_rate(self) -> None:
        with pytest.raises(ValueError):
            RateLimiter(0)


def test_over_the_rate_is_429_with_retry_after() -> None:
    clock = FakeClock()
    app, _ = make_api(rate_limit_per_s=2.0, rate_clock=clock.monotonic)
    client = TestClient(app, headers=AUTH)
    assert [client.get("/v1/group").status_code for _ in range(2)] == [200, 200]
    resp = client.get("/v1/group")
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "1"
    assert resp.json() == {"error": "too many requests", "detail": "rate limit exceeded; retry later"}
    clock.advance(1.0)
    assert client.get("/v1/group").status_code == 200


def test_rate_is_per_client_address() -> None:
    clock = FakeClock()
    app, _ = make_api(rate_limit_per_s=1.0, rate_clock=clock.monotonic)
    a = TestClient(app, headers=AUTH, client=("127.0.0.2", 1))
    b = TestClient(app, headers=AUTH, client=("127.0.0.3", 1))
    assert a.get("/v1/group").status_code == 200
    assert a.get("/v1/group").status_code == 429
    assert b.get("/v1/group").status_code == 200


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_413_and_not_applied(chunked: bool) -> None:
    app, control = make_api(max_body_bytes=256)
    client = TestClient(app, headers=AUTH)
    body = b'{"desired": 2, "pad": "' + b"x" * 1000 + b'"}'
    content = iter([body[:500], body[500:]]) if chunked else body
    resp = client.post("/v1/group/desired", content=content, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert resp.json()["error"] == "payload too large"
    assert control.writes == []


def test_body_at_the_limit_is_accepted() -> None:
    app, control = make_api(max_body_bytes=256)
    body = b'{"desired": 2}' + b" " * (256 - 14)
    resp = TestClient(app, headers=AUTH).post(
        "/v1/group/desired", content=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 200, resp.text
    assert control.desired == 2


def test_bad_content_length_is_400() -> None:
    app, _ = make_api()
    resp = TestClient(app, headers={**AUTH, "Content-Length": "abc"}).get("/v1/group")
    assert resp.status_code == 400
