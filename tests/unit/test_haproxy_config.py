"""The generated HAProxy configuration and runtime-API parsing. Configs are checked by the real
``haproxy -c`` (no process is started)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from vmscale.config.haproxy import HaproxyConfig
from vmscale.config.health import HealthConfig
from vmscale.errors import LoadBalancerError
from vmscale.lb.base import LoadBalancer, Server
from vmscale.lb.haproxy import HaproxyLoadBalancer, _state_of
from vmscale.lb.haproxy_config import HaproxyPaths, render_config, server_args
from vmscale.lb.haproxy_log import LOG_FORMAT
from vmscale.lb.haproxy_runtime import RuntimeApi, parse_servers_state, parse_show_stat
from vmscale.lb.none import NullBalancer


def haproxy_check(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is not installed (apt-get install haproxy): the config cannot be validated")
    return subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(HaproxyConfig(), id="defaults"),
        pytest.param(
            HaproxyConfig(bind="0.0.0.0:9000", check_inter_s=0.2, check_fall=5, retries=0, server_maxconn=10),
            id="tuned",
        ),
        pytest.param(HaproxyConfig(check_path="/health/ready", observe_error_limit=0), id="other-path"),
    ],
)
@pytest.mark.parametrize("prometheus", [True, False], ids=["promex", "no-promex"])
def test_generated_config_passes_haproxy_check(
    tmp_path: Path, config: HaproxyConfig, prometheus: bool
) -> None:
    text = render_config(config, "web", HaproxyPaths(tmp_path), prometheus=prometheus)
    result = haproxy_check(write(tmp_path, text))
    assert result.returncode == 0, result.stderr
    assert "[WARNING]" not in result.stderr, result.stderr


def test_config_has_what_the_group_needs(tmp_path: Path) -> None:
    config = HaproxyConfig(bind="127.0.0.1:18080", stats_bind="127.0.0.1:18404", check_path="/healthz")
    text = render_config(config, "api", HaproxyPaths(tmp_path))
    lines = [ln.strip() for ln in text.splitlines()]
    assert f"stats socket {tmp_path / 'haproxy.sock'} mode 600 level admin" in lines
    assert "bind 127.0.0.1:18080" in lines and "bind 127.0.0.1:18404" in lines
    assert "backend api" in lines and "balance leastconn" in lines
    assert "option httpchk GET /healthz" in lines
    assert "option redispatch 1" in lines and any(ln.startswith("retry-on conn-failure") for ln in lines)
    assert "http-request use-service prometheus-exporter if { path /metrics }" in lines
    assert not any(ln.startswith("server ") for ln in lines), "servers are added at runtime only"


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        pytest.param(
            HealthConfig(), ["option httpchk GET /healthz", "http-check expect status 200-399"], id="2xx-3xx"
        ),
        pytest.param(
            HealthConfig(path="/ready", expected_status=[200, "301-302"]),
            ["option httpchk GET /ready", "http-check expect status 200,301-302"],
            id="expected-list",
        ),
        pytest.param(HealthConfig(expected_status=200), ["http-check expect status 200"], id="only-200"),
    ],
)
def test_haproxy_checks_follow_the_health_rule(
    tmp_path: Path, health: HealthConfig, expected: list[str]
) -> None:
    text = render_config(HaproxyConfig(), "web", HaproxyPaths(tmp_path), health=health)
    lines = [ln.strip() for ln in text.splitlines()]
    assert all(e in lines for e in expected), text
    assert sum(ln.startswith("http-check expect") for ln in lines) == 1
    result = haproxy_check(write(tmp_path, text))
    assert result.returncode == 0 and "[WARNING]" not in result.stderr, result.stderr


def test_an_own_check_path_keeps_the_health_rule(tmp_path: Path) -> None:
    text = render_config(
        HaproxyConfig(check_path="/lb-check"),
        "web",
        HaproxyPaths(tmp_path),
        health=HealthConfig(path="/ready"),
    )
    assert "option httpchk GET /lb-check" in text and "http-check expect status 200-399" in text


def test_a_tcp_health_check_is_a_plain_connect_check_in_haproxy(tmp_path: Path) -> None:
    text = render_config(HaproxyConfig(), "web", HaproxyPaths(tmp_path), health=HealthConfig(kind="tcp"))
    assert "httpchk" not in text and "http-check" not in text
    result = haproxy_check(write(tmp_path, text))
    assert result.returncode == 0 and "[WARNING]" not in result.stderr, result.stderr


def test_every_request_of_the_group_is_logged_to_the_latency_socket(tmp_path: Path) -> None:
    text = render_config(HaproxyConfig(), "web", HaproxyPaths(tmp_path))
    lines = [ln.strip() for ln in text.splitlines()]
    assert f"log {tmp_path / 'log.sock'} format raw local0 info" in lines
    front = text.split("frontend web_front", 1)[1].split("backend web", 1)[0]
    assert "log global" in front and f'log-format "{LOG_FORMAT}"' in front
    stats = text.split("frontend stats", 1)[1]
    assert "log" not in stats.replace("log-format", ""), "scrapes of the stats page are not requests"


def test_runtime_server_args_are_valid_haproxy_server_settings(tmp_path: Path) -> None:
    """Whatever ``add server`` is given must also parse as a static ``server`` line."""
    config = HaproxyConfig(check_inter_s=0.25, check_rise=2, check_fall=3, server_maxconn=8)
    args = server_args(config, Server("web-1", "127.0.0.1", 18101))
    assert args.startswith("127.0.0.1:18101 check inter 250ms rise 2 fall 3")
    base = render_config(config, "web", HaproxyPaths(tmp_path))
    result = haproxy_check(write(tmp_path, base + f"\nbackend probe\n    server web-1 {args}\n"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "server",
    [
        pytest.param(Server("web 1", "127.0.0.1", 1), id="space-in-name"),
        pytest.param(Server("web;del", "127.0.0.1", 1), id="command-injection"),
        pytest.param(Server("web-1", "127.0.0.1", 0), id="port-zero"),
        pytest.param(Server("web-1", "bad host", 80), id="space-in-host"),
    ],
)
def test_bad_server_is_refused_before_reaching_haproxy(server: Server) -> None:
    with pytest.raises(LoadBalancerError):
        server_args(HaproxyConfig(), server)


def test_too_long_socket_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LoadBalancerError, match="shorter state folder"):
        render_config(HaproxyConfig(), "web", HaproxyPaths(tmp_path / ("x" * 120)))


@pytest.mark.parametrize("field", ["bind", "stats_bind"])
@pytest.mark.parametrize("value", ["8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "a b:80"])
def test_bad_addresses_are_config_errors(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match="HOST:PORT"):
        HaproxyConfig.model_validate({field: value})


def test_detection_window_follows_check_settings() -> None:
    fast = HaproxyConfig(check_inter_s=0.5, check_timeout_s=0.5, check_fall=2)
    slow = HaproxyConfig(check_inter_s=2.0, check_timeout_s=1.0, check_fall=3)
    assert fast.detection_window_s == pytest.approx(0.5 + 2 * 1.0)
    assert slow.detection_window_s == pytest.approx(2.0 + 3 * 3.0)


SERVERS_STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state \
srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl \
srv_check_port srv_check_addr \
srv_agent_addr srv_agent_port
3 web 1 web-1 127.0.0.1 2 0 1 1 0 1 0 1 6 0 0 0 - 18101 - 0 0 - - 0
3 web 2 web-2 127.0.0.1 2 8 1 1 0 1 0 0 6 0 0 0 - 18102 - 0 0 - - 0
3 web 3 web-3 127.0.0.1 0 1 1 1 43 1 0 0 2 0 0 0 - 18103 - 0 0 - - 0

"""


def test_parse_servers_state_reads_address_and_admin_flags() -> None:
    state = parse_servers_state(SERVERS_STATE)
    assert sorted(state) == ["web-1", "web-2", "web-3"]
    one, two, three = state["web-1"], state["web-2"], state["web-3"]
    assert (one.addr, one.port, one.in_maint, one.draining, one.check_enabled) == (
        "127.0.0.1",
        18101,
        False,
        False,
        True,
    )
    assert two.draining and not two.in_maint
    assert three.in_maint and not three.check_enabled  # freshly added: maint, checks off


def test_parse_empty_backend() -> None:
    assert parse_servers_state(SERVERS_STATE.split("\n3 web")[0] + "\n") == {}


def test_parse_show_stat_and_state_names() -> None:
    text = (
        "# pxname,svname,qcur,scur,rate,status,rtime\nweb,web-1,2,5,40,UP 1/2,12\nweb,BACKEND,2,5,40,UP,12\n"
    )
    rows = parse_show_stat(text)
    assert rows[0]["svname"] == "web-1" and rows[0]["scur"] == "5"
    with pytest.raises(LoadBalancerError):
        parse_show_stat("Unknown command\n")
    expected = {"UP 1/2": "ready", "DRAIN": "drain", "MAINT (via web/x)": "maint", "DOWN 0/1": "down"}
    assert {s: _state_of(s) for s in expected} == expected
    assert _state_of("no check") == "ready"


def test_runtime_api_errors_are_load_balancer_errors(tmp_path: Path) -> None:
    api = RuntimeApi(tmp_path / "missing.sock", timeout_s=0.5)
    with pytest.raises(LoadBalancerError, match=r"missing\.sock"):
        api.command("show info")
    assert api.answers() is False
    with pytest.raises(LoadBalancerError, match="newline"):
        api.command("show info\ndel server web/web-1")


def test_both_balancers_follow_the_protocol(tmp_path: Path) -> None:
    haproxy = HaproxyLoadBalancer(HaproxyConfig(bind="127.0.0.1:18080"), "web", tmp_path)
    none = NullBalancer()
    assert isinstance(haproxy, LoadBalancer) and isinstance(none, LoadBalancer)
    assert haproxy.frontend_url() == "http://127.0.0.1:18080"
    assert (
        HaproxyLoadBalancer(HaproxyConfig(bind="*:9"), "web", tmp_path).frontend_url() == "http://127.0.0.1:9"
    )
    assert (none.kind, none.frontend_url(), none.stats(), none.alive()) == ("none", None, {}, True)
    none.sync({"web-1": Server("web-1", "127.0.0.1", 1)})  # a no-op, not an error
    with pytest.raises(LoadBalancerError):
        HaproxyLoadBalancer(HaproxyConfig(), "bad group", tmp_path)
