"""Capacity without a cold boot, with real TCG guests: a live vCPU hot-add, and snapshot clones.

Traffic goes only to 127.0.0.1 (each VM's user-mode port forward). libvirt is checked through
`virsh` (an independent view), the guest through its backend's /healthz.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.libvirt_support import virsh
from tests.e2e.test_libvirt_provider import BOOT_DEADLINE_S, spec, wait_healthy
from tests.integration.live_support import free_base_port
from tests.support.wait import wait_until
from vmscale.bench.runner import measure_request
from vmscale.config.libvirt import LibvirtProviderConfig
from vmscale.providers.libvirt.provider import LibvirtProvider

ProviderFactory = Callable[..., LibvirtProvider]


@pytest.fixture
def make_provider(
    libvirt_daemons: str, guest_image: Path, libvirt_state_dir: Path, libvirt_group: str
) -> Iterator[ProviderFactory]:
    made: list[LibvirtProvider] = []

    def factory(max_vcpus: int | None = None, **settings: object) -> LibvirtProvider:
        config = LibvirtProviderConfig(
            uri=libvirt_daemons,
            image_dir=str(guest_image),
            base_port=free_base_port(8),
            **settings,  # type: ignore[arg-type]
        )
        made.append(LibvirtProvider(config, libvirt_state_dir, max_vcpus=max_vcpus))
        return made[-1]

    try:
        yield factory
    finally:
        names = {n for n in virsh("list", "--all", "--name").split() if n.startswith(f"{libvirt_group}-")}
        for prov in made:
            for name in names:
                prov.terminate(name, graceful_timeout_s=0)
            prov.drop_goldens(libvirt_group)
            prov.close()


def closed_loop(url: str, n: int, clients: int, seconds: float) -> tuple[int, int, float]:
    """``clients`` threads asking fib(n) back to back for ``seconds``: (answered, failed, elapsed)."""
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        # One connection per request: the guest's uvicorn 0.17 can cut a kept-alive one.
        while time.monotonic() < stop_at:
            try:
                ok = httpx.get(f"{url}/fib/{n}", timeout=60, trust_env=False).status_code == 200
            except httpx.HTTPError:
                ok = False
            with lock:
                counts["ok" if ok else "failed"] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    return counts["ok"], counts["failed"], time.monotonic() - started


def capacity(url: str) -> tuple[int, int]:
    health = httpx.get(f"{url}/healthz", timeout=5, trust_env=False).json()
    return int(health["workers"]), int(health["cpus"])


def loaded_together(urls: list[str], n: int, seconds: float) -> list[float]:
    """Requests per second each URL served, all loaded at once (4 clients each); none may fail."""
    results: dict[str, tuple[int, int, float]] = {}
    threads = [
        threading.Thread(
            target=lambda u=u: results.__setitem__(u, closed_loop(u, n, clients=4, seconds=seconds))
        )
        for u in urls
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 180)
    assert all(results[u][1] == 0 for u in urls), f"requests failed: {results}"
    return [results[u][0] / results[u][2] for u in urls]


def test_a_vm_grows_from_one_to_two_vcpus_while_serving(
    make_provider: ProviderFactory, libvirt_group: str
) -> None:
    """A grows from 1 to 2 vCPUs under load; B, an identical 1-vCPU VM loaded in the same windows,
    is the yardstick: the host is shared, so what A serves is compared with what B serves at the
    same moment, before and after (an absolute rps would measure the neighbours as much as A)."""
    provider = make_provider(max_vcpus=2)
    grown, control = spec(libvirt_group, 1), spec(libvirt_group, 2)
    a, b = provider.launch(grown).endpoint, provider.launch(control).endpoint
    assert wait_healthy(a)["cpus"] == 1 and wait_healthy(b)["cpus"] == 1
    n, per_s = measure_request(a, 0.3, 35, reps=3)

    a_before, b_before = loaded_together([a, b], n, seconds=12)
    during: list[tuple[int, int, float]] = []
    loader = threading.Thread(target=lambda: during.append(closed_loop(a, n, clients=4, seconds=6)))
    loader.start()
    provider.resize(grown.name, 2)  # while A serves
    wait_until(lambda: capacity(a) == (2, 2), "the guest to run 2 workers on 2 online CPUs", 30, poll_s=0.1)
    loader.join(timeout=180)
    assert during and during[0][0] > 0 and during[0][1] == 0, f"requests failed during the resize: {during}"
    a_after, b_after = loaded_together([a, b], n, seconds=12)

    assert virsh("vcpucount", grown.name, "--live", "--active").strip() == "2"
    assert "cpu_shares     : 2048" in virsh("schedinfo", grown.name), "the host weight follows the vCPUs"
    assert {i.name: i.vcpus for i in provider.list(libvirt_group)} == {grown.name: 2, control.name: 1}
    gain = (a_after / b_after) / (a_before / b_before)
    print(
        f"fib({n}) ~{per_s:.2f} s; rps A/B before {a_before:.2f}/{b_before:.2f}, "
        f"after {a_after:.2f}/{b_after:.2f}: A gained {gain:.2f}x against B"
    )
    assert a_after / b_after >= 1.5, f"with 2 vCPUs A served {a_after / b_after:.2f}x what 1-vCPU B did"
    assert gain >= 1.5, f"A's requests per second relative to B's grew only {gain:.2f}x"


def overlay_backing(path: Path) -> str:
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return str(json.loads(out).get("backing-filename", ""))


def servers(url: str, times: int = 3) -> set[str]:
    """The names an instance answers with, from every kind of answer."""
    names = set()
    with httpx.Client(timeout=30, trust_env=False) as http:
        for _ in range(times):
            names.add(http.get(f"{url}/healthz").json()["server"])
            names.add(http.get(f"{url}/fib/10").json()["server"])
            names.add(http.get(f"{url}/").json()["message"].removeprefix("Hello from "))
    return names


def test_a_clone_answers_with_its_own_name_and_is_removed_cleanly(
    make_provider: ProviderFactory, libvirt_group: str, libvirt_state_dir: Path
) -> None:
    provider = make_provider(launch="clone")
    files = provider.files_dir
    first, second = spec(libvirt_group, 1), spec(libvirt_group, 2)

    provider.prepare(first)  # boots the golden once and saves it
    goldens = [d for d in (files / "golden" / libvirt_group).iterdir() if d.is_dir()]
    assert len(goldens) == 1 and {p.name for p in goldens[0].iterdir()} >= {"disk.qcow2", "memory.sav"}
    assert f"{libvirt_group}-golden" not in virsh("list", "--all", "--name").split(), (
        "saved: gone from libvirt"
    )

    started = time.monotonic()
    one = provider.launch(first)
    two = provider.launch(second)
    for s, inst in ((first, one), (second, two)):
        health = wait_healthy(inst.endpoint, deadline_s=BOOT_DEADLINE_S)
        assert health["server"] == s.name
        assert servers(inst.endpoint) == {s.name}, "a clone answered under another name"
    print(f"two clones restored and serving in {time.monotonic() - started:.2f} s")

    running = set(virsh("list", "--name").split())
    assert {first.name, second.name} <= running
    assert virsh("domuuid", first.name) != virsh("domuuid", second.name)
    for s in (first, second):
        assert overlay_backing(provider.overlay_path(s.name)) == str(goldens[0] / "disk.qcow2")
    assert provider.launch(first).name == first.name and servers(one.endpoint, times=1) == {first.name}

    for s in (first, second):
        provider.terminate(s.name, graceful_timeout_s=0)
    assert not ({first.name, second.name} & set(virsh("list", "--all", "--name").split()))
    leftovers = [
        p for p in files.rglob("*") if p.is_file() and "golden" not in p.parts and p.suffix != ".log"
    ]
    assert leftovers == [], f"a clone left files behind: {leftovers}"
    assert list((files / "restore").iterdir()) == [], "a restore FIFO was left behind"
    assert not [p for p in files.rglob("*.sav") if "golden" not in p.parts], "a clone has a save image"

    provider.drop_goldens(libvirt_group)
    assert not (files / "golden" / libvirt_group).exists()
    assert not list(files.rglob("*.sav")) and not list(files.rglob("*.qcow2"))
