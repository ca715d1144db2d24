"""The process provider against real backend processes on loopback ports.

Every instance a test launches is terminated in the fixture's finaliser (also when the test
fails), and any process the test itself starts is killed there too. Waits poll with a deadline;
CPU bounds are generous because the machine may be busy with other work.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Literal

import httpx
import psutil
import pytest

from tests.integration.live_support import free_base_port
from tests.support.wait import wait_until
from vmscale.config.process import ProcessProviderConfig
from vmscale.errors import InstanceNotFoundError, PermanentProviderError
from vmscale.providers import proctree
from vmscale.providers.base import InstanceSpec, Provider, ProviderStatus, instance_port
from vmscale.providers.process import ProcessProvider

DEADLINE_S = 30.0
SPIN = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end:\n    pass\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthz(endpoint: str, timeout_s: float = 1.0) -> dict[str, object] | None:
    try:
        response = httpx.get(f"{endpoint}/healthz", timeout=timeout_s)
        return dict(response.json()) if response.status_code == 200 else None
    except httpx.HTTPError:
        return None


def wait_healthy(endpoint: str) -> dict[str, object]:
    answers: list[dict[str, object]] = []

    def ok() -> bool:
        answer = healthz(endpoint)
        if answer is not None:
            answers.append(answer)
        return answer is not None

    wait_until(ok, f"{endpoint}/healthz to answer", DEADLINE_S)
    return answers[-1]


def gone(pids: list[int]) -> bool:
    return not any(proctree.alive(p) for p in _procs(pids))


def _procs(pids: list[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            found.append(psutil.Process(pid))
    return found


class Instances:
    """A provider plus a group name unique to the test, and cleanup of what it launched."""

    def __init__(self, state_dir: Path, cpu_limit: Literal["auto", "cgroup", "workers"] = "auto") -> None:
        self.state_dir = state_dir
        self.group = "it" + uuid.uuid4().hex[:6]
        self.base_port = free_base_port(4)
        config = ProcessProviderConfig(cpu_limit=cpu_limit, base_port=self.base_port)
        self.provider = ProcessProvider(config, state_dir, fib_max_n=32)
        self.extra_pids: list[int] = []

    def port(self, index: int) -> int:
        return instance_port(self.base_port, index)

    def spec(self, index: int = 1, vcpus: int = 1, **workload_args: str) -> InstanceSpec:
        return InstanceSpec(
            group=self.group,
            name=f"{self.group}-{index}",
            index=index,
            vcpus=vcpus,
            workload_args=workload_args,
        )

    def cleanup(self) -> None:
        for record in (self.state_dir / "process").glob("*.json"):
            self.provider.terminate(record.stem, graceful_timeout_s=3.0)
        for pid in self.extra_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture()
def inst(tmp_path: Path) -> Iterator[Instances]:
    instances = Instances(tmp_path / "state")
    try:
        yield instances
    finally:
        instances.cleanup()


def run_load(endpoint: str, n: int, clients: int, duration_s: float) -> int:
    """``clients`` threads each asking for fib(n) in a loop for ``duration_s``; returns answers."""
    answered = [0]
    stop_at = time.monotonic() + duration_s

    def client() -> None:
        with httpx.Client(timeout=10.0) as http:
            while time.monotonic() < stop_at:
                if http.get(f"{endpoint}/fib/{n}").status_code == 200:
                    answered[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration_s + 15)
    return answered[0]


def test_is_a_provider(inst: Instances) -> None:
    assert isinstance(inst.provider, Provider)


def test_launch_serves_lists_and_relaunch_is_idempotent(inst: Instances) -> None:
    spec = inst.spec()
    first = inst.provider.launch(spec)
    assert first.endpoint == f"http://127.0.0.1:{inst.port(spec.index)}"
    assert wait_healthy(first.endpoint)["server"] == spec.name

    record = json.loads((inst.state_dir / "process" / f"{spec.name}.json").read_text())
    assert record["pid"] == int(first.details["pid"]) and record["port"] == inst.port(spec.index)
    assert record["create_time"] == psutil.Process(record["pid"]).create_time()

    listed = inst.provider.list(inst.group)
    assert [(i.name, i.status, i.endpoint) for i in listed] == [
        (spec.name, ProviderStatus.RUNNING, first.endpoint)
    ]
    assert inst.provider.list("some-other-group") == []

    again = inst.provider.launch(spec)
    assert again.details["pid"] == first.details["pid"]
    assert len(inst.provider.list(inst.group)) == 1


def test_the_launching_controllers_epoch_is_recorded_and_listed(inst: Instances) -> None:
    """A controller that lost leadership must see a newer leader's instances as such (issue 16)."""
    spec = replace(inst.spec(), epoch=5)
    made = inst.provider.launch(spec)
    record = json.loads((inst.state_dir / "process" / f"{spec.name}.json").read_text())
    assert record["epoch"] == 5 and made.details["epoch"] == "5"
    restarted = ProcessProvider(ProcessProviderConfig(), inst.state_dir)
    assert [i.details["epoch"] for i in restarted.list(inst.group)] == ["5"]
    assert inst.provider.launch(replace(spec, epoch=6)).details["epoch"] == "5", "adopted, not relaunched"


def test_instance_survives_the_provider_and_is_found_by_a_new_one(inst: Instances) -> None:
    """A controller crash must not stop the data path; a restarted one adopts from records."""
    first = inst.provider.launch(inst.spec())
    wait_healthy(first.endpoint)
    inst.provider.close()
    assert healthz(first.endpoint) is not None

    restarted = ProcessProvider(ProcessProviderConfig(), inst.state_dir)
    assert [i.details["pid"] for i in restarted.list(inst.group)] == [first.details["pid"]]
    restarted.terminate(first.name, graceful_timeout_s=5.0)
    assert inst.provider.list(inst.group) == []


def test_sample_is_high_under_load_and_low_when_idle(inst: Instances) -> None:
    spec = inst.spec(vcpus=1)
    started = inst.provider.launch(spec)
    wait_healthy(started.endpoint)
    assert inst.provider.sample([spec.name]) == {}, "the first call only sets the baseline"

    time.sleep(1.5)
    idle = inst.provider.sample([spec.name])[spec.name]
    assert idle < 20.0, f"an idle backend should use little CPU, measured {idle:.1f} %"

    # What "high" can mean depends on how busy the host is, so a spinning reference process
    # measured over the same window says what one runnable process gets here right now
    # (about 100 % on a quiet machine, much less when other work shares the cores).
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    inst.extra_pids.append(spinner.pid)
    try:
        reference = psutil.Process(spinner.pid)
        ref_cpu, ref_wall = sum(reference.cpu_times()[:2]), time.monotonic()
        inst.provider.sample([spec.name])
        answered = run_load(started.endpoint, n=28, clients=2, duration_s=3.0)
        busy = inst.provider.sample([spec.name])[spec.name]
        ref = (sum(reference.cpu_times()[:2]) - ref_cpu) / (time.monotonic() - ref_wall) * 100
    finally:
        spinner.kill()
        spinner.wait(timeout=10)
    assert answered > 0
    assert busy > 0.5 * ref, f"fib load should show up: busy {busy:.1f} %, a spinning process got {ref:.1f} %"
    assert busy > 3 * idle
    assert busy <= 100.0
    assert inst.provider.sample(["no-such-instance"]) == {}


def test_cgroup_quota_holds_two_workers_to_one_cpu(tmp_path: Path) -> None:
    try:
        instances = Instances(tmp_path / "state", cpu_limit="cgroup")
    except PermanentProviderError as exc:
        pytest.fail(f"this host offers no writable cgroup CPU controller: {exc}")
    cgroup: Path | None = None
    try:
        provider = instances.provider
        assert provider.cgroup is not None
        spec = instances.spec(vcpus=1, workers="2")
        started = provider.launch(spec)
        wait_healthy(started.endpoint)
        cgroup = Path(started.details["cgroup"])
        assert provider.cgroup.read_quota(cgroup) == (100_000, 100_000)
        leader = psutil.Process(int(started.details["pid"]))
        members = {p.pid for p in proctree.tree(leader)}
        assert members <= set(map(int, (cgroup / "cgroup.procs").read_text().split())), (
            "the backend and its pool workers must all be in the instance's cgroup"
        )

        cpu_before, wall_before = proctree.tree_cpu_seconds(leader), time.monotonic()
        answered = run_load(started.endpoint, n=28, clients=2, duration_s=4.0)
        used_cpus = (proctree.tree_cpu_seconds(leader) - cpu_before) / (time.monotonic() - wall_before)
        assert answered > 0
        assert used_cpus < 1.3, f"two busy workers under a 1-CPU quota used {used_cpus:.2f} CPUs"
        # The kernel counts enforcement periods only for a cgroup that has a bandwidth limit.
        # (Whether it also throttled depends on how busy the machine is, so that is not asserted.)
        stat = dict(line.split() for line in (cgroup / "cpu.stat").read_text().splitlines())
        assert int(stat["nr_periods"]) > 0, f"the CPU quota is not being enforced: {stat}"
    finally:
        instances.cleanup()
    assert cgroup is not None and not cgroup.exists()


def test_pause_stops_answering_and_resume_brings_it_back(inst: Instances) -> None:
    started = inst.provider.launch(inst.spec())
    wait_healthy(started.endpoint)

    inst.provider.pause(started.name)
    assert [i.status for i in inst.provider.list(inst.group)] == [ProviderStatus.PAUSED]
    assert healthz(started.endpoint, timeout_s=1.0) is None

    inst.provider.resume(started.name)
    assert [i.status for i in inst.provider.list(inst.group)] == [ProviderStatus.RUNNING]
    wait_healthy(started.endpoint)

    with pytest.raises(PermanentProviderError, match="only be paused"):
        inst.provider.pause(started.name, kind="saved")
    with pytest.raises(InstanceNotFoundError):
        inst.provider.pause("never-launched")


def test_terminate_removes_tree_cgroup_and_record_but_keeps_the_log(inst: Instances) -> None:
    spec = inst.spec(vcpus=1, workers="2")
    started = inst.provider.launch(spec)
    wait_healthy(started.endpoint)
    leader = psutil.Process(int(started.details["pid"]))
    pids = [p.pid for p in proctree.tree(leader)]
    assert len(pids) >= 3, f"expected the backend and two workers, found {pids}"
    inst.provider.pause(spec.name)  # a paused instance must still stop promptly

    inst.provider.terminate(spec.name, graceful_timeout_s=5.0)
    assert gone(pids)
    assert not (inst.state_dir / "process" / f"{spec.name}.json").exists()
    assert (inst.state_dir / "process" / f"{spec.name}.log").exists()
    if "cgroup" in started.details:
        assert not Path(started.details["cgroup"]).exists()
    assert inst.provider.list(inst.group) == []
    inst.provider.terminate(spec.name)  # missing is success
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", inst.port(spec.index)))


def test_killed_instance_is_no_longer_listed(inst: Instances) -> None:
    spec = inst.spec(vcpus=1, workers="2")
    started = inst.provider.launch(spec)
    wait_healthy(started.endpoint)
    leader = psutil.Process(int(started.details["pid"]))
    pids = [p.pid for p in proctree.tree(leader)]

    os.kill(leader.pid, signal.SIGKILL)
    wait_until(
        lambda: inst.provider.list(inst.group) == [], "the killed instance to disappear from list", DEADLINE_S
    )
    assert not (inst.state_dir / "process" / f"{spec.name}.json").exists()
    wait_until(lambda: gone(pids), "the killed instance's workers to be cleaned up", DEADLINE_S)
    assert inst.provider.sample([spec.name]) == {}


def test_record_with_reused_pid_is_not_adopted(inst: Instances) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    inst.extra_pids.append(stranger.pid)
    try:
        spec = inst.spec()
        record = {
            "name": spec.name, "group": inst.group, "pid": stranger.pid, "port": inst.port(spec.index),
            "create_time": psutil.Process(stranger.pid).create_time() - 100.0, "vcpus": 1, "cgroup": "",
        }  # fmt: skip
        (inst.state_dir / "process" / f"{spec.name}.json").write_text(json.dumps(record))

        assert inst.provider.list(inst.group) == []
        assert not (inst.state_dir / "process" / f"{spec.name}.json").exists(), "stale record removed"
        (inst.state_dir / "process" / f"{spec.name}.json").write_text(json.dumps(record))
        inst.provider.terminate(spec.name, graceful_timeout_s=1.0)
        assert stranger.poll() is None, "a process that merely reuses the pid must never be signalled"

        (inst.state_dir / "process" / f"{spec.name}.json").write_text(json.dumps(record))
        launched = inst.provider.launch(spec)
        assert int(launched.details["pid"]) != stranger.pid
        wait_healthy(launched.endpoint)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait(timeout=10)


def test_port_conflicts_are_refused_with_a_clear_error(inst: Instances) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", inst.port(1)))
        squatter.listen()
        spec = inst.spec()
        with pytest.raises(PermanentProviderError, match=f"port {inst.port(1)} .*already in use"):
            inst.provider.launch(spec)
    assert inst.provider.list(inst.group) == []
    assert not (inst.state_dir / "process" / f"{spec.name}.json").exists()

    first = inst.provider.launch(inst.spec(index=1))
    # Another provider over the same records whose base puts instance 2 on instance 1's port.
    shifted = ProcessProvider(ProcessProviderConfig(base_port=inst.base_port - 1), inst.state_dir)
    clash = InstanceSpec(group=inst.group, name=f"{inst.group}-2", index=2)
    with pytest.raises(PermanentProviderError, match=f"already used by instance {first.name}"):
        shifted.launch(clash)


def test_unsafe_names_are_refused(inst: Instances) -> None:
    with pytest.raises(PermanentProviderError, match="instance names must be"):
        inst.provider.launch(InstanceSpec(group=inst.group, name="../escape", index=1))


def test_adopted_instance_that_died_unreaped_is_reported_stopped(inst: Instances) -> None:
    """A leader we did not start (found after a restart) whose parent never reaps it is a zombie."""
    script = "import subprocess as sp, time\nprint(sp.Popen(['sleep', '60']).pid, flush=True)\ntime.sleep(60)"
    neglectful_parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    inst.extra_pids.append(neglectful_parent.pid)
    try:
        assert neglectful_parent.stdout is not None
        orphan = psutil.Process(int(neglectful_parent.stdout.readline()))
        inst.extra_pids.append(orphan.pid)
        spec = inst.spec()
        record = {
            "name": spec.name, "group": inst.group, "pid": orphan.pid, "port": inst.port(spec.index),
            "create_time": orphan.create_time(), "vcpus": 1, "cgroup": "",
        }  # fmt: skip
        (inst.state_dir / "process" / f"{spec.name}.json").write_text(json.dumps(record))
        assert [i.status for i in inst.provider.list(inst.group)] == [ProviderStatus.RUNNING]

        orphan.kill()
        wait_until(
            lambda: orphan.status() == psutil.STATUS_ZOMBIE,
            "the killed process to become a zombie",
            DEADLINE_S,
        )
        assert [i.status for i in inst.provider.list(inst.group)] == [ProviderStatus.STOPPED]
        inst.provider.terminate(spec.name, graceful_timeout_s=1.0)
        assert inst.provider.list(inst.group) == []
        assert neglectful_parent.poll() is None, "terminate must not touch anything outside the instance"
    finally:
        neglectful_parent.kill()
        neglectful_parent.wait(timeout=10)
