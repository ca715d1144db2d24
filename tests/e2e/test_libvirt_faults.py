"""Faults with real libvirt TCG guests and a real `vmscale up` process.

(a) kill -9 the controller at random moments while it scales a libvirt group up and in, restart
    it, and check after every trial: no orphan domain (libvirt and the state database agree), no
    duplicate QEMU, the count within [min, max], consistent within a deadline. Figures go to
    artifacts/fault_injection_libvirt.json.
(b) stop libvirtd for real while the group runs: the controller reports provider errors and backs
    off, the VMs keep serving on their loopback forwards (QEMU does not need libvirtd), and once
    libvirtd is back the controller acts on the provider again.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import REPO, free_port
from tests.e2e.libvirt_support import (
    db_instances,
    destroy_group,
    domains,
    group_config,
    keep_logs,
    libvirtd_stopped,
    metric_total,
    overlays,
    percentiles,
    qemu_count,
    qemu_process,
    to_toml,
)
from tests.support.controller_proc import ControllerProcess
from tests.support.wait import wait_until

TRIALS = int(os.environ.get("VMSCALE_FI_LIBVIRT_TRIALS", "10"))
MIN, MAX = 1, 2
SETTLE_S = 150.0  # restart + reconcile + (when a VM was lost or half-made) a TCG boot, on a busy host
ARTIFACT = REPO / "artifacts" / "fault_injection_libvirt.json"


class Rig:
    """One `vmscale up -c CONFIG` process on a libvirt group, restartable."""

    def __init__(self, group: str, state: Path, image: Path, *, initial: int = MIN) -> None:
        self.group, self.state = group, state
        port = free_port()
        cfg = group_config(
            group=group,
            state_dir=state,
            image_dir=image,
            min_count=MIN,
            max_count=MAX,
            initial=initial,
            api_port=port,
        )
        config = state / "vmscale.toml"
        config.write_text(to_toml(cfg))
        self.ctl = ControllerProcess(config, f"http://127.0.0.1:{port}", state / "controller.log", cwd=REPO)

    def group_status(self) -> dict[str, Any]:
        return self.ctl.group()

    def consistent(self, desired: int) -> bool:
        g = self.group_status()
        return (
            g["desired"] == g["ready"] == g["actual"] == desired
            and set(g["states"]) <= {"ready"}
            and len(domains(self.group)) == desired
        )

    def events(self) -> list[dict[str, Any]]:
        path = self.state / "autoscaler.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture
def rig_factory(
    libvirt_daemons: str, guest_image: Path, libvirt_state_dir: Path, libvirt_group: str
) -> Iterator[Any]:
    rigs: list[Rig] = []

    def make(**kw: Any) -> Rig:
        rig = Rig(libvirt_group, libvirt_state_dir, guest_image, **kw)
        rigs.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in rigs:
            rig.ctl.stop()
        keep_logs(libvirt_state_dir, libvirt_group)
        destroy_group(libvirt_group, libvirt_state_dir)
        assert domains(libvirt_group) == set(), "domains left behind"


@pytest.mark.timeout(120 * TRIALS + 300)
def test_kill_9_the_controller_while_it_scales_libvirt_vms(rig_factory: Any, libvirt_group: str) -> None:
    rig: Rig = rig_factory()
    rng = random.Random(20261125)
    rig.ctl.start()
    rig.ctl.wait_api()
    rig.ctl.post("/v1/group/pause")  # only the test's desired counts drive scaling
    wait_until(lambda: rig.consistent(MIN), "the first VM ready", SETTLE_S, poll_s=0.5)
    reconciled: list[float] = []
    recoveries: list[float] = []
    orphans = missing = duplicates = out_of_bounds = leftover_overlays = 0
    desired = MIN
    trials: list[dict[str, Any]] = []
    for trial in range(TRIALS):
        desired = MAX if desired == MIN else MIN
        rig.ctl.post("/v1/group/desired", {"desired": desired})
        # A TCG boot takes ~6-9 s and a terminate ~1-3 s: this lands in the launch, the boot, the
        # drain, the destroy, or just after.
        delay = rng.uniform(0.0, 8.0)
        time.sleep(delay)
        rig.ctl.kill()
        t0 = rig.ctl.start()
        rig.ctl.wait_api()  # the API starts only after restart reconciliation has finished
        reconciled.append(time.monotonic() - t0)
        wait_until(
            lambda d=desired: rig.consistent(d),
            f"trial {trial}: group consistent at {desired} after restart",
            SETTLE_S,
            poll_s=0.2,
        )
        recoveries.append(time.monotonic() - t0)
        defined = domains(libvirt_group)
        running = domains(libvirt_group, running_only=True)
        db = db_instances(rig.state, libvirt_group)
        qemus = qemu_count(defined | set(db))
        orphans += len(defined - set(db))
        missing += len(set(db) - defined) + len(defined - running)
        duplicates += sum(1 for c in qemus.values() if c > 1)
        out_of_bounds += int(not MIN <= len(defined) <= MAX)
        leftover_overlays += len(overlays(rig.state) - {f"{n}.qcow2" for n in defined})
        trials.append(
            {"trial": trial, "desired": desired, "kill_after_s": round(delay, 2), "domains": sorted(defined)}
        )
    figures = {
        "provider": "libvirt (TCG guests)",
        "trials": TRIALS,
        "orphans": orphans,
        "missing_or_not_running": missing,
        "duplicates": duplicates,
        "out_of_bounds": out_of_bounds,
        "leftover_overlays": leftover_overlays,
        "reconciled_s": percentiles(reconciled),
        "recovery_s": percentiles(recoveries),
        "note": "reconciled = from restarting `vmscale up` to its API answering (reconciliation done); "
        "recovery = to the group fully ready at the desired count with libvirt agreeing, including "
        "the interpreter start-up and, when a VM was lost or half-made, booting its replacement under TCG",
        "trial_log": trials,
    }
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=2))
    print(json.dumps({k: v for k, v in figures.items() if k != "trial_log"}, indent=2))
    assert (orphans, missing, duplicates, out_of_bounds, leftover_overlays) == (0, 0, 0, 0, 0), figures


OUTAGE_S = 30.0


def test_libvirtd_outage_is_reported_backed_off_and_survived(rig_factory: Any, libvirt_group: str) -> None:
    rig: Rig = rig_factory(initial=MAX)
    rig.ctl.start()
    rig.ctl.wait_api()
    rig.ctl.post("/v1/group/pause")
    wait_until(lambda: rig.consistent(MAX), "both VMs ready", SETTLE_S, poll_s=0.5)
    names = set(db_instances(rig.state, libvirt_group))
    endpoints = [i["endpoint"] for i in httpx.get(rig.ctl.api + "/v1/instances", timeout=5).json()]
    qemus = {n: qemu_process(n) for n in names}
    errors_before = metric_total(rig.ctl.api, "vmscale_provider_errors_total")

    served = 0
    with libvirtd_stopped():
        t_down = time.time()
        end = time.monotonic() + OUTAGE_S
        while time.monotonic() < end:
            # The data path does not need libvirtd: every VM answers on its loopback forward.
            for ep in endpoints:
                r = httpx.get(f"{ep}/fib/15", timeout=10)
                assert r.status_code == 200, (ep, r.status_code)
                served += 1
            assert rig.group_status()["ready"] == MAX  # nothing was failed for libvirtd's absence
            time.sleep(1.0)
        t_up = time.time()
        errors_during = metric_total(rig.ctl.api, "vmscale_provider_errors_total") - errors_before
    assert served >= len(endpoints) * 10

    outage = [e for e in rig.events() if e["type"] == "error" and t_down <= e["t"] <= t_up]
    by_where = collections.Counter(e["data"]["where"] for e in outage)
    assert by_where, "no provider error was reported while libvirtd was down"
    assert errors_during >= 1
    assert all("libvirt" in e["data"]["message"] for e in outage), outage[:3]
    # Back-off, not a tight loop: each failing operation (listing, CPU sampling) is retried after
    # 2, 4, 8, 16 s (backoff_initial_s=1, doubling, backoff_max_s=16): at most ~6 errors each in
    # 30 s, against 30 with one per 1 s interval, and the gaps between them grow.
    for where in by_where:
        times = [e["t"] for e in outage if e["data"]["where"] == where]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) <= 7, (where, gaps)
        assert all(later >= earlier - 0.5 for earlier, later in itertools.pairwise(gaps)), (where, gaps)
        if len(gaps) >= 2:
            assert gaps[-1] >= gaps[0] + 1.5, (where, gaps)
    # The VMs never stopped: the same QEMU processes run, nothing was replaced.
    assert all(p is not None and p.is_running() for p in qemus.values()), qemus
    assert not [e for e in rig.events() if e["type"] == "instance" and e["data"]["to"] == "failed"]

    # libvirtd is back: the controller acts on the provider again (scale-in destroys a domain).
    wait_until(lambda: rig.consistent(MAX), "group still consistent", 60, poll_s=0.5)
    rig.ctl.post("/v1/group/desired", {"desired": MIN})
    wait_until(lambda: rig.consistent(MIN), "scale-in through the restarted libvirtd", 90, poll_s=0.5)
    assert set(db_instances(rig.state, libvirt_group)) == domains(libvirt_group)
    assert overlays(rig.state) == {f"{n}.qcow2" for n in domains(libvirt_group)}
