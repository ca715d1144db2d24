"""Fault injection with real processes: kill -9 the controller at random moments while it scales
up and in, restart it, and check after every trial that

* no backend process exists that the database does not know (orphan) and no instance runs twice,
* the count stays within [min, max],
* the database agrees with what really runs,
* the group is back to a consistent, fully ready state quickly (recovery time is recorded).

The figures (trials, orphans, duplicates, recovery percentiles) are written to
artifacts/fault_injection.json; the README's reliability section quotes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.live_support import running_backends
from tests.support.controller_proc import ControllerProcess

TRIALS = int(os.environ.get("VMSCALE_FI_TRIALS", "100"))
GROUP = "fi" + uuid.uuid4().hex[:6]  # unique: a concurrent run must never see (or kill) our backends
MIN, MAX = 1, 3
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_block(count: int) -> int:
    for base in range(21000, 60000, 50):
        ok = True
        for i in range(1, count + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + i))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


class Rig:
    """A process group's config and its `vmscale up` process, with what the checks look at."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        api_port = _free_port()
        base = _free_block(MAX + 2)
        config = tmp / "vmscale.toml"
        config.write_text(
            f"""
[group]
name = "{GROUP}"
min = {MIN}
max = {MAX}
interval_s = 0.2

[provider.process]
base_port = {base}

[health]
timeout_s = 1.0
boot_timeout_s = 20

[drain]
timeout_s = 2
grace_s = 0

[api]
bind = "127.0.0.1:{api_port}"

[state]
dir = "{self.state}"
"""
        )
        self.ctl = ControllerProcess(config, f"http://127.0.0.1:{api_port}", tmp / "controller.log")

    def group(self) -> dict[str, Any]:
        return self.ctl.group()

    def backends(self) -> dict[str, list[int]]:
        """Running backend processes of this group, by instance name (a list: duplicates show)."""
        return running_backends(GROUP)

    def db_instances(self) -> dict[str, str]:
        with sqlite3.connect(self.state / "state.db", timeout=5) as db:
            rows = db.execute("SELECT name, state FROM instances WHERE grp=? AND state != 'gone'", (GROUP,))
            return dict(rows.fetchall())


@pytest.fixture
def rig(tmp_path: Path) -> Any:
    r = Rig(tmp_path)
    yield r
    r.ctl.stop(30)
    # Whatever happened, leave no backend of this group behind.
    for pids in r.backends().values():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _percentiles(xs: list[float]) -> dict[str, float | None]:
    return {
        "p50": round(statistics.median(xs), 3),
        "p95": round(statistics.quantiles(xs, n=20)[-1], 3) if len(xs) >= 20 else None,
        "max": round(max(xs), 3),
    }


def _consistent(r: Rig, desired: int) -> bool:
    try:
        g = r.group()
    except (httpx.HTTPError, ValueError):
        return False
    return (
        g["desired"] == desired
        and g["ready"] == desired
        and g["actual"] == desired
        and set(g["states"]) <= {"ready"}
    )


@pytest.mark.timeout(40 * TRIALS + 120)
def test_kill_9_the_controller_during_scaling(rig: Rig) -> None:
    rng = random.Random(20261125)
    rig.ctl.start()
    rig.ctl.wait_api(20)
    rig.ctl.post("/v1/group/pause")  # only the test's desired counts drive scaling
    reconciled: list[float] = []
    recoveries: list[float] = []
    orphans = duplicates = out_of_bounds = mismatches = 0
    desired = MIN
    for trial in range(TRIALS):
        desired = rng.choice([c for c in range(MIN, MAX + 1) if c != desired])
        rig.ctl.post("/v1/group/desired", {"desired": desired})
        time.sleep(rng.uniform(0.0, 1.2))  # kill somewhere in the middle of launching or draining
        rig.ctl.kill()
        t0 = rig.ctl.start()
        rig.ctl.wait_api(20)  # the API starts only after restart reconciliation has finished
        reconciled.append(time.monotonic() - t0)
        deadline = t0 + 30
        while not _consistent(rig, desired):
            assert time.monotonic() < deadline, (
                f"trial {trial}: not consistent 30 s after restart: {rig.group()}"
            )
            time.sleep(0.05)
        recoveries.append(time.monotonic() - t0)
        backends = rig.backends()
        db = rig.db_instances()
        orphans += len(set(backends) - set(db))
        duplicates += sum(1 for pids in backends.values() if len(pids) > 1)
        out_of_bounds += int(not MIN <= len(backends) <= MAX)
        mismatches += int(set(backends) != set(db) or set(db.values()) != {"ready"})
    figures = {
        "trials": TRIALS,
        "orphans": orphans,
        "duplicates": duplicates,
        "out_of_bounds": out_of_bounds,
        "db_mismatches": mismatches,
        "reconciled_s": _percentiles(reconciled),
        "recovery_s": _percentiles(recoveries),
        "note": "reconciled = from restarting `vmscale up` to its API answering (reconciliation done); "
        "recovery = to the group fully ready at the desired count, including the interpreter start-up and, "
        "when an instance was lost or half-made, booting its replacement",
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fault_injection.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    assert (orphans, duplicates, out_of_bounds, mismatches) == (0, 0, 0, 0), figures
    # Liveness, not speed: the 30 s deadline above bounds each trial; the percentiles are reported.


def test_a_killed_instance_is_replaced(rig: Rig) -> None:
    rig.ctl.start()
    rig.ctl.wait_api(20)
    rig.ctl.post("/v1/group/pause")
    rig.ctl.post("/v1/group/desired", {"desired": 2})
    deadline = time.monotonic() + 30
    while not _consistent(rig, 2):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    victim, pids = sorted(rig.backends().items())[0]
    os.killpg(pids[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "the killed instance was not replaced"
        time.sleep(0.1)
        b = rig.backends()
        if len(b) == 2 and all(pids[0] not in p for p in b.values()) and _consistent(rig, 2):
            break
    with sqlite3.connect(rig.state / "state.db") as db:
        reasons = [
            r
            for (r,) in db.execute("SELECT reason FROM transitions WHERE name=? AND dst='failed'", (victim,))
        ]
    assert reasons, f"{victim} was replaced without being marked failed"
