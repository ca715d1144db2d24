"""LibvirtProvider's bookkeeping against libvirt's in-process test driver (``test:///default``).

No daemon and no VM: the test driver keeps domains in memory but runs the real libvirt API, so
metadata, lifecycle, idempotent launch and clean-up are exercised for real. Booting real guests is
in tests/e2e/test_libvirt_provider.py.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from vmscale.config.libvirt import LibvirtProviderConfig
from vmscale.errors import PermanentProviderError, TemporaryProviderError
from vmscale.providers.base import InstanceSpec, ProviderStatus
from vmscale.providers.libvirt.accel import AccelChoice
from vmscale.providers.libvirt.connection import LibvirtConnection
from vmscale.providers.libvirt.provider import LibvirtProvider


def make_provider(
    tmp_path: Path, image_dir: Path, *, max_vcpus: int | None = None, **overrides: object
) -> LibvirtProvider:
    config = LibvirtProviderConfig(
        uri="test:///default",
        image_dir=str(image_dir),
        instance_dir=str(tmp_path / "instances"),
        base_port=30000,
        **overrides,  # type: ignore[arg-type]
    )
    accel = AccelChoice("tcg", "unit test")
    return LibvirtProvider(config, tmp_path / "state", accel=accel, max_vcpus=max_vcpus)


@pytest.fixture
def provider(tmp_path: Path, image_dir: Path) -> Iterator[LibvirtProvider]:
    prov = make_provider(tmp_path, image_dir)
    yield prov
    prov.close()


@pytest.fixture
def group() -> str:
    return "g" + uuid.uuid4().hex[:8]


def spec(group: str, index: int = 1) -> InstanceSpec:
    return InstanceSpec(group=group, name=f"{group}-{index}", index=index, vcpus=1, memory_mb=256)


def test_launch_makes_an_overlay_and_a_running_domain_with_metadata(
    provider: LibvirtProvider, group: str
) -> None:
    inst = provider.launch(spec(group, 3))
    assert inst.status is ProviderStatus.RUNNING and inst.endpoint == "http://127.0.0.1:30003"
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", "-U", inst.details["overlay"]],
            capture_output=True, check=True, text=True, timeout=30,
        ).stdout
    )  # fmt: skip
    assert info["backing-filename"].endswith("base.qcow2") and info["backing-filename-format"] == "qcow2"
    (listed,) = provider.list(group)
    assert (listed.name, listed.status, listed.details["port"]) == (
        f"{group}-3",
        ProviderStatus.RUNNING,
        "30003",
    )
    assert listed.details["console_log"].endswith(f"console/{group}-3.log")


def test_list_reports_only_this_groups_domains_in_index_order(provider: LibvirtProvider, group: str) -> None:
    for i in (2, 1):
        provider.launch(spec(group, i))
    provider.launch(spec(group + "x", 1))
    assert [i.name for i in provider.list(group)] == [f"{group}-1", f"{group}-2"]
    assert [i.name for i in provider.list(group + "x")] == [f"{group}x-1"]


def test_repeated_launch_adopts_instead_of_duplicating(provider: LibvirtProvider, group: str) -> None:
    first = provider.launch(spec(group))
    second = provider.launch(spec(group))
    assert second.details.get("uuid", first.details["uuid"]) == first.details["uuid"]
    assert len(provider.list(group)) == 1


def test_a_stopped_half_made_domain_is_finished_by_the_next_launch(
    provider: LibvirtProvider, group: str
) -> None:
    s = spec(group)
    provider.launch(s)
    provider.conn.call("destroy", lambda c: c.lookupByName(s.name).destroy())  # as if the VM died
    assert provider.list(group)[0].status is ProviderStatus.STOPPED
    assert provider.launch(s).status is ProviderStatus.RUNNING
    assert provider.list(group)[0].status is ProviderStatus.RUNNING


@pytest.mark.parametrize(
    ("kind", "parked"), [("paused", ProviderStatus.PAUSED), ("saved", ProviderStatus.SAVED)]
)
def test_pause_and_resume(provider: LibvirtProvider, group: str, kind: str, parked: ProviderStatus) -> None:
    s = spec(group)
    provider.launch(s)
    provider.pause(s.name, kind)  # type: ignore[arg-type]
    assert provider.list(group)[0].status is parked
    provider.resume(s.name)
    assert provider.list(group)[0].status is ProviderStatus.RUNNING


def test_terminate_removes_domain_and_overlay_and_is_idempotent(
    provider: LibvirtProvider, group: str
) -> None:
    s = spec(group)
    inst = provider.launch(s)
    provider.pause(s.name, "saved")  # a managed-save image must not block undefine
    provider.terminate(s.name, graceful_timeout_s=0)
    assert provider.list(group) == []
    assert not Path(inst.details["overlay"]).exists()
    assert list((provider.files_dir / "overlays").iterdir()) == []
    provider.terminate(s.name)


def test_headroom_refusal_is_temporary_and_leaves_nothing(
    tmp_path: Path, image_dir: Path, group: str
) -> None:
    prov = make_provider(tmp_path, image_dir, max_vcpu_overcommit=0.01)
    with pytest.raises(TemporaryProviderError, match="host CPU"):
        prov.launch(spec(group))
    assert list((prov.files_dir / "overlays").iterdir()) == []
    prov.close()


def test_a_foreign_domain_with_the_same_name_is_not_taken_over(provider: LibvirtProvider, group: str) -> None:
    name = f"{group}-1"
    foreign = (
        f"<domain type='test'><name>{name}</name><memory>65536</memory><os><type>hvm</type></os></domain>"
    )
    provider.conn.call("define", lambda c: c.defineXML(foreign))
    with pytest.raises(PermanentProviderError, match="not this group"):
        provider.launch(spec(group))
    assert provider.list(group) == []


def test_missing_image_is_a_permanent_error_naming_the_fix(tmp_path: Path, group: str) -> None:
    prov = make_provider(tmp_path, tmp_path / "no-image")
    with pytest.raises(PermanentProviderError, match="vmscale image build"):
        prov.launch(spec(group))
    prov.close()


def test_unreachable_daemon_is_a_temporary_error_not_a_libvirt_exception() -> None:
    conn = LibvirtConnection(
        "qemu+unix:///system?socket=/nonexistent/libvirt-sock", timeout_s=10, keepalive=False
    )
    with pytest.raises(TemporaryProviderError, match="cannot connect"):
        conn.call("list", lambda c: c.listAllDomains(0))


def test_a_domain_whose_overlay_vanished_is_remade_not_adopted(provider: LibvirtProvider, group: str) -> None:
    s = spec(group)
    first = provider.launch(s)
    Path(first.details["overlay"]).unlink()
    second = provider.launch(s)
    assert Path(second.details["overlay"]).exists()
    assert second.details["uuid"] != first.details["uuid"]
    assert len(provider.list(group)) == 1


def test_a_hung_libvirt_call_is_cut_off_and_the_next_call_reconnects() -> None:
    import threading

    conn = LibvirtConnection("test:///default", timeout_s=0.2)
    release = threading.Event()
    try:
        with pytest.raises(TemporaryProviderError, match="did not answer within"):
            conn.call("hang", lambda c: release.wait(30))
    finally:
        release.set()
    assert conn.call("version", lambda c: c.getLibVersion()) > 0
    conn.close()


def test_resize_hot_adds_within_the_room_the_domain_was_defined_with(
    tmp_path: Path, image_dir: Path, group: str
) -> None:
    from vmscale.errors import InstanceNotFoundError
    from vmscale.providers.libvirt.resize import ResizeOutOfRange, ResizeUnsupported

    prov = make_provider(tmp_path, image_dir, max_vcpus=4)
    try:
        prov.launch(spec(group))
        name = f"{group}-1"
        dom = prov._lookup(name)
        assert dom is not None and "workers=auto" in dom.XMLDesc(0)  # the guest follows its CPUs
        prov.resize(name, 3)
        assert [i.vcpus for i in prov.list(group)] == [3]
        prov.resize(name, 3)  # idempotent
        with pytest.raises(ResizeOutOfRange, match=r"room for 4; raise template\.max_vcpus"):
            prov.resize(name, 5)
        with pytest.raises(ResizeOutOfRange, match="at least 1"):
            prov.resize(name, 0)
        assert prov.can_shrink is False
        with pytest.raises(ResizeUnsupported, match=r"cannot shrink .* from 3 to 2 vCPUs live"):
            prov.resize(name, 2)
        assert [i.vcpus for i in prov.list(group)] == [3]
        with pytest.raises(InstanceNotFoundError):
            prov.resize(f"{group}-9", 2)
    finally:
        prov.close()


def test_a_resize_that_would_overcommit_the_host_is_refused_like_a_launch(
    tmp_path: Path, image_dir: Path, group: str
) -> None:
    """A hot-added vCPU loads the host as a new VM's would: growth past the vCPU limit is refused
    (a temporary error, as for a launch), and the domain keeps its size."""
    from tests.unit.test_libvirt_shared_headroom import overcommit_leaving
    from vmscale.errors import TemporaryProviderError

    prov = make_provider(tmp_path, image_dir, max_vcpus=4)
    try:
        prov.launch(spec(group))
        name = f"{group}-1"
        prov.config = prov.config.model_copy(update={"max_vcpu_overcommit": overcommit_leaving(1)})
        prov.resize(name, 2)  # the one vCPU the limit leaves
        with pytest.raises(TemporaryProviderError, match=r"not growing .* from 2 to 3 vCPUs: host CPU"):
            prov.resize(name, 3)
        assert [i.vcpus for i in prov.list(group)] == [2]
    finally:
        prov.close()


def test_without_room_the_domain_keeps_a_fixed_worker_count(provider: LibvirtProvider, group: str) -> None:
    provider.launch(spec(group))
    dom = provider._lookup(f"{group}-1")
    assert dom is not None and "vmscale.workers=1" in dom.XMLDesc(0)


def test_shrinking_is_allowed_where_the_operator_says_the_stack_handles_it(
    tmp_path: Path, image_dir: Path, group: str
) -> None:
    prov = make_provider(tmp_path, image_dir, max_vcpus=4, vcpu_unplug=True)
    try:
        prov.launch(spec(group))
        prov.resize(f"{group}-1", 3)
        prov.resize(f"{group}-1", 2)
        assert prov.can_shrink and [i.vcpus for i in prov.list(group)] == [2]
    finally:
        prov.close()


def test_memory_follows_the_vcpus_by_balloon_where_the_template_gives_it_room(
    tmp_path: Path, image_dir: Path, group: str
) -> None:
    from vmscale.providers.libvirt.resize import memory_room

    room = memory_room(vcpus=1, max_vcpus=3, memory_mb=256, max_memory_mb=768)
    config = LibvirtProviderConfig(
        uri="test:///default", image_dir=str(image_dir), instance_dir=str(tmp_path / "i"), base_port=30000
    )
    prov = LibvirtProvider(
        config, tmp_path / "state", accel=AccelChoice("tcg", "unit test"), max_vcpus=3, memory_room=room
    )
    try:
        prov.launch(spec(group))
        dom = prov._lookup(f"{group}-1")
        assert dom is not None
        assert "<memballoon model='virtio'>" in dom.XMLDesc(0), "a balloon to grow by"
        assert (dom.maxMemory(), dom.info()[2]) == (768 * 1024, 256 * 1024), "room to 768, started at 256"
        prov.resize(f"{group}-1", 2)
        assert dom.info()[2] == 512 * 1024, "half way in vCPUs, half way in memory"
        prov.resize(f"{group}-1", 3)
        assert dom.info()[2] == 768 * 1024
    finally:
        prov.close()


class _Stopped(libvirt.libvirtError):
    """What libvirt raises for an operation on a domain in the wrong state ("domain is not running")."""

    def __init__(self) -> None:
        Exception.__init__(self, "Requested operation is not valid: domain is not running")

    def get_error_code(self) -> int:
        return int(libvirt.VIR_ERR_OPERATION_INVALID)


class _RacingDomain:
    """A domain whose guest finishes its ACPI shutdown between ``isActive`` and ``destroy``."""

    def __init__(self, *, stops: bool) -> None:
        self.active, self.stops, self.undefined = True, stops, False

    def isActive(self) -> bool:
        return self.active

    def destroy(self) -> None:
        if self.stops:
            self.active = False
        raise _Stopped()

    def undefineFlags(self, flags: int) -> None:
        self.undefined = True


def test_a_domain_that_stops_by_itself_during_the_destroy_is_still_removed() -> None:
    """The terminate must not be reported as failed (and retried after a back-off) because the
    guest's own shutdown won the race with the destroy."""
    from vmscale.providers.libvirt.domains import destroy_and_undefine

    dom = _RacingDomain(stops=True)
    destroy_and_undefine(dom)  # type: ignore[arg-type]
    assert dom.undefined
    still_running = _RacingDomain(stops=False)  # the same error while it still runs is a real failure
    with pytest.raises(libvirt.libvirtError):
        destroy_and_undefine(still_running)  # type: ignore[arg-type]
    assert not still_running.undefined
