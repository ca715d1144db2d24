"""Controller identities: unique per process, and "gone" only for a dead process of this host."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from vmscale.config import parse_config
from vmscale.leader import Timing, controller_id, holder_gone, scope_of, timing_of


def test_an_id_names_host_pid_and_start() -> None:
    me = controller_id()
    host, pid, started = me.rsplit("/", 2)
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert float(started) > 0
    assert not holder_gone(me)


def test_a_finished_process_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    holder = controller_id(pid=child.pid)
    assert not holder.endswith("/")
    child.wait(timeout=30)
    assert holder_gone(holder)


def test_a_killed_but_unreaped_process_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    holder = controller_id(pid=child.pid)
    assert not holder_gone(holder)
    child.kill()
    deadline = time.monotonic() + 30
    while not holder_gone(holder):  # a zombie until we reap it below
        assert time.monotonic() < deadline, "a killed process still counts as alive"
        time.sleep(0.01)
    child.wait(timeout=30)


def test_a_reused_pid_is_told_apart_by_its_start_time() -> None:
    host, pid, _started = controller_id().rsplit("/", 2)
    assert holder_gone(f"{host}/{pid}/12.34")


def test_other_hosts_and_unknown_ids_are_presumed_alive() -> None:
    assert not holder_gone("elsewhere.example/1/1.00")
    assert not holder_gone(f"{socket.gethostname()}/not-a-pid/1.00")
    assert not holder_gone("something else")


def test_scope_and_timing_from_the_config() -> None:
    cfg = parse_config({"group": {"name": "api"}})
    assert scope_of(cfg) == "api"
    assert scope_of(parse_config({"state": {"cluster": "east"}})) == "east"
    assert timing_of(cfg.state.lease) == Timing(15.0, 10.0, 2.0)
