"""HAProxy as the group's load balancer: vmscale starts and owns the process and changes its
server list only through the runtime API, never by reloading.

Lifecycle of a server (see ``vmscale.lb.base`` for who calls what):
    add     ``add server`` (it arrives in maintenance) → ``enable health`` → ``enable server``
    drain   ``set server B/S state drain``: no new requests, in-flight ones finish
    remove  ``set server B/S state maint`` → ``shutdown sessions`` (only left-overs after the
            controller's drain wait) → ``del server``
    sync    read ``show servers state`` and repair each difference, so after an HAProxy restart
            (an empty backend) the whole list is back after one call.

Latency: ``stats()`` reports HAProxy's own figures plus a real p95 per server from the
per-request log lines that ``vmscale.lb.haproxy_log`` receives on a thread started with the
balancer (and stopped by ``stop()`` or ``close()``).

The process runs as a daemon (``-D``) with its pid file and runtime socket in ``state_dir``, so
it survives a vmscale crash and keeps serving; ``start()`` adopts it when its socket answers.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import psutil

from vmscale.config.haproxy import HaproxyConfig
from vmscale.config.health import HealthConfig
from vmscale.errors import LoadBalancerError
from vmscale.lb.base import Server, ServerStats
from vmscale.lb.haproxy_config import HaproxyPaths, check_ident, render_config, server_args
from vmscale.lb.haproxy_log import LatencyTracker, LogReceiver
from vmscale.lb.haproxy_runtime import RuntimeApi, ServerState

log = logging.getLogger(__name__)

_STATUS = {"UP": "ready", "DRAIN": "drain", "NOLB": "drain", "MAINT": "maint", "DOWN": "down", "no": "ready"}


def _state_of(status: str) -> str:
    """HAProxy's status column ("UP 1/2", "MAINT (via x/y)", "no check") → a short state."""
    word = status.split(" ", 1)[0] if status else ""
    return _STATUS.get(word, word.lower() or "unknown")


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


class HaproxyLoadBalancer:
    kind = "haproxy"

    def __init__(
        self, config: HaproxyConfig, group: str, state_dir: Path, health: HealthConfig | None = None
    ) -> None:
        self.config = config
        self.group = check_ident("group", group)
        self.health = health or HealthConfig()
        # absolute: HAProxy and this process must agree on the socket whatever the cwd later is
        self.paths = HaproxyPaths(Path(state_dir).absolute())
        self.api = RuntimeApi(self.paths.socket, config.runtime_timeout_s)
        self.latency = LatencyTracker(config.latency_window_s, config.latency_max_samples)
        self.log_receiver = LogReceiver(self.paths.log_socket, self.latency, self.group)
        self._lock = threading.RLock()
        self._wanted = False  # start() was called and stop() was not: sync() restarts a dead HAProxy

    # ---- process -------------------------------------------------------------------------------

    def _run(self, args: list[str], what: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [self.config.binary, *args],
                capture_output=True,
                text=True,
                timeout=self.config.start_timeout_s,
                check=False,
            )
        except FileNotFoundError as exc:
            raise LoadBalancerError(
                f"HAProxy executable {self.config.binary!r} not found (Debian: apt-get install haproxy)"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise LoadBalancerError(f"{what} took longer than {self.config.start_timeout_s}s") from exc

    def has_prometheus(self) -> bool:
        """Whether this HAProxy build has the Prometheus exporter service (USE_PROMEX)."""
        out = self._run(["-vv"], "haproxy -vv")
        return "prometheus-exporter" in out.stdout

    def write_config(self) -> Path:
        """Write (and validate with ``haproxy -c``) the generated configuration."""
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        text = render_config(
            self.config, self.group, self.paths, prometheus=self.has_prometheus(), health=self.health
        )
        self.paths.config.write_text(text)
        check = self._run(["-c", "-q", "-f", str(self.paths.config)], "haproxy -c")
        if check.returncode != 0:
            raise LoadBalancerError(f"generated HAProxy config is invalid:\n{check.stderr.strip()}")
        return self.paths.config

    def start(self) -> None:
        with self._lock:
            self._wanted = True
            self._start_log_receiver()
            if self.api.answers():
                self.api.servers_state(self.group)  # refuses to adopt an HAProxy without our backend
                log.info("adopting running HAProxy (pid %s)", self.pid())
                return
            self.write_config()
            self.paths.socket.unlink(missing_ok=True)
            proc = self._run(
                ["-D", "-f", str(self.paths.config), "-p", str(self.paths.pidfile)], "starting HAProxy"
            )
            if proc.returncode != 0:
                raise LoadBalancerError(
                    f"HAProxy did not start (exit {proc.returncode}):\n{proc.stderr.strip()}"
                )
            deadline = time.monotonic() + self.config.start_timeout_s
            while not self.api.answers():
                if time.monotonic() > deadline:
                    raise LoadBalancerError(
                        f"HAProxy started but its runtime socket {self.paths.socket} did not answer "
                        f"within {self.config.start_timeout_s}s"
                    )
                time.sleep(0.02)

    def _start_log_receiver(self) -> None:
        """Listen before HAProxy starts, so the first requests are measured too."""
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.log_receiver.start()
        except OSError as exc:
            raise LoadBalancerError(
                f"cannot listen for HAProxy's request log on {self.paths.log_socket}: {exc}"
            ) from exc

    def close(self) -> None:
        """Stop vmscale's side (the log receiver) and leave HAProxy serving (``--keep-instances``)."""
        self.log_receiver.stop()

    def pid(self) -> int | None:
        """The running HAProxy's pid from the pid file, if that process is an HAProxy."""
        try:
            pid = int(self.paths.pidfile.read_text().split()[0])
            proc = psutil.Process(pid)
            # a killed daemon may linger as a zombie when nobody reaps orphans (containers)
            alive = proc.status() != psutil.STATUS_ZOMBIE
            return pid if alive and "haproxy" in proc.name() else None
        except (OSError, ValueError, IndexError, psutil.Error):
            return None

    def stop(self) -> None:
        with self._lock:
            self._wanted = False
            self.log_receiver.stop()
            pid = self.pid()
            if pid is None:
                return
            try:
                os.kill(pid, signal.SIGTERM)
                proc = psutil.Process(pid)
                try:
                    proc.wait(self.config.stop_timeout_s)
                except psutil.TimeoutExpired:
                    proc.kill()
                    proc.wait(self.config.stop_timeout_s)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
            except (OSError, psutil.Error) as exc:
                raise LoadBalancerError(f"could not stop HAProxy (pid {pid}): {exc}") from exc
            self.paths.pidfile.unlink(missing_ok=True)

    def alive(self) -> bool:
        return self.api.answers()

    def frontend_url(self) -> str | None:
        host, _, port = self.config.bind.rpartition(":")
        if host in ("", "*", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"
        return f"http://{host}:{port}"

    def stats_url(self) -> str:
        host, _, port = self.config.stats_bind.rpartition(":")
        return f"http://{'127.0.0.1' if host in ('', '*', '0.0.0.0') else host}:{port}"

    # ---- membership ----------------------------------------------------------------------------

    def _ref(self, name: str) -> str:
        return f"{self.group}/{check_ident('server', name)}"

    def _enable(self, name: str, *, draining: bool) -> None:
        ref = self._ref(name)
        self.api.expect(f"enable health {ref}")
        self.api.expect(f"set server {ref} state {'drain' if draining else 'ready'}")

    def _add(self, server: Server, *, draining: bool = False) -> None:
        self.api.expect(
            f"add server {self._ref(server.name)} {server_args(self.config, server)}", "New server"
        )
        self._enable(server.name, draining=draining)

    def _delete(self, name: str) -> None:
        ref = self._ref(name)
        self.api.expect(f"set server {ref} state maint")
        # Normally empty by now (the controller waited for the drain); cut any left-overs so the
        # delete is not refused because of a stuck client.
        self.api.command(f"shutdown sessions server {ref}")
        deadline = time.monotonic() + self.config.runtime_timeout_s
        while True:
            reply = self.api.command(f"del server {ref}")
            if "Server deleted" in reply or "No such server" in reply:
                return
            if time.monotonic() > deadline:
                raise LoadBalancerError(f"HAProxy refused 'del server {ref}': {reply.strip()}")
            time.sleep(0.01)  # sessions being torn down; HAProxy frees them within milliseconds

    def add(self, server: Server) -> None:
        """Put the server in rotation. Idempotent: re-enables it if present, re-creates it if its
        address changed."""
        with self._lock:
            have = self.api.servers_state(self.group).get(server.name)
            self._repair(server, have, draining=False)

    def drain(self, name: str) -> None:
        with self._lock:
            reply = self.api.command(f"set server {self._ref(name)} state drain")
            if reply.strip():
                raise LoadBalancerError(f"cannot drain {name!r}: {reply.strip()}")

    def remove(self, name: str) -> None:
        """Delete the server (absent already counts as success)."""
        with self._lock:
            if name in self.api.servers_state(self.group):
                self._delete(name)

    def _repair(self, server: Server, have: ServerState | None, *, draining: bool) -> None:
        if have is not None and (have.addr, have.port) != (server.host, server.port):
            log.info(
                "%s moved from %s:%s to %s:%s", server.name, have.addr, have.port, server.host, server.port
            )
            self._delete(server.name)
            have = None
        if have is None:
            self._add(server, draining=draining)
        elif have.in_maint or not have.check_enabled or have.draining != draining:
            self._enable(server.name, draining=draining)

    def sync(self, servers: Mapping[str, Server], draining: frozenset[str] = frozenset()) -> None:
        """Repair every difference. An HAProxy that vmscale started and that died since is started
        again first (level-triggered: a crash heals within one reconcile tick)."""
        with self._lock:
            if self._wanted and not self.api.answers():
                # Just killed, a process can still exist for a moment without answering: give it
                # a short while to finish dying (or to answer) before deciding it is gone.
                deadline = time.monotonic() + 2.0
                while self.pid() is not None and not self.api.answers() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if self.pid() is None:
                    log.warning(
                        "HAProxy is not running; restarting it, then re-pushing %d servers", len(servers)
                    )
                    self.start()
            have = self.api.servers_state(self.group)
            for name in sorted(set(have) - set(servers) - draining):
                self._delete(name)
            for name, server in sorted(servers.items()):
                self._repair(server, have.get(name), draining=name in draining)
            for name in sorted(draining - set(servers)):
                current = have.get(name)
                if current is not None and not current.draining:
                    self.drain(name)

    # ---- figures -------------------------------------------------------------------------------

    def stats(self) -> dict[str, ServerStats]:
        """Per server from ``show stat``, with ``latency_p95_s`` from the request log: the p95 of the
        requests the server answered in the last ``latency_window_s`` (None when it answered none).
        ``response_time_s`` stays HAProxy's own average (``rtime``, the last 1024 requests)."""
        with self._lock:
            rows = self.api.stat_rows(self.group)
        p95 = self.latency.server_quantiles(95)
        return {
            row["svname"]: _row_stats(row["svname"], row, p95.get(row["svname"]))
            for row in rows
            if row.get("svname") != "BACKEND"
        }

    def backend_stats(self) -> ServerStats | None:
        """The group as a whole (HAProxy's BACKEND row), named after the group; its p95 is over every
        request the group answered in the window, whichever server answered it."""
        with self._lock:
            rows = self.api.stat_rows(self.group)
        p95 = self.latency.group_quantile(95)
        return next((_row_stats(self.group, r, p95) for r in rows if r.get("svname") == "BACKEND"), None)


def _row_stats(name: str, row: Mapping[str, str], latency_p95_s: float | None = None) -> ServerStats:
    rtime = row.get("rtime")
    return ServerStats(
        name=name,
        state=_state_of(row.get("status", "")),
        sessions_current=_int(row.get("scur")),
        queue_current=_int(row.get("qcur")),
        rate_rps=float(_int(row.get("rate"))),
        response_time_s=_int(rtime) / 1000.0 if rtime else None,
        latency_p95_s=latency_p95_s,
    )
