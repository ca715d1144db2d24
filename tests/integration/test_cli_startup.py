"""`vmscale up` as a process: start-up failures exit 2 with one line and leave nothing running (a
real HAProxy), a missing libvirt-python names the pip extra, and under systemd's notify protocol
READY=1 comes only once the control API answers, STOPPING=1 when it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.haproxy_support import free_port
from tests.integration.live_support import unique_group
from vmscale.config import parse_config
from vmscale.controller import Controller
from vmscale.errors import StartupError
from vmscale.lb.haproxy import HaproxyLoadBalancer
from vmscale.service import Service

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short folder: HAProxy's runtime socket path must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="vms-cli-"))
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False, timeout=30)


def env_without_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VMSCALE_") and k != "NOTIFY_SOCKET"}


def haproxy_config(state: Path, api_port: int, group: str) -> str:
    return f"""
[group]
name = "{group}"
min = 0
[provider]
kind = "process"
[provider.process]
cpu_limit = "workers"
[lb]
kind = "haproxy"
[lb.haproxy]
bind = "127.0.0.1:{free_port()}"
stats_bind = "127.0.0.1:{free_port()}"
[api]
bind = "127.0.0.1:{api_port}"
[state]
dir = "{state}"
"""


def haproxies_of(state: Path) -> list[psutil.Process]:
    """HAProxy processes running with a config file in ``state`` (only ours can be)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "haproxy" in (proc.info["name"] or "") and str(state) in cmdline:
            found.append(proc)
    return found


def run_up(config: Path, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmscale", "up", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env or env_without_settings(),
        cwd=REPO,
    )


def test_a_taken_api_port_exits_2_naming_the_holder_and_leaves_no_haproxy(short_dir: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    config = short_dir / "v.toml"
    config.write_text(haproxy_config(short_dir / "state", port, unique_group()))
    try:
        result = run_up(config)
    finally:
        holder.close()
    assert result.returncode == 2, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error == [
        f"error: cannot listen on 127.0.0.1:{port} (api.bind): the port is already in use by "
        f"{psutil.Process().name()} (pid {os.getpid()}); stop it or set api.bind to a free port"
    ], result.stderr
    assert "Traceback" not in result.stderr
    assert haproxies_of(short_dir) == []
    assert not (short_dir / "state" / "haproxy" / "haproxy.pid").exists()


def test_a_failure_after_haproxy_started_stops_it(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The transaction with a real HAProxy: it runs, then recovery fails, and it is gone again."""
    state = short_dir / "state"
    data = {
        "group": {"name": unique_group(), "min": 0},
        "provider": {"kind": "process", "process": {"cpu_limit": "workers"}},
        "lb": {
            "kind": "haproxy",
            "haproxy": {"bind": f"127.0.0.1:{free_port()}", "stats_bind": f"127.0.0.1:{free_port()}"},
        },
        "api": {"bind": "127.0.0.1:0"},
        "state": {"dir": str(state)},
    }
    svc = Service(parse_config(data))
    lb = svc.lb
    assert isinstance(lb, HaproxyLoadBalancer)
    seen: list[int | None] = []

    def recover(_: Controller) -> None:
        seen.append(lb.pid())
        raise StartupError("simulated failure after the balancer started")

    monkeypatch.setattr(Controller, "recover", recover)  # the leader's recovery, at start-up
    try:
        with pytest.raises(StartupError):
            svc.start()
        assert seen and seen[0] is not None, "HAProxy was not running when recovery began"
        assert not psutil.pid_exists(seen[0]) or psutil.Process(seen[0]).status() == psutil.STATUS_ZOMBIE
        assert haproxies_of(short_dir) == []
    finally:
        lb.stop()


def test_without_libvirt_python_up_names_the_extra(tmp_path: Path) -> None:
    config = tmp_path / "v.toml"
    config.write_text(f'[provider]\nkind = "libvirt"\n[state]\ndir = "{tmp_path}/state"\n')
    code = (
        "import sys; sys.modules['libvirt'] = None\n"  # what `import libvirt` does when it is not installed
        "from vmscale.cli import main\n"
        f"sys.argv = ['vmscale', 'up', '-c', {str(config)!r}]\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env_without_settings(),
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the libvirt provider needs `pip install 'vmscale[libvirt]'` (and libvirt-dev to build it)"
    )
    assert "Traceback" not in result.stderr


def test_systemd_notify_ready_after_the_api_answers_and_stopping_on_sigterm(tmp_path: Path) -> None:
    api_port = free_port()
    config = tmp_path / "v.toml"
    config.write_text(
        f'[group]\nname = "{unique_group()}"\nmin = 0\n[provider.process]\ncpu_limit = "workers"\n'
        f'[api]\nbind = "127.0.0.1:{api_port}"\n[state]\ndir = "{tmp_path}/state"\n'
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(TIMEOUT_S)
    env = {**env_without_settings(), "NOTIFY_SOCKET": str(tmp_path / "notify")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmscale", "up", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        ready = notify.recv(4096).decode().splitlines()
        assert ready[0] == "READY=1", ready
        assert any(line.startswith("STATUS=group ") for line in ready), ready
        # READY=1 promises a serving API: it must answer now, without waiting
        group = httpx.get(f"http://127.0.0.1:{api_port}/v1/group", timeout=5, trust_env=False)
        assert group.status_code == 200
        proc.send_signal(signal.SIGTERM)
        stopping = notify.recv(4096).decode().splitlines()
        assert stopping[0] == "STOPPING=1", stopping
        assert proc.wait(timeout=TIMEOUT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        notify.close()
