"""Two `vmscale up` with one several-groups config and one SQLite store: one election covers every
group. The leader runs both groups; killed with SIGKILL, the standby takes both over, adopting
every backend (none launched twice, none lost), and a write for a named group sent to the
controller that stands by afterwards is refused with the leader's address.

Each controller runs in a UTS namespace of its own (``ControllerPair``), so the standby learns of
the leader's death only by its lease expiring, as across machines.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.live_support import free_base_port, kill_backends, running_backends
from tests.support.controller_pair import ControllerPair
from tests.support.wait import wait_until

LEASE_S, RENEW_S, RETRY_S = 2.0, 1.5, 0.25
INTERVAL_S = 0.2
SETTLE_S = 45.0
NOISE_S = 1.5  # scheduling noise on a shared 2-core machine, on top of the bound from the settings


def config(tmp: Path, web: str, batch: str) -> Path:
    path = tmp / "groups.toml"
    state = tmp / "state"
    groups = "".join(
        f"""
[[groups]]
group = {{ name = "{name}", min = 1, max = 3, interval_s = {INTERVAL_S} }}
provider = {{ process = {{ base_port = {free_base_port(4)} }} }}
health = {{ timeout_s = 1.0, boot_timeout_s = 20 }}
drain = {{ timeout_s = 2, grace_s = 0 }}
"""
        for name in (web, batch)
    )
    path.write_text(
        f"""
[state]
dir = "{state}"

[state.lease]
duration_s = {LEASE_S}
renew_deadline_s = {RENEW_S}
retry_s = {RETRY_S}
{groups}"""
    )
    return path


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:5]  # unique: a concurrent run never sees our backends
    web, batch = f"gw{tag}", f"gb{tag}"
    yield web, batch
    kill_backends(web)
    kill_backends(batch)


def settled(api: str, group: str, count: int) -> bool:
    g = httpx.get(f"{api}/v1/groups/{group}", timeout=5).json()
    return bool(g["desired"] == g["ready"] == g["actual"] == count and set(g["states"]) <= {"ready"})


def test_the_standby_takes_over_every_group_and_adopts_their_instances(
    tmp_path: Path, names: tuple[str, str]
) -> None:
    web, batch = names
    pair = ControllerPair(config(tmp_path, web, batch), tmp_path, group=web)
    try:
        pair.start()
        leader = pair.leader()
        for group, count in ((web, 2), (batch, 1)):
            leader.post(f"/v1/groups/{group}/pause")
            leader.post(f"/v1/groups/{group}/desired", {"desired": count})
        for group, count in ((web, 2), (batch, 1)):
            wait_until(lambda g=group, c=count: settled(leader.api, g, c), f"{group} at {count}", SETTLE_S)
        before = {group: running_backends(group) for group in (web, batch)}
        assert [len(before[web]), len(before[batch])] == [2, 1], before

        standby = pair.standby()
        who = standby.get("/v1/controllers")
        assert sum(c["leads"] for c in who["controllers"]) == 1 and len(who["controllers"]) == 2, who

        killed, new, took = pair.fail_over(LEASE_S + RETRY_S + INTERVAL_S + 10)
        assert took <= LEASE_S + RETRY_S + INTERVAL_S + NOISE_S, f"took over in {took:.2f} s"
        for group, count in ((web, 2), (batch, 1)):
            wait_until(lambda g=group, c=count: settled(new.api, g, c), f"{group} adopted", SETTLE_S)
            status = httpx.get(f"{new.api}/v1/groups/{group}", timeout=5).json()
            assert status["leadership"]["role"] == "leader" and status["paused"], status
        # the same backends, adopted: not one relaunched, none lost, none added
        assert {group: running_backends(group) for group in (web, batch)} == before

        pair.restart(killed)
        refused = httpx.post(f"{killed.api}/v1/groups/{batch}/desired", json={"desired": 2}, timeout=5)
        assert refused.status_code == 409, refused.text
        assert refused.json()["leader"]["address"].rstrip("/") == new.api, refused.json()
        new.post(f"/v1/groups/{batch}/desired", {"desired": 2})
        wait_until(lambda: settled(new.api, batch, 2), f"{batch} at 2 by the new leader", SETTLE_S)
        assert running_backends(web) == before[web], "a change to one group touched the other"
    finally:
        pair.stop()
    assert running_backends(web) == {} and running_backends(batch) == {}, "the last controller removes both"
