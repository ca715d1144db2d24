"""A small client for HAProxy's runtime API (the admin-level Unix ``stats socket``).

One connection per command: in non-interactive mode HAProxy answers and closes, so a
response ends at EOF and a wedged HAProxy cannot leave a half-read reply for the next call.
Every call is bounded by ``timeout_s``; socket errors become ``LoadBalancerError``.
HAProxy's replies are free text ("New server registered.", "No such server."), so callers say
which reply means success (:meth:`RuntimeApi.expect`).
"""

from __future__ import annotations

import csv
import io
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from vmscale.errors import LoadBalancerError

# srv_admin_state bits (HAProxy's enum srv_admin)
ADMIN_FMAINT, ADMIN_IMAINT, ADMIN_CMAINT = 0x01, 0x02, 0x04
ADMIN_FDRAIN, ADMIN_IDRAIN = 0x08, 0x10
ADMIN_RMAINT, ADMIN_HMAINT = 0x20, 0x40
_MAINT_MASK = ADMIN_FMAINT | ADMIN_IMAINT | ADMIN_CMAINT | ADMIN_RMAINT | ADMIN_HMAINT
_DRAIN_MASK = ADMIN_FDRAIN | ADMIN_IDRAIN
CHECK_ENABLED = 0x04  # srv_check_state: CHK_ST_ENABLED


@dataclass(frozen=True, slots=True)
class ServerState:
    """One line of ``show servers state``: what HAProxy has, as opposed to what should be."""

    name: str
    addr: str
    port: int
    op_state: int  # 0 stopped, 1 starting, 2 running, 3 stopping
    admin_state: int
    check_state: int
    weight: int = 1  # srv_uweight: the weight vmscale set (the one ``set server ... weight`` changes)

    @property
    def in_maint(self) -> bool:
        return bool(self.admin_state & _MAINT_MASK)

    @property
    def draining(self) -> bool:
        return bool(self.admin_state & _DRAIN_MASK)

    @property
    def check_enabled(self) -> bool:
        return bool(self.check_state & CHECK_ENABLED)


def parse_servers_state(text: str) -> dict[str, ServerState]:
    """Parse ``show servers state <backend>`` (format version 1: a version line, a '#' header)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header: list[str] | None = None
    out: dict[str, ServerState] = {}
    for line in lines:
        if line.startswith("#"):
            header = line[1:].split()
            continue
        if header is None:
            continue  # the format version line
        row = dict(zip(header, line.split(), strict=False))
        try:
            out[row["srv_name"]] = ServerState(
                name=row["srv_name"],
                addr=row["srv_addr"],
                port=int(row["srv_port"]),
                op_state=int(row["srv_op_state"]),
                admin_state=int(row["srv_admin_state"]),
                check_state=int(row["srv_check_state"]),
                weight=int(row.get("srv_uweight", 1)),
            )
        except (KeyError, ValueError) as exc:
            raise LoadBalancerError(f"unexpected 'show servers state' line: {line!r}") from exc
    return out


def parse_show_stat(text: str) -> list[dict[str, str]]:
    """Parse ``show stat`` CSV (header starts with '# ')."""
    body = text.lstrip()
    if not body.startswith("# "):
        raise LoadBalancerError(f"unexpected 'show stat' reply: {text[:200]!r}")
    return list(csv.DictReader(io.StringIO(body[2:])))


class RuntimeApi:
    def __init__(self, socket_path: Path, timeout_s: float = 2.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    def command(self, cmd: str, *, timeout_s: float | None = None) -> str:
        """Send one command, return HAProxy's whole reply."""
        if "\n" in cmd or ";" in cmd:
            raise LoadBalancerError(f"refusing a runtime command with a newline or ';': {cmd!r}")
        limit = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        chunks: list[bytes] = []
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(limit)
                sock.connect(str(self.socket_path))
                sock.sendall(cmd.encode() + b"\n")
                while True:
                    sock.settimeout(max(0.001, deadline - time.monotonic()))
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except (OSError, TimeoutError) as exc:
            raise LoadBalancerError(
                f"HAProxy runtime API at {self.socket_path} failed on {cmd.split()[0:3]}: {exc}"
            ) from exc
        return b"".join(chunks).decode(errors="replace")

    def expect(self, cmd: str, ok: str = "") -> str:
        """Run ``cmd``; a reply that does not contain ``ok`` (or, when ``ok`` is empty, any
        non-blank reply) is HAProxy refusing, reported with its own words."""
        reply = self.command(cmd)
        good = ok in reply if ok else not reply.strip()
        if not good:
            raise LoadBalancerError(f"HAProxy refused {cmd!r}: {reply.strip() or '(empty reply)'}")
        return reply

    def answers(self, timeout_s: float = 0.5) -> bool:
        try:
            return "Name: HAProxy" in self.command("show info", timeout_s=timeout_s)
        except LoadBalancerError:
            return False

    def info(self) -> dict[str, str]:
        pairs = (ln.split(":", 1) for ln in self.command("show info").splitlines() if ":" in ln)
        return {k.strip(): v.strip() for k, v in pairs}

    def servers_state(self, backend: str) -> dict[str, ServerState]:
        reply = self.command(f"show servers state {backend}")
        if "Can't find backend" in reply:
            raise LoadBalancerError(f"HAProxy has no backend {backend!r}: is it running a foreign config?")
        return parse_servers_state(reply)

    def stat_rows(self, backend: str) -> list[dict[str, str]]:
        """Rows of ``show stat`` for the backend: its servers and the BACKEND summary."""
        # type mask 4 (servers) + 2 (backend); sid -1 = all servers
        return parse_show_stat(self.command(f"show stat {backend} 6 -1"))
