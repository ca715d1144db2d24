"""The backend follows its capacity (resizable worker pool) and takes a pushed identity (clones)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vmscale.workload.backend import IDENTITY_PATH, create_app
from vmscale.workload.identity import Identity, IdentityRefused
from vmscale.workload.pool import ElasticPool, Follower, WorkerTarget, spare_cpus

TOKEN = "t" * 32


class CountingFactory:
    """Thread pools of the asked size, remembered so a test can see which pool ran what."""

    def __init__(self) -> None:
        self.made: list[tuple[int, concurrent.futures.ThreadPoolExecutor]] = []

    def __call__(self, workers: int) -> concurrent.futures.Executor:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        self.made.append((workers, pool))
        return pool


@pytest.fixture
def factory() -> Iterator[CountingFactory]:
    f = CountingFactory()
    yield f
    for _, pool in f.made:
        pool.shutdown(wait=True)


def test_growing_switches_on_spares_before_forking(factory: CountingFactory) -> None:
    pool = ElasticPool(1, spares=2, factory=factory)
    assert (pool.size, pool.slots, len(factory.made)) == (1, 3, 3)  # forked ahead
    assert pool.resize(3) is True and pool.size == 3
    assert len(factory.made) == 3, "spares were used: nothing forked"
    assert pool.resize(4) is True and (pool.size, pool.slots) == (4, 4)
    assert len(factory.made) == 4  # one more forked, the rest were there
    assert pool.resize(4) is False
    pool.shutdown()


def test_switched_off_workers_finish_their_request_and_wait_as_spares(factory: CountingFactory) -> None:
    pool = ElasticPool(2, factory=factory)
    release = threading.Event()
    running = [pool.submit(lambda: release.wait(10) and threading.current_thread().name) for _ in range(2)]
    assert pool.resize(1) is True and pool.size == 1
    release.set()
    assert all(f.result(timeout=5) for f in running)  # both finished, also the switched-off one
    served = [pool.submit(lambda: threading.current_thread().name).result(timeout=5) for _ in range(5)]
    assert len(set(served)) == 1, "only the one active slot takes new work"
    assert pool.slots == 2 and pool.resize(2) is True and len(factory.made) == 2  # back on, no fork
    pool.shutdown()


def test_the_queue_is_shared_an_idle_worker_takes_the_next_request(factory: CountingFactory) -> None:
    pool = ElasticPool(2, factory=factory)
    release = threading.Event()
    slow = pool.submit(lambda: release.wait(10))
    quick = [pool.submit(lambda i=i: i) for i in range(20)]
    assert [f.result(timeout=5) for f in quick] == list(range(20)), "nothing waited behind the slow one"
    release.set()
    assert slow.result(timeout=5) is True
    pool.shutdown()


def test_a_dead_worker_is_replaced(factory: CountingFactory) -> None:
    broken_once = [True]

    def breaks_once(workers: int) -> concurrent.futures.Executor:
        executor = factory(workers)
        if broken_once[0]:
            broken_once[0] = False
            executor.submit = lambda *a, **k: _broken()  # type: ignore[method-assign]
        return executor

    pool = ElasticPool(1, factory=breaks_once)
    with pytest.raises(concurrent.futures.BrokenExecutor):
        pool.submit(lambda: 1).result(timeout=5)
    assert pool.submit(lambda: 2).result(timeout=5) == 2
    pool.shutdown()


def _broken() -> concurrent.futures.Future[int]:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    future.set_exception(concurrent.futures.BrokenExecutor("worker died"))
    return future


def test_resize_is_bounded(factory: CountingFactory) -> None:
    pool = ElasticPool(2, factory=factory)
    pool.resize(0)
    assert pool.size == 1
    pool.shutdown()


@pytest.mark.parametrize(
    ("possible", "expected_extra"),
    [("0", 0), ("0-3", 3), ("0-1,4-5", 3), ("garbage", 0)],
)
def test_spare_cpus_counts_what_the_machine_may_still_get(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, possible: str, expected_extra: int
) -> None:
    import vmscale.workload.pool as pool_module

    monkeypatch.setattr(pool_module, "usable_cpus", lambda: 1)
    (tmp_path / "possible").write_text(possible + "\n")
    assert spare_cpus(tmp_path / "possible") == expected_extra


@pytest.mark.parametrize(
    ("fixed", "file_text", "cpus", "expected"),
    [
        pytest.param(None, None, 3, (3, 3), id="auto-follows-cpus"),
        pytest.param(2, None, 4, (2, 2), id="fixed-without-file"),
        pytest.param(2, "3\n", 4, (3, 3), id="file-overrides-fixed"),
        pytest.param(2, "3", 1, (3, 1), id="file-but-fewer-cpus-reported"),
        pytest.param(2, "zero", 4, (2, 2), id="unreadable-file-keeps-fixed"),
        pytest.param(2, "0", 4, (2, 2), id="out-of-range-file-keeps-fixed"),
    ],
)
def test_worker_target(
    tmp_path: Path, fixed: int | None, file_text: str | None, cpus: int, expected: tuple[int, int]
) -> None:
    path = tmp_path / "workers"
    if file_text is not None:
        path.write_text(file_text)
    assert WorkerTarget(fixed, path, cpus=lambda: cpus).read() == expected


def test_follower_resizes_when_the_cpus_change(factory: CountingFactory) -> None:
    cpus = [1]
    pool = ElasticPool(1, factory=factory)
    follower = Follower(pool, WorkerTarget(None, None, cpus=lambda: cpus[0]), interval_s=60)
    cpus[0] = 2  # a vCPU was hot-added and onlined
    follower.check()
    assert (pool.size, follower.cpus) == (2, 2)
    cpus[0] = 1  # and removed again
    follower.check()
    assert (pool.size, follower.cpus) == (1, 1)
    pool.shutdown()


def test_a_poke_makes_the_follower_look_at_once(factory: CountingFactory) -> None:
    cpus = [1]
    pool = ElasticPool(1, factory=factory)
    built = threading.Event()
    real_factory = pool._factory

    def watched(workers: int) -> concurrent.futures.Executor:
        made = real_factory(workers)
        built.set()
        return made

    pool._factory = watched
    follower = Follower(pool, WorkerTarget(None, None, cpus=lambda: cpus[0]), interval_s=600).start()
    try:
        cpus[0] = 3
        follower.poke()  # what SIGHUP does; without it the next look would be 600 s away
        assert built.wait(timeout=5), "the poke did not make the follower resize"
    finally:
        follower.stop()  # joins the thread: the resize it started has finished
    assert pool.size == 3 and follower.cpus == 3
    pool.shutdown()


@pytest.mark.parametrize(
    ("name", "token", "status"),
    [
        pytest.param("web-3", "x" * 32, 403, id="wrong-token"),
        pytest.param("web-3", None, 403, id="no-token"),
        pytest.param("bad name", TOKEN, 422, id="bad-name"),
        pytest.param(3, TOKEN, 422, id="name-not-a-string"),
    ],
)
def test_identity_refuses(name: object, token: object, status: int) -> None:
    with pytest.raises(IdentityRefused) as info:
        Identity(None, TOKEN).assign(name, token)
    assert info.value.status == status


def test_identity_is_taken_once() -> None:
    identity = Identity(None, TOKEN)
    assert identity.assign("web-3", TOKEN) == "web-3"
    assert identity.assign("web-3", TOKEN) == "web-3"  # a retried launch pushes the same name
    with pytest.raises(IdentityRefused) as info:
        identity.assign("web-4", TOKEN)
    assert info.value.status == 409 and identity.name == "web-3"


async def _call(app: object, *requests: tuple[str, str, dict | None]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://clone", timeout=30) as client:
        return [await client.request(m, p, json=body) for m, p, body in requests]


def test_a_clone_never_answers_before_it_has_its_name() -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        app = create_app(Identity(None, TOKEN), executor, 1, fib_max_n=35)
        before_health, before_fib, wrong, push, after_health, after_fib, hello = asyncio.run(
            _call(
                app,
                ("GET", "/healthz", None),
                ("GET", "/20", None),
                ("PUT", IDENTITY_PATH, {"name": "web-5", "token": "nope" * 8}),
                ("PUT", IDENTITY_PATH, {"name": "web-5", "token": TOKEN, "time": 0}),
                ("GET", "/healthz", None),
                ("GET", "/20", None),
                ("GET", "/", None),
            )
        )
    assert before_health.status_code == 503 and before_health.json()["detail"]["status"] == "unassigned"
    assert before_fib.status_code == 503 and "server" not in before_fib.json()
    assert wrong.status_code == 403
    assert push.status_code == 200 and push.json() == {"status": "ok", "server": "web-5"}
    assert after_health.status_code == 200 and after_health.json()["server"] == "web-5"
    assert after_fib.json() == {"input": 20, "result": 6765, "server": "web-5"}
    assert hello.json() == {"message": "Hello from web-5"}


def test_a_named_backend_has_no_identity_endpoint() -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        app = create_app("web-1", executor, 1, fib_max_n=35)
        (resp,) = asyncio.run(_call(app, ("PUT", IDENTITY_PATH, {"name": "x", "token": TOKEN})))
    assert resp.status_code == 404


def test_healthz_reports_the_capacity_it_has_now() -> None:
    sizes = [(1, 1)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        app = create_app("web-1", executor, lambda: sizes[0], fib_max_n=35)
        (first,) = asyncio.run(_call(app, ("GET", "/healthz", None)))
        sizes[0] = (2, 2)
        (second,) = asyncio.run(_call(app, ("GET", "/healthz", None)))
    assert (first.json()["workers"], first.json()["cpus"]) == (1, 1)
    assert (second.json()["workers"], second.json()["cpus"]) == (2, 2)
