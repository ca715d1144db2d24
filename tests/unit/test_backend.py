"""The fib backend in-process (httpx ASGI transport): API shape, errors, /healthz while fib runs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vmscale.workload.backend import ApiError, create_app, parse_n
from vmscale.workload.fib import cgroup_cpu_limit, fib, usable_cpus


@pytest.fixture(scope="module")
def pool() -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A real one-process pool, as production uses (small so the unit tier stays fast)."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as executor:
        yield executor


async def _get(app: object, *paths: str) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://backend", timeout=30) as client:
        return [await client.get(p) for p in paths]


def test_fib_values() -> None:
    assert [fib(i) for i in range(11)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55]
    assert fib(30) == 832040


def test_api_answers_like_the_original(pool: concurrent.futures.Executor) -> None:
    app = create_app("web-7", pool, workers=1, fib_max_n=35)
    hello, root, path, health = asyncio.run(_get(app, "/", "/20", "/fib/20", "/healthz"))
    assert hello.json() == {"message": "Hello from web-7"}
    assert root.status_code == 200
    assert root.json() == {"input": 20, "result": 6765, "server": "web-7"}
    assert path.json() == root.json()
    assert health.json() == {
        "status": "ok",
        "server": "web-7",
        "inflight": 0,
        "workers": 1,
        "cpus": 1,
        "fib_max_n": 35,
    }


@pytest.mark.parametrize(
    ("path", "status", "error_fragment"),
    [
        pytest.param("/-3", 422, "negative", id="negative"),
        pytest.param("/fib/-1", 422, "negative", id="negative-fib-path"),
        pytest.param("/2.5", 400, "integer", id="float"),
        pytest.param("/abc", 400, "integer", id="word"),
        pytest.param("/36", 422, "ceiling of 35", id="above-ceiling"),
        pytest.param("/fib/99999999999999999999", 422, "ceiling", id="absurdly-long"),
        pytest.param("/a/b/c", 404, "no such path", id="unknown-path"),
    ],
)
def test_bad_input_is_a_clear_4xx_json(
    pool: concurrent.futures.Executor, path: str, status: int, error_fragment: str
) -> None:
    app = create_app("web-1", pool, workers=1, fib_max_n=35)
    (resp,) = asyncio.run(_get(app, path))
    assert resp.status_code == status
    body = resp.json()
    assert set(body) == {"error", "detail"}
    assert error_fragment in body["error"]


def test_wrong_method_is_405_json(pool: concurrent.futures.Executor) -> None:
    app = create_app("web-1", pool, workers=1, fib_max_n=35)

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend", timeout=10) as client:
            return await client.post("/20")

    resp = asyncio.run(post())
    assert resp.status_code == 405
    assert resp.json()["error"] == "method not allowed"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0", 0), ("7", 7), ("007", 7), ("12", 12)],
)
def test_parse_n_accepts_digits(raw: str, expected: int) -> None:
    assert parse_n(raw, fib_max_n=12) == expected


@pytest.mark.parametrize("raw", ["", "13", "-0", "+5", " 5", "5 ", "٣", "²", "0x5", "1e3", "1_0"])
def test_parse_n_refuses_everything_else(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_n(raw, fib_max_n=12)
    assert 400 <= info.value.status < 500


def test_healthz_answers_and_counts_while_fib_runs() -> None:
    """With both workers busy, /healthz still answers at once and reports the exact in-flight count."""
    release = threading.Event()

    def held_work(n: int) -> int:
        release.wait(timeout=30)
        return fib(n)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        app = create_app("web-2", executor, workers=2, fib_max_n=35, work=held_work)

        async def scenario() -> tuple[list[int], list[int], list[dict[str, object]]]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b", timeout=30) as client:
                running = [asyncio.create_task(client.get(f"/{n}")) for n in (10, 11, 12)]
                seen: list[int] = []
                for _ in range(1000):  # bounded; sleep(0) only yields so the fib requests get going
                    await asyncio.sleep(0)
                    seen.append((await client.get("/healthz")).json()["inflight"])
                    if seen[-1] == 3:
                        break
                release.set()
                done = await asyncio.gather(*running)
                after = (await client.get("/healthz")).json()["inflight"]
                return seen, [after], [r.json() for r in done]

        seen, after, bodies = asyncio.run(scenario())
    assert seen[-1] == 3, f"in-flight count never reached 3: {seen[-10:]}"
    assert after == [0]
    assert [b["result"] for b in bodies] == [55, 89, 144]


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/machine/web\n")
    root = tmp_path / "fs"
    (root / "machine" / "web").mkdir(parents=True)
    (root / "machine" / "cpu.max").write_text("max 100000\n")
    (root / "machine" / "web" / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(proc, root) == 1.5
    (root / "machine" / "web" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(proc, root) is None
    (root / "machine" / "cpu.max").write_text("50000 100000\n")  # a parent's quota limits too
    assert cgroup_cpu_limit(proc, root) == 0.5


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/x\n3:cpu,cpuacct:/svc\n")
    base = tmp_path / "fs" / "cpu" / "svc"
    base.mkdir(parents=True)
    (base / "cpu.cfs_quota_us").write_text("200000\n")
    (base / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(proc, tmp_path / "fs") == 2.0
    (base / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(proc, tmp_path / "fs") is None


def test_usable_cpus_is_within_the_affinity_mask() -> None:
    import os

    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))
