"""Resizing a running process instance: a new cgroup CPU quota and a new fib worker count, live."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_process_provider import DEADLINE_S, Instances, healthz, wait_healthy
from tests.support.wait import wait_until
from vmscale.errors import InstanceNotFoundError, PermanentProviderError


def capacity(endpoint: str) -> tuple[object, object] | None:
    answer = healthz(endpoint)
    return None if answer is None else (answer["workers"], answer["cpus"])


@pytest.fixture()
def cgroup_instances(tmp_path: Path) -> Iterator[Instances]:
    try:
        instances = Instances(tmp_path / "state", cpu_limit="cgroup")
    except PermanentProviderError as exc:
        pytest.fail(f"this host offers no writable cgroup CPU controller: {exc}")
    try:
        yield instances
    finally:
        instances.cleanup()


def test_resize_changes_quota_workers_and_the_reported_capacity(cgroup_instances: Instances) -> None:
    inst = cgroup_instances
    provider = inst.provider
    assert provider.cgroup is not None
    spec = inst.spec(vcpus=1)
    started = provider.launch(spec)
    assert wait_healthy(started.endpoint)["workers"] == 1
    cgroup = Path(started.details["cgroup"])
    pid = started.details["pid"]

    provider.resize(spec.name, 2)
    assert provider.cgroup.read_quota(cgroup) == (200_000, 100_000)
    wait_until(
        lambda: capacity(started.endpoint) == (2, 2), "the backend to run 2 workers on 2 CPUs", DEADLINE_S
    )
    (listed,) = provider.list(inst.group)
    assert listed.vcpus == 2 and listed.details["pid"] == pid, "resized in place, not restarted"
    record = json.loads((inst.state_dir / "process" / f"{spec.name}.json").read_text())
    assert record["vcpus"] == 2

    provider.resize(spec.name, 1)
    assert provider.cgroup.read_quota(cgroup) == (100_000, 100_000)
    wait_until(
        lambda: capacity(started.endpoint) == (1, 1), "the backend to shrink back to 1 worker", DEADLINE_S
    )
    assert provider.list(inst.group)[0].details["pid"] == pid


def test_resize_without_a_cgroup_changes_the_worker_count(tmp_path: Path) -> None:
    inst = Instances(tmp_path / "state", cpu_limit="workers")
    try:
        spec = inst.spec(vcpus=1)
        started = inst.provider.launch(spec)
        wait_healthy(started.endpoint)
        inst.provider.resize(spec.name, 2)
        wait_until(
            lambda: (capacity(started.endpoint) or (0,))[0] == 2, "the backend to run 2 workers", DEADLINE_S
        )
        assert (inst.state_dir / "process" / f"{spec.name}.workers").read_text().strip() == "2"
        inst.provider.terminate(spec.name, graceful_timeout_s=3.0)
        assert not (inst.state_dir / "process" / f"{spec.name}.workers").exists()
    finally:
        inst.cleanup()


def test_resize_errors_are_typed_and_say_what_is_wrong(tmp_path: Path) -> None:
    inst = Instances(tmp_path / "state", cpu_limit="workers")
    try:
        with pytest.raises(InstanceNotFoundError):
            inst.provider.resize(f"{inst.group}-9", 2)
        spec = inst.spec()
        inst.provider.launch(spec)
        with pytest.raises(PermanentProviderError, match="between 1 and 64"):
            inst.provider.resize(spec.name, 0)
    finally:
        inst.cleanup()
