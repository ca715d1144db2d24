"""Start-up is a transaction: checks that can fail run before anything starts, each failure is one
line naming what to change (``StartupError``, exit 2 from `vmscale up`), and a failure after
something started stops it again, in reverse order, leaving adopted things alone."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from vmscale.cli import app as cli_app
from vmscale.config import parse_config
from vmscale.controller import Controller
from vmscale.errors import StartupError
from vmscale.lb.fake import FakeLoadBalancer
from vmscale.providers.fake import FakeProvider
from vmscale.service import Service


def config(tmp_path: Path, **sections: Any) -> Any:
    data = {"group": {"name": "web", "min": 0}, "provider": {"kind": "fake"}, "state": {"dir": str(tmp_path)}}
    return parse_config({**data, **sections})


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Boom(RuntimeError):
    pass


def test_a_failure_after_the_balancer_started_stops_it_and_releases_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = listening_socket().getsockname()[1]  # only to learn a free port: closed at once
    cfg = config(tmp_path, api={"bind": f"127.0.0.1:{port}"})
    lb = FakeLoadBalancer()
    svc = Service(cfg, provider=FakeProvider(), lb=lb)

    def recover(_: Controller) -> None:
        raise Boom("recovery failed")

    monkeypatch.setattr(Controller, "recover", recover)  # the leader's recovery, at start-up
    with pytest.raises(Boom):
        svc.start()
    assert lb.calls == [("start",), ("stop",)]
    assert not lb.running
    assert svc.api is None and port_is_free(port), "the reserved API port was not released"
    assert svc.writer._closed and svc.decisions_writer._closed
    svc.stop()  # harmless after a failed start: everything is already released
    assert lb.calls == [("start",), ("stop",)]


def test_an_adopted_balancer_is_left_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lb = FakeLoadBalancer(running=True)  # left running by an earlier `vmscale up`
    svc = Service(config(tmp_path, api={"bind": "127.0.0.1:0"}), provider=FakeProvider(), lb=lb)
    monkeypatch.setattr(Controller, "recover", lambda _: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):
        svc.start()
    assert lb.running and ("stop",) not in lb.calls


def test_a_taken_api_port_fails_before_anything_starts(tmp_path: Path) -> None:
    holder = listening_socket()
    port = holder.getsockname()[1]
    lb = FakeLoadBalancer()
    svc = Service(config(tmp_path, api={"bind": f"127.0.0.1:{port}"}), provider=FakeProvider(), lb=lb)
    with pytest.raises(StartupError) as info:
        svc.start()
    message = str(info.value)
    assert message == (
        f"cannot listen on 127.0.0.1:{port} (api.bind): the port is already in use by "
        f"{psutil.Process().name()} (pid {os.getpid()}); stop it or set api.bind to a free port"
    )
    assert "\n" not in message
    assert lb.calls == [], "the balancer was started although start-up was bound to fail"
    holder.close()


def test_an_open_bind_without_tokens_is_a_startup_error(tmp_path: Path) -> None:
    svc = Service(config(tmp_path, api={"bind": "0.0.0.0:0"}), provider=FakeProvider())
    with pytest.raises(StartupError, match=r"api.bind: binding to 0\.0\.0\.0 requires a token"):
        svc.start()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "v.toml"
    path.write_text(f'[group]\nname = "web"\nmin = 0\n[state]\ndir = "{tmp_path}"\n' + text)
    return path


def test_up_exits_2_on_an_open_bind_without_tokens(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[provider]\nkind = "fake"\n[api]\nbind = "0.0.0.0:0"\n')
    result = CliRunner().invoke(cli_app, ["up", "-c", str(path)], env={"VMSCALE_TOKENS": ""})
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "error: api.bind: binding to 0.0.0.0 requires a token: set api.token_file or $VMSCALE_TOKENS, "
        "or bind to 127.0.0.1"
    ]


def test_up_exits_2_with_the_holder_of_a_taken_port(tmp_path: Path) -> None:
    holder = listening_socket()
    port = holder.getsockname()[1]
    path = write_config(tmp_path, f'[provider]\nkind = "fake"\n[api]\nbind = "127.0.0.1:{port}"\n')
    result = CliRunner().invoke(cli_app, ["up", "-c", str(path)])
    holder.close()
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port} (api.bind)")


def unreachable_libvirt_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        '[provider]\nkind = "libvirt"\n[provider.libvirt]\n'
        f'uri = "qemu+unix:///system?socket={tmp_path}/nonexistent"\ninstance_dir = "{tmp_path}/vms"\n'
        'accel = "tcg"\n',
    )


@pytest.mark.parametrize("command", ["up", "down"])
def test_exit_2_when_libvirtd_does_not_answer(tmp_path: Path, command: str) -> None:
    """Fail fast with the commands that start libvirtd, with and without systemd."""
    path = unreachable_libvirt_config(tmp_path)
    result = CliRunner().invoke(cli_app, [command, "-c", str(path)])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]  # after the log line saying which accelerator
    assert line.startswith("error: libvirt: cannot connect to qemu+unix:///system?socket=")
    assert "`systemctl start libvirtd`" in line and "`virtlogd -d && libvirtd -d`" in line
    assert "scripts/" not in result.stderr
