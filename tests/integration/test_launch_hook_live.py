"""A live process group with a real launch hook (a shell script the test writes): the hook rejects
the first instance it is asked about, which never enters rotation and is replaced; it accepts the
replacement, which serves. Every call is in the event log with its outcome."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.integration.live_support import READY_TIMEOUT_S, live_config_data, running_service
from tests.support.wait import wait_until
from vmscale.config import parse_config

# Rejects the first instance name it sees, accepts every later call (a marker file remembers).
HOOK = """#!/bin/sh
echo "$VMSCALE_INSTANCE $VMSCALE_PHASE" >> "{log}"
if [ ! -e "{marker}" ]; then touch "{marker}"; echo "not registered: rejecting" >&2; exit 3; fi
exit 0
"""


def test_a_launch_hook_that_rejects_keeps_the_instance_out_and_it_is_replaced(tmp_path: Path) -> None:
    hook = tmp_path / "register.sh"
    calls = tmp_path / "calls.log"
    hook.write_text(HOOK.format(log=calls, marker=tmp_path / "rejected-once"))
    hook.chmod(0o755)
    data = live_config_data(tmp_path / "state")
    data["hooks"] = {"launch": [{"name": "register", "command": [str(hook)], "timeout_s": 10}]}
    with running_service(parse_config(data, "live")) as svc:
        events = svc.events
        ready = wait_until(
            lambda: [i for i in svc.controller.instances() if i.state == "ready"],
            "a ready instance",
            READY_TIMEOUT_S,
        )
        assert len(ready) == 1
        served = httpx.get(f"{ready[0].endpoint}/fib/10", timeout=10, trust_env=False).json()
        assert served["server"] == ready[0].name
        lines = calls.read_text().split("\n")
        first = lines[0].split()[0]
        transitions = [e.data for e in events.recent(["instance"], limit=1000)]
        # The rejected instance failed with the hook's verdict and never became ready.
        assert any(
            t["name"] == first and t["to"] == "failed" and "abandoned" in t["reason"] for t in transitions
        )
        hook_events = [e.data for e in events.recent(["hook"], limit=100)]
        seen = [(h["instance"], h["outcome"], h["result"]) for h in hook_events]
        assert seen[0] == (first, "rejected", "abandon"), json.dumps(hook_events)
        assert (ready[0].name, "succeeded", "continue") in seen, json.dumps(hook_events)
