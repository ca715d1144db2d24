"""Two groups' libvirt providers on one host share its headroom: against libvirt's in-process test
driver (``test:///default``, one host whose domains every connection sees), launches of both groups
are refused together at the vCPU limit, also when they race each other."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.unit.test_libvirt_provider import make_provider, spec
from vmscale.errors import TemporaryProviderError
from vmscale.providers.libvirt.connection import LibvirtConnection
from vmscale.providers.libvirt.host import HeadroomGuard
from vmscale.providers.libvirt.provider import LibvirtProvider

ROOM = 2  # vCPUs the limit leaves for the test's launches


def running_vcpus() -> int:
    conn = libvirt.open("test:///default")
    try:
        return sum(int(d.info()[3]) for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
    finally:
        conn.close()


def overcommit_leaving(room: int) -> float:
    """The max_vcpu_overcommit at which ``room`` more 1-vCPU VMs fit on this host, and no more."""
    return (running_vcpus() + room + 0.5) / (os.cpu_count() or 1)


class CountsTogether(LibvirtConnection):
    """A connection whose vCPU count waits until the other launch has counted too: the two checks
    happen at the same moment, as two groups' launches on a busy host can."""

    def __init__(self, uri: str, barrier: threading.Barrier) -> None:
        super().__init__(uri)
        self.barrier = barrier

    def call(self, what: str, fn: Callable[[Any], Any], **kw: Any) -> Any:
        result = super().call(what, fn, **kw)
        if what == "count vCPUs":
            self.barrier.wait(timeout=20)
        return result


Made = list[tuple[LibvirtProvider, str]]  # (provider, its group), removed after the test


@pytest.fixture
def made() -> Iterator[Made]:
    out: Made = []
    yield out
    for prov, group in out:
        for inst in prov.list(group):
            prov.terminate(inst.name, graceful_timeout_s=0)
        prov.close()


def two_groups(made: Made, tmp_path: Path, image: Path) -> Made:
    """Two groups' providers on the one test host, which has room for ``ROOM`` more vCPUs."""
    room = overcommit_leaving(ROOM)
    for prefix in ("ga", "gb"):
        group = prefix + uuid.uuid4().hex[:6]
        made.append((make_provider(tmp_path / group, image, max_vcpu_overcommit=room), group))
    return made


def test_each_groups_vms_count_against_the_others_launches(
    made: Made,
    tmp_path: Path,
    image_dir: Path,
) -> None:
    (pa, a), (pb, b) = two_groups(made, tmp_path, image_dir)
    pa.launch(spec(a, 1))
    pb.launch(spec(b, 1))
    for prov, g in ((pa, a), (pb, b)):
        with pytest.raises(TemporaryProviderError, match="host CPU"):
            prov.launch(spec(g, 2))
    assert [i.name for i in pa.list(a)] == [f"{a}-1"] and [i.name for i in pb.list(b)] == [f"{b}-1"]


def test_racing_launches_of_two_groups_never_overcommit_the_host(
    made: Made,
    tmp_path: Path,
    image_dir: Path,
) -> None:
    (pa, a), (pb, b) = two_groups(made, tmp_path, image_dir)
    assert pa.headroom is pb.headroom, "providers on one host share its guard"
    launches = [(pa, spec(a, 1)), (pb, spec(b, 1)), (pa, spec(a, 2)), (pb, spec(b, 2))]

    def launch(job: tuple[LibvirtProvider, Any]) -> str:
        try:
            job[0].launch(job[1])
            return "started"
        except TemporaryProviderError as exc:
            return "refused" if "host CPU" in str(exc) else str(exc)

    with ThreadPoolExecutor(len(launches)) as pool:
        outcomes = list(pool.map(launch, launches))
    assert sorted(outcomes) == ["refused", "refused", "started", "started"], outcomes
    assert len(pa.list(a)) + len(pb.list(b)) == ROOM


def test_without_a_shared_guard_two_checks_at_once_would_both_pass(
    made: Made,
    tmp_path: Path,
    image_dir: Path,
) -> None:
    """Why the guard exists: the same race with a guard per provider overcommits the host."""
    barrier = threading.Barrier(2)
    for group in ("ga" + uuid.uuid4().hex[:6], "gb" + uuid.uuid4().hex[:6]):
        plain = make_provider(tmp_path / group, image_dir, max_vcpu_overcommit=overcommit_leaving(1))
        plain.close()
        prov = LibvirtProvider(
            plain.config,
            tmp_path / group / "state",
            accel=plain.accel,
            connection=CountsTogether("test:///default", barrier),
        )
        prov.headroom = HeadroomGuard()  # not shared: the flaw the shared guard removes
        made.append((prov, group))
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda pg: pg[0].launch(spec(pg[1], 1)), made))
    assert sum(len(p.list(g)) for p, g in made) == 2, "both passed a check that only one fits"
