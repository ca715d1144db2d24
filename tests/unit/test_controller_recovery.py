"""Restart recovery of what the old controller left in the database: a resume under way was stored
as state "warm" of a non-pool instance (a hidden state); it is now the explicit "resuming"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.controller_rig import Rig
from vmscale.providers.base import InstanceSpec, ProviderStatus
from vmscale.store import InstanceRow


@pytest.mark.parametrize(
    ("parked", "expected_call", "expected_state"),
    [
        pytest.param(False, None, "ready", id="the-resume-had-completed"),
        pytest.param(True, ("resume", "web-2"), "ready", id="still-parked-the-resume-is-issued-again"),
    ],
)
def test_a_resume_recorded_by_an_older_version_is_finished(
    tmp_path: Path, parked: bool, expected_call: tuple[str, str] | None, expected_state: str
) -> None:
    rig = Rig(tmp_path, warm_pool={"size": 0, "kind": "paused"})
    for i in (1, 2):
        inst = rig.provider.launch(InstanceSpec(group="web", name=f"web-{i}", index=i))
        state = "ready" if i == 1 else "warm"  # web-2: taken from the pool, resume under way
        rig.store.put_instance(
            InstanceRow(f"web-{i}", "web", i, state, inst.endpoint, warm=False), 1.0, src="(none)"
        )
    rig.store.save_group("web", 2, True, {}, 1.0)
    if parked:
        rig.provider.pause("web-2")
    assert (rig.provider.instances["web-2"].status is ProviderStatus.PAUSED) == parked
    rig.ctl.recover()
    assert rig.states()["web-2"] in ("booting", "resuming")
    rig.tick(3)
    assert rig.states() == {"web-1": "ready", "web-2": expected_state}
    if expected_call:
        assert expected_call in rig.provider.calls
    assert rig.provider.launch_count == 2, "nothing was launched twice"
