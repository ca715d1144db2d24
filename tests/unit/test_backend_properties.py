"""Property tests of the backend's input validation: whatever the path segment, the answer is a
2xx with the right number for a valid n, a 4xx JSON error otherwise, and never a 5xx."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vmscale.workload.backend import create_app

MAX_N = 12  # keeps every fib instant


def _expected_fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


@pytest.fixture(scope="module")
def client_get() -> Iterator[object]:
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
        app = create_app("prop", pool, workers=1, fib_max_n=MAX_N)

        def get(path: str) -> httpx.Response:
            async def one() -> httpx.Response:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://b", timeout=30) as client:
                    return await client.get(path)

            return asyncio.run(one())

        yield get


segments = st.one_of(
    st.integers(min_value=-10_000, max_value=10_000).map(str),
    st.text(alphabet="0123456789-+.e_ x", min_size=1, max_size=12),
    st.text(min_size=1, max_size=30),
).filter(lambda s: s not in (".", ".."))  # dot segments are normalised away by URL rules


def _valid(segment: str) -> bool:
    return segment.isascii() and segment.isdigit() and int(segment) <= MAX_N


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=segments, prefix=st.sampled_from(["/", "/fib/"]))
@example(segment=str(MAX_N), prefix="/")
@example(segment=str(MAX_N + 1), prefix="/fib/")
@example(segment="-1", prefix="/")
@example(segment="/", prefix="/fib/")  # was an empty 307 to /fib
def test_any_segment_is_2xx_if_valid_else_4xx(client_get: object, segment: str, prefix: str) -> None:
    resp = client_get(prefix + quote(segment, safe=""))  # type: ignore[operator]
    assert resp.status_code < 500, (segment, resp.status_code, resp.text)
    body = resp.json()
    if _valid(segment):
        assert resp.status_code == 200
        assert body == {"input": int(segment), "result": _expected_fib(int(segment)), "server": "prop"}
    else:
        assert 400 <= resp.status_code < 500
        assert set(body) == {"error", "detail"}
        assert isinstance(body["error"], str) and body["error"]
