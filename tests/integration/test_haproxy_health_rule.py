"""A real HAProxy and vmscale's own probe judge the same services the same way: any 2xx or 3xx
is healthy by default (a /healthz answering 204 puts a server in rotation), ``expected_status``
narrows it for both, and ``kind = "tcp"`` makes both a plain connect check."""

from __future__ import annotations

import pytest

from tests.integration.haproxy_support import running_haproxy
from tests.integration.stub_http import StubServer, stub_servers
from tests.support.wait import wait_until
from vmscale.config.health import HealthConfig
from vmscale.health import build_health_checker
from vmscale.lb.haproxy import HaproxyLoadBalancer


def haproxy_verdicts(lb: HaproxyLoadBalancer, names: set[str]) -> dict[str, bool]:
    """Wait until HAProxy has finished judging every server, then say which it keeps up.

    Finished: a check has completed (``check_status`` set) and the server is fully UP or DOWN, not in
    a transition such as "UP 1/2" (failed once, ``fall`` not reached yet).
    """
    seen: dict[str, tuple[str, str]] = {}

    def settled() -> bool:
        seen.clear()
        rows = [r for r in lb.api.stat_rows(lb.group) if r.get("svname") != "BACKEND"]
        seen.update({r["svname"]: (r.get("status", ""), r.get("check_status", "")) for r in rows})
        return set(seen) == names and all(
            st in ("UP", "DOWN") and chk not in ("", "INI") for st, chk in seen.values()
        )

    wait_until(settled, f"HAProxy to judge {sorted(names)}", 20, poll_s=0.1, state=lambda: seen)
    return {n: st == "UP" for n, (st, _) in seen.items()}


@pytest.mark.parametrize(
    ("health", "answers", "expected"),
    [
        pytest.param(
            HealthConfig(),
            {"s-204": 204, "s-302": 302, "s-200": 200, "s-404": 404, "s-500": 500},
            {"s-204": True, "s-302": True, "s-200": True, "s-404": False, "s-500": False},
            id="default-2xx-3xx",
        ),
        pytest.param(
            HealthConfig(expected_status=200),
            {"s-204": 204, "s-200": 200},
            {"s-204": False, "s-200": True},
            id="only-200",
        ),
        pytest.param(
            HealthConfig(kind="tcp"),
            {"s-404": 404, "s-500": 500},
            {"s-404": True, "s-500": True},
            id="tcp-connect-only",
        ),
    ],
)
def test_haproxy_and_vmscale_agree_on_health(
    health: HealthConfig, answers: dict[str, int], expected: dict[str, bool]
) -> None:
    stubs = [StubServer(name, health_status=status) for name, status in answers.items()]
    with stub_servers(*stubs), running_haproxy(health=health) as lb:
        for s in stubs:
            lb.add(s.server)
        by_haproxy = haproxy_verdicts(lb, set(answers))
        probe = build_health_checker(health)
        try:
            by_vmscale = {s.name: probe.check(s.url).ok for s in stubs}
        finally:
            probe.close()
    assert by_haproxy == expected
    assert by_vmscale == expected
