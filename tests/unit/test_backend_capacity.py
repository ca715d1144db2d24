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
from vmscale.workload.fib import fib
from vmscale.workload.identity import Identity, IdentityRefused
from vmscale.workload.pool import ElasticPool, Follower, WorkerTarget, _worker_init, spare_cpus

TOKEN = "t" * 32


class CountingFactory:
    """Thread pools standing in for process pools (gated the same way), remembered by size."""

    def __init__(self) -> None:
        self.made: list[tuple[int, concurrent.futures.ThreadPoolExecutor]] = []

    def __call__(self, workers: int, gate: object) -> concurrent.futures.Executor:
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, initializer=_worker_init, initargs=(gate,)
        )
        self.made.append((workers, pool))
        return pool


@pytest.fixture
def factory() -> Iterator[CountingFactory]:
    f = CountingFactory()
    yield f
    for _, pool in f.made:
        pool.shutdown(wait=True)


def elastic(workers: int, factory: CountingFactory, spares: int = 0) -> ElasticPool:
    return ElasticPool(workers, spares=spares, factory=factory, semaphore=threading.Semaphore)


class Running:
    """Held tasks that record how many ran at the same time."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.now = self.peak = 0
        self.started = threading.Semaphore(0)

    def task(self) -> str:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        self.started.release()
        self.release.wait(10)
        with self.lock:
            self.now -= 1
        return "done"


def test_only_size_workers_run_at_once_and_growing_lets_spares_in_at_once(factory: CountingFactory) -> None:
    pool = elastic(1, factory, spares=2)
    assert (pool.size, pool.processes, [n for n, _ in factory.made]) == (1, 3, [3])  # forked ahead
    held = Running()
    futures = [pool.submit(held.task) for _ in range(3)]
    assert held.started.acquire(timeout=5)
    assert not held.started.acquire(timeout=0.3), "a second request ran on a 1-worker pool"
    assert pool.resize(3) is True and pool.size == 3
    assert held.started.acquire(timeout=5) and held.started.acquire(timeout=5)  # the spares took them
    assert [n for n, _ in factory.made] == [3], "growing within the spares forks nothing"
    held.release.set()
    assert [f.result(timeout=5) for f in futures] == ["done"] * 3 and held.peak == 3
    pool.shutdown()


def test_growing_past_the_processes_builds_a_larger_pool(factory: CountingFactory) -> None:
    pool = elastic(1, factory, spares=1)
    assert pool.resize(2) is True and [n for n, _ in factory.made] == [2]
    assert pool.resize(4) is True and (pool.size, pool.processes) == (4, 4)
    assert [n for n, _ in factory.made] == [2, 4]
    assert pool.resize(4) is False
    assert pool.submit(lambda: 7).result(timeout=5) == 7
    pool.shutdown()


def test_shrinking_waits_for_a_running_request_then_holds_the_size(factory: CountingFactory) -> None:
    pool = elastic(2, factory)
    held = Running()
    running = [pool.submit(held.task) for _ in range(2)]
    assert held.started.acquire(timeout=5) and held.started.acquire(timeout=5)
    shrink = threading.Thread(target=pool.resize, args=(1,))
    shrink.start()
    held.release.set()  # the requests end; the resize takes back one permit
    shrink.join(timeout=10)
    assert pool.size == 1 and all(f.result(timeout=5) == "done" for f in running)
    after = Running()
    later = [pool.submit(after.task) for _ in range(2)]
    assert after.started.acquire(timeout=5)
    assert not after.started.acquire(timeout=0.3), "two requests ran after shrinking to one worker"
    after.release.set()
    assert [f.result(timeout=5) for f in later] == ["done", "done"] and after.peak == 1
    pool.shutdown()


def test_the_queue_is_shared_an_idle_worker_takes_the_next_request(factory: CountingFactory) -> None:
    pool = elastic(2, factory)
    release = threading.Event()
    slow = pool.submit(lambda: release.wait(10))
    quick = [pool.submit(lambda i=i: i) for i in range(20)]
    assert [f.result(timeout=5) for f in quick] == list(range(20)), "nothing waited behind the slow one"
    release.set()
    assert slow.result(timeout=5) is True
    pool.shutdown()


def test_resize_is_bounded(factory: CountingFactory) -> None:
    pool = elastic(2, factory)
    pool.resize(0)
    assert pool.size == 1
    pool.shutdown()


def test_a_real_process_pool_serves_gated_requests() -> None:
    pool = ElasticPool(1, spares=1)  # real processes, a real multiprocessing semaphore
    try:
        assert pool.processes == 2
        assert pool.submit(fib, 20).result(timeout=30) == 6765
        assert (
            pool.resize(2)
            and [f.result(timeout=30) for f in [pool.submit(fib, 15) for _ in range(4)]] == [610] * 4
        )
    finally:
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
    pool = elastic(1, factory)
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
    pool = elastic(1, factory)
    built = threading.Event()
    real_factory = pool._factory

    def watched(workers: int, gate: object) -> concurrent.futures.Executor:
        made = real_factory(workers, gate)
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
